"""The HTML report in a real browser: Debian's chromium, headless, driven over the DevTools
protocol (CDP) on a pipe (`--remote-debugging-pipe`: JSON messages ending in NUL on fds 3
and 4, so no websocket client and no debugging port are needed). The page is served over
HTTP on 127.0.0.1. Checked: it renders (title, banner, table), a citation link jumps to its
source entry when clicked with the mouse, and the console stays free of errors.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from rumination.models import Citation, Report, ReportFigures, Source
from rumination.reports.render import render_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TIMEOUT_S = 30.0

pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (apt-get install chromium); CI installs it",
)


class Cdp:
    """A minimal DevTools protocol client over chromium's debugging pipe."""

    def __init__(self, binary: str, profile: Path) -> None:
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def wire_fds() -> None:  # runs in the child: CDP reads fd 3 and writes fd 4
            high_r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
            high_w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-extensions", "--remote-debugging-pipe",
             f"--user-data-dir={profile}", "--window-size=1000,800", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=wire_fds, close_fds=False,  # fds 3 and 4 must survive the exec
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        for fd in (self._to_child, self._from_child):
            os.close(fd)
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._from_child, 65536)
            if not chunk:
                raise RuntimeError("chromium closed the debugging pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") != self._next_id:
                self.events.append(reply)
                continue
            if "error" in reply:
                raise RuntimeError(f"{method}: {reply['error']}")
            result: dict[str, Any] = reply.get("result", {})
            return result

    def wait_event(self, method: str) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT_S
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self._read_message(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return event


def evaluate(cdp: Cdp, session: str, expression: str) -> Any:
    result = cdp.send("Runtime.evaluate", session, expression=expression, returnByValue=True)
    if "exceptionDetails" in result:
        raise AssertionError(f"{expression}: {result['exceptionDetails']}")
    return result["result"].get("value")


def console_errors(events: list[dict[str, Any]]) -> list[str]:
    errors = []
    for event in events:
        params = event.get("params", {})
        if event.get("method") == "Runtime.exceptionThrown":
            errors.append(json.dumps(params["exceptionDetails"])[:300])
        elif event.get("method") == "Runtime.consoleAPICalled" and params.get("type") == "error":
            errors.append(json.dumps(params.get("args"))[:300])
        elif event.get("method") == "Log.entryAdded" and params["entry"]["level"] == "error":
            errors.append(params["entry"].get("text", "")[:300])
    return errors


def sample_report() -> Report:
    sources = [
        Source(source_id=4, url="https://example.org/cold", title="Cold-climate <field> trials",
               fetched_at=datetime(2026, 1, 5, tzinfo=UTC)),
        Source(source_id=9, url="https://example.org/cop", title="COP & seasonal figures"),
        Source(source_id=11, url="corpus://demo/other", title="Seen, not cited"),
    ]
    filler = "\n\n".join(
        f"Paragraph {i} keeps the page long enough to scroll to the sources." for i in range(40)
    )
    answer = (
        "# Heat pumps\n\nHeat pumps work in the cold[1]. Efficiency falls as it gets colder[2][1]."
        "\n\n| Outdoor | COP |\n|---|---|\n| 7 °C | 3.5 [2] |\n| -15 °C | 2.0 |\n\n"
        f"{filler}\n\nA hostile line: <script>alert(1)</script> and <img src=x onerror=alert(2)>."
    )
    return Report(
        question="How do heat pumps cope with cold?", answer_markdown=answer,
        citations=[Citation(number=1, source_id=4, url=sources[0].url, title=sources[0].title),
                   Citation(number=2, source_id=9, url=sources[1].url, title=sources[1].title)],
        sources=sources, run_id="run123", model="test-model", turns=3,
        figures=ReportFigures(citations=4, distinct_sources_cited=2, sources_not_cited=1,
                              cited_paragraph_share=0.1, words=400, tokens_estimate=600),
        simulated=True,
    )


class _QuietHandler(SimpleHTTPRequestHandler):
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def served_page(tmp_path: Path) -> Iterator[str]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "report.html").write_text(render_report(sample_report(), "html"), encoding="utf-8")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/report.html"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Cdp]:
    assert CHROMIUM is not None, "chromium is required in CI (.ci/run installs it)"
    cdp = Cdp(CHROMIUM, tmp_path / "profile")
    try:
        yield cdp
    finally:
        cdp.close()


def test_page_renders_and_a_citation_link_jumps_to_its_source(
    browser: Cdp, served_page: str
) -> None:
    target = browser.send("Target.createTarget", url="about:blank")["targetId"]
    session = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    for domain in ("Page", "Runtime", "Log"):
        browser.send(f"{domain}.enable", session)
    browser.send("Page.navigate", session, url=served_page)
    browser.wait_event("Page.loadEventFired")

    assert evaluate(browser, session, "document.title") == (
        "[SIMULATED] How do heat pumps cope with cold?"
    )
    assert evaluate(browser, session, "document.getElementById('simulated').textContent")
    assert evaluate(browser, session, "document.querySelectorAll('table td').length") == 4
    assert evaluate(browser, session, "document.scripts.length") == 0
    assert "<script>alert(1)</script>" in evaluate(
        browser, session, "document.querySelector('article').textContent"
    )

    link = "document.querySelector('a.citation[href=\"#source-2\"]')"
    assert evaluate(browser, session, f"{link}.title") == "COP & seasonal figures"
    evaluate(browser, session, f"{link}.scrollIntoView({{block: 'center'}})")
    box = evaluate(
        browser, session,
        f"(() => {{ const r = {link}.getBoundingClientRect(); "
        "return [r.left + r.width / 2, r.top + r.height / 2]; })()",
    )
    assert evaluate(browser, session, "window.scrollY") < evaluate(
        browser, session, "document.getElementById('source-2').offsetTop"
    ) - 800
    for kind in ("mousePressed", "mouseReleased"):
        browser.send("Input.dispatchMouseEvent", session, type=kind, x=box[0], y=box[1],
                     button="left", clickCount=1)
    deadline = time.monotonic() + 10
    while evaluate(browser, session, "location.hash") != "#source-2":
        assert time.monotonic() < deadline, "clicking the citation did not navigate"
        time.sleep(0.05)
    assert evaluate(browser, session, "document.querySelector(':target').id") == "source-2"
    assert "COP & seasonal figures" in evaluate(
        browser, session, "document.querySelector(':target').textContent"
    )
    in_view = (
        "(() => { const r = document.getElementById('source-2').getBoundingClientRect(); "
        "return r.top >= 0 && r.bottom <= window.innerHeight; })()"
    )
    assert evaluate(browser, session, in_view) is True

    assert console_errors(browser.events) == []


def test_a_flagged_citation_shows_its_evidence_on_hover_and_on_keyboard_focus(
    browser: Cdp, tmp_path: Path
) -> None:
    import asyncio

    from rumination.support.check import check_support
    from rumination.support.lexical import LexicalJudge

    page = "Cold-climate units keep a COP of 2.0 at -15 C. They need defrost cycles in frost."
    report = Report(
        question="Cold?", run_id="r1", model="m",
        answer_markdown="Units keep a COP of 2.0 at -15 C.[1] They never need defrost.[1]",
        citations=[Citation(number=1, source_id=1, url="https://example.org/c", title="Cold")],
        sources=[Source(source_id=1, url="https://example.org/c", title="Cold")],
    )
    checked = asyncio.run(check_support(report, {1: page}, LexicalJudge(), "flag"))
    site = tmp_path / "checked"
    site.mkdir()
    (site / "r.html").write_text(render_report(checked, "html"), encoding="utf-8")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        target = browser.send("Target.createTarget", url="about:blank")["targetId"]
        session = browser.send("Target.attachToTarget", targetId=target,
                               flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            browser.send(f"{domain}.enable", session)
        browser.send("Page.navigate", session,
                     url=f"http://127.0.0.1:{server.server_address[1]}/r.html")
        browser.wait_event("Page.loadEventFired")

        def shown(tip: str) -> str:
            return str(evaluate(browser, session,
                                f"getComputedStyle(document.getElementById('{tip}')).display"))

        assert shown("evidence-0") == "none" and shown("evidence-1") == "none"
        flagged = "document.querySelector('.cite.flagged a.citation')"
        assert evaluate(browser, session, f"{flagged}.getAttribute('aria-describedby')") == (
            "evidence-1"
        )
        evaluate(browser, session, f"{flagged}.focus()")
        assert shown("evidence-1") == "block" and shown("evidence-0") == "none"
        text = evaluate(browser, session, "document.getElementById('evidence-1').innerText")
        assert "NOT supported" in text and "defrost cycles" in text
        evaluate(browser, session, "document.activeElement.blur()")
        box = evaluate(
            browser, session,
            "(() => { const r = document.querySelector('.cite.verdict-supported a')"
            ".getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; })()",
        )
        browser.send("Input.dispatchMouseEvent", session, type="mouseMoved", x=box[0], y=box[1])
        deadline = time.monotonic() + 10
        while shown("evidence-0") != "block":
            assert time.monotonic() < deadline, "hovering the citation did not show its evidence"
            time.sleep(0.05)
        assert console_errors(browser.events) == []
    finally:
        server.shutdown()
        server.server_close()
