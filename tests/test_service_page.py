"""The web page of `rumination api` in headless Debian chromium (driven over the DevTools
pipe, as tests/test_html_chromium.py does): a run's page counts turns, queries and sources
while the run is held half-way, shows the report with linked citations once it finishes, and
the runs list shows the run. No console errors, no request leaving 127.0.0.1."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("fastapi")

from servicekit import Gate, running_api, service_settings, simulator  # noqa: E402
from test_html_chromium import (  # noqa: E402
    CHROMIUM,
    Cdp,
    browser,  # noqa: F401  (the fixture)
    console_errors,
    evaluate,
)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not __import__("os").environ.get("CI"),
    reason="Debian's chromium is not installed (apt-get install chromium); CI installs it",
)


def until(cdp: Cdp, session: str, expression: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := evaluate(cdp, session, expression)):
        assert time.monotonic() < deadline, f"never true: {expression}"
        time.sleep(0.05)
    return value


def number(cdp: Cdp, session: str, element: str) -> int:
    return int(evaluate(cdp, session, f"document.getElementById('{element}').textContent"))


def test_a_run_page_follows_the_run_live_then_shows_the_report(
    browser: Cdp, tmp_path: Path  # noqa: F811  (the imported fixture)
) -> None:
    gate = Gate(free=3)
    with simulator(gate) as sim, running_api(service_settings(tmp_path, sim.url)) as url:
        run_id = httpx.post(f"{url}/runs", json={"question": "How do heat pumps cope with "
                                                 "cold climates?"}).json()["run_id"]
        target = browser.send("Target.createTarget", url="about:blank")["targetId"]
        session = browser.send("Target.attachToTarget", targetId=target,
                               flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", session)
        browser.send("Page.navigate", session, url=f"{url}/ui/runs/{run_id}")
        browser.wait_event("Page.loadEventFired")

        # the run is held before its fourth turn: the page shows what happened so far
        until(browser, session, "document.getElementById('turns').textContent === '4'")
        assert evaluate(browser, session, "document.getElementById('status').textContent") \
            == "running"
        assert number(browser, session, "queries") >= 1
        assert number(browser, session, "sources") >= 1
        assert number(browser, session, "queries") + number(browser, session, "pages") == 3
        first_query = evaluate(browser, session,
                               "document.querySelector('#query-list li').textContent")
        assert "heat pumps" in first_query
        assert evaluate(browser, session, "document.getElementById('report').hidden") is True
        assert evaluate(browser, session, "!document.getElementById('cancel').hidden") is True

        gate.open()
        until(browser, session, "document.getElementById('status').textContent === 'finished'")
        until(browser, session, "!document.getElementById('report').hidden")
        frame = "document.getElementById('report').contentDocument"
        until(browser, session, f"!!({frame} && {frame}.querySelector('a.citation'))")
        link = evaluate(browser, session,
                        f"{frame}.querySelector('a.citation').getAttribute('href')")
        assert link.startswith("#source-")
        assert evaluate(browser, session, f"!!{frame}.getElementById('{link[1:]}')") is True
        assert number(browser, session, "turns") > 4
        figures = httpx.get(f"{url}/runs/{run_id}").json()["figures"]
        assert number(browser, session, "citations") == figures["citations"]
        assert number(browser, session, "sources-cited") == figures["distinct_sources_cited"]
        assert evaluate(browser, session, "document.getElementById('cancel').hidden") is True

        browser.send("Page.navigate", session, url=f"{url}/")
        until(browser, session, f"!!document.querySelector('tr[data-run=\"{run_id}\"]')")
        row = evaluate(browser, session,
                       f"document.querySelector('tr[data-run=\"{run_id}\"]').textContent")
        assert "finished" in row and "cold climates" in row

    requested = [e["params"]["request"]["url"] for e in browser.events
                 if e.get("method") == "Network.requestWillBeSent"]
    assert requested and all(u.startswith(url) or u.startswith("data:") for u in requested)
    assert console_errors(browser.events) == []
