"""Pages that need JavaScript, rendered in Debian's chromium through Playwright, behind the
fetcher's address rules. Two loopback addresses: the site on 127.0.0.1 (allow-listed) and
a server on 127.0.0.2 (not allowed) that counts every connection made to it, a preconnect
without a request included.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from rumination import Researcher, Settings
from rumination.agent.browser import Browser
from rumination.errors import ConfigError, FetchError
from rumination.models import Page, SearchHit
from rumination.reading import browser_launch
from rumination.reading.browser_render import PageRenderer, page_fetcher, renderer_for
from rumination.reading.fetch import PageFetcher
from rumination.store.run_store import RunStore
from rumination.testing import SimulatorConfig, SimulatorModel, SimulatorServer, simulate

pytestmark = pytest.mark.skipif(
    browser_launch.unavailable() is not None and not os.environ.get("CI"),
    reason="needs Playwright (rumination[browser]) and Debian's chromium; CI installs both",
)

SITE = "127.0.0.1"
ELSEWHERE = "127.0.0.2"
JS_TEXT = "Tidal locking slows the rotation of a moon until one face always points inward."
PLAIN_TEXT = "Plain pages carry their text in the HTML itself, so no browser is needed. " * 8


class Counting(ThreadingHTTPServer):
    """Counts connections as they are accepted, before any request is read."""

    daemon_threads = True
    connections = 0

    def get_request(self) -> Any:
        accepted = super().get_request()
        self.connections += 1
        return accepted


def js_page(other: str, extra: str = "") -> bytes:
    """A page whose text only its script writes, reaching for `other` in every way it can."""
    return f"""<!doctype html><html><head><title>Moons</title>
<link rel="preconnect" href="{other}/">
<link rel="stylesheet" href="{other}/style.css">
<script src="{other}/lib.js"></script></head>
<body><div id="root"></div>
<noscript>You need to enable JavaScript to run this app.</noscript>
<script>
document.getElementById("root").innerHTML =
  "<article><h1>Moons</h1><p>" + {JS_TEXT!r}.repeat(4) + "</p></article>";
fetch("{other}/api").catch(() => 0);
const x = new XMLHttpRequest(); x.open("GET", "{other}/xhr"); x.send();
try {{ new WebSocket("{other.replace('http', 'ws')}/ws"); }} catch (e) {{}}
navigator.sendBeacon && navigator.sendBeacon("{other}/beacon", "x");
window.open("{other}/popup");
new Worker(URL.createObjectURL(new Blob(["fetch('{other}/worker').catch(() => 0)"])));
</script>
<link rel="prefetch" href="{other}/prefetch"><a ping="{other}/ping" href="#">a</a>
<img src="{other}/pixel.png"><iframe src="{other}/frame"></iframe>{extra}
</body></html>""".encode()


class Site(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True
    other = ""

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        other = self.other
        pages = {
            "/js": js_page(other),
            "/plain": f"<html><head><title>Plain</title><script>var a=1;</script></head><body>"
                      f"<article><p>{PLAIN_TEXT}</p></article></body></html>".encode(),
            "/nav": f'<html><body><script>location = "{other}/next";</script></body></html>'
                    .encode(),
            "/redirecting-script": (
                b'<html><body><div id="root"></div><script src="/to-elsewhere"></script>'
                b'<script>document.getElementById("root").textContent = typeof stolen;'
                b"</script></body></html>"
            ),
            "/file": (
                '<html><body><div id="root"></div><iframe src="file:///etc/passwd"></iframe>'
                "<script>fetch('file:///etc/passwd').then(r => r.text())"
                ".then(t => document.body.append('READ ' + t), () => 0);"
                f"document.getElementById('root').textContent = {JS_TEXT!r};"
                "setTimeout(() => { location = 'file:///etc/passwd'; }, 50);</script>"
                "</body></html>"
            ).encode(),
            "/big-dom": (
                '<html><body><div id="root"></div><script>document.getElementById("root")'
                f".textContent = {JS_TEXT!r}.repeat(3000);</script></body></html>"
            ).encode(),
            "/by-name": js_page(other.replace(ELSEWHERE, "rebind.test")),
            "/hangs": js_page(other, '<script src="/never"></script><p>after the hang</p>'),
            "/heavy": (
                b'<html><body><div id="root"></div><script src="/big.js"></script>'
                b"</body></html>"
            ),
        }
        if self.path.startswith("/search?"):  # shaped like SearXNG's JSON
            host = f"http://{self.headers['host']}"
            results = [{"title": "Moons", "url": f"{host}/js", "content": "about moons"}]
            return self._send(json.dumps({"results": results}).encode(), "application/json")
        if self.path == "/never":
            time.sleep(30)
            return
        if self.path == "/to-elsewhere":
            self.send_response(302)
            self.send_header("Location", f"{other}/stolen.js")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/big.js":
            body = (f"document.getElementById('root').textContent = {JS_TEXT!r}.repeat(4);"
                    + "//" + "x" * 300_000).encode()
            return self._send(body, "application/javascript")
        body = pages.get(self.path)
        if body is None:
            return self._send(b"stolen = 1; it worked", "text/plain")
        self._send(body, "text/html; charset=utf-8")

    def _send(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[str, Counting]]:
    elsewhere = Counting((ELSEWHERE, 0), Site)
    handler = type("SiteHere", (Site,), {"other": f"http://{ELSEWHERE}:{elsewhere.server_port}"})
    site = Counting((SITE, 0), handler)
    for server in (site, elsewhere):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://{SITE}:{site.server_port}", elsewhere
    for server in (site, elsewhere):
        server.shutdown()
        server.server_close()


def fetcher(mode: str, **settings: Any) -> PageFetcher:
    given = {"fetch_allow_hosts": [SITE], "browser_settle_s": 0.5, **settings}
    return page_fetcher(Settings(browser=mode, **given))


async def fetch(mode: str, url: str, **settings: Any) -> tuple[Page, PageRenderer | None]:
    f = fetcher(mode, **settings)
    try:
        return await f.fetch(url), f.renderer  # type: ignore[return-value]
    finally:
        await f.aclose()


# --- reading what JavaScript wrote -------------------------------------------------------


@pytest.mark.parametrize("mode", ["always", "auto"])
def test_text_only_javascript_writes_is_read_when_rendering(servers: Any, mode: str) -> None:
    site, _ = servers
    page, _ = asyncio.run(fetch(mode, f"{site}/js"))
    assert page.rendered and JS_TEXT in page.text


def test_never_leaves_the_javascript_text_unread(servers: Any) -> None:
    site, _ = servers
    page, renderer = asyncio.run(fetch("never", f"{site}/js"))
    assert renderer is None and not page.rendered and JS_TEXT not in page.text


def test_auto_reads_a_plain_page_without_the_browser(servers: Any) -> None:
    site, _ = servers
    page, renderer = asyncio.run(fetch("auto", f"{site}/plain"))
    assert renderer is not None and renderer.rendered == 0
    assert not page.rendered and "Plain pages carry their text" in page.text


def test_extract_prints_the_javascript_text_with_always_and_not_with_never(servers: Any) -> None:
    site, _ = servers
    env = {**os.environ, "RUMINATION_FETCH_ALLOW_HOSTS": SITE, "RUMINATION_BROWSER_SETTLE_S": "0.5"}

    def extract(mode: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "rumination", "extract", f"{site}/js", "--browser", mode],
            capture_output=True, text=True, env=env, timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    rendered = extract("always")
    assert JS_TEXT in rendered and "Rendered: in a headless browser" in rendered
    assert JS_TEXT not in extract("never")


# --- the address rules ---------------------------------------------------------------------


def test_nothing_the_page_loads_reaches_an_address_the_fetcher_refuses(servers: Any) -> None:
    site, elsewhere = servers
    before = elsewhere.connections
    f = fetcher("always")

    async def run() -> tuple[Page, list[str]]:
        try:
            page = await f.fetch(f"{site}/js")
            return page, list(f.renderer.refused)  # type: ignore[union-attr]
        finally:
            await f.aclose()

    page, refused = asyncio.run(run())
    assert JS_TEXT in page.text
    assert elsewhere.connections == before
    tried = {url.split(": ", 1)[0].rsplit("/", 1)[-1] for url in refused}
    # the script, stylesheet, fetch, XHR, iframe, popup, websocket, a worker's fetch and a
    # prefetch link were each asked for (and refused); images, beacons and pings never are
    assert {"lib.js", "style.css", "api", "xhr", "frame", "popup", "ws", "worker",
            "prefetch"} <= tried


def test_the_same_page_does_reach_that_server_once_it_is_allowed(servers: Any) -> None:
    """The control: the counting server sees what a page sends it when the rules allow it."""
    site, elsewhere = servers
    before = elsewhere.connections
    asyncio.run(fetch("always", f"{site}/js", fetch_allow_hosts=[SITE, ELSEWHERE]))
    assert elsewhere.connections > before


def test_a_name_that_resolves_to_a_refused_address_is_refused(
    servers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name is resolved by the fetcher (Chromium resolves nothing), every answer checked."""
    site, elsewhere = servers
    real = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.test":
            asked.append(host)
            return real(ELSEWHERE, port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    before = elsewhere.connections
    f = fetcher("always")

    async def run() -> tuple[Page, list[str]]:
        try:
            return await f.fetch(f"{site}/by-name"), list(f.renderer.refused)  # type: ignore[union-attr]
        finally:
            await f.aclose()

    page, refused = asyncio.run(run())
    assert JS_TEXT in page.text and asked
    assert any("rebind.test resolves to a non-public address (127.0.0.2)" in r for r in refused)
    assert elsewhere.connections == before


def test_a_page_reads_no_local_file(servers: Any) -> None:
    site, _ = servers
    page, _ = asyncio.run(fetch("always", f"{site}/file"))
    assert page.rendered and JS_TEXT in page.text
    assert "READ" not in page.text and "root:" not in page.text


def test_a_script_navigation_to_a_refused_address_is_refused(servers: Any) -> None:
    site, elsewhere = servers
    before = elsewhere.connections
    with pytest.raises(FetchError, match="navigated to http://127.0.0.2"):
        asyncio.run(fetch("always", f"{site}/nav"))
    assert elsewhere.connections == before


def test_a_redirect_to_a_refused_address_is_not_followed(servers: Any) -> None:
    site, elsewhere = servers
    before = elsewhere.connections
    page, _ = asyncio.run(fetch("always", f"{site}/redirecting-script"))
    assert page.rendered and page.text == "undefined"  # the script never ran
    assert elsewhere.connections == before


# --- limits ------------------------------------------------------------------------------


def test_a_page_that_never_finishes_loading_ends_at_the_cap(servers: Any) -> None:
    site, _ = servers
    started = time.monotonic()
    page, _ = asyncio.run(fetch("always", f"{site}/hangs", browser_timeout_s=2))
    took = time.monotonic() - started
    assert page.rendered and JS_TEXT in page.text and "after the hang" not in page.text
    assert took < 2 + 8, took  # the cap, plus starting the browser and reading the DOM


def test_what_a_page_loads_is_capped(servers: Any) -> None:
    site, _ = servers
    page, _ = asyncio.run(fetch("always", f"{site}/heavy", browser_max_bytes=400_000))
    assert JS_TEXT in page.text  # under the cap the script runs
    with pytest.raises(FetchError, match="no readable text.* more than 100000 bytes"):
        asyncio.run(fetch("always", f"{site}/heavy", browser_max_bytes=100_000))


def test_the_rendered_dom_obeys_the_fetch_size_cap(servers: Any) -> None:
    site, _ = servers
    with pytest.raises(FetchError, match="rendered page is larger than 100000 bytes"):
        asyncio.run(fetch("always", f"{site}/big-dom", fetch_max_bytes=100_000))
    page, _ = asyncio.run(fetch("always", f"{site}/big-dom"))
    assert page.text.count(JS_TEXT) == 3000


def test_always_without_a_browser_is_one_line_naming_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigError, match="not found; rendering pages needs Chromium: apt"):
        renderer_for(Settings(browser="always", browser_executable="/nowhere/chromium"),
                     PageFetcher())
    monkeypatch.setattr(browser_launch, "playwright_installed", lambda: False)
    with pytest.raises(ConfigError, match=r"pip install 'rumination\[browser\]'"):
        renderer_for(Settings(browser="always"), PageFetcher())
    assert renderer_for(Settings(browser="auto"), PageFetcher()) is None


# --- no orphaned browser -----------------------------------------------------------------


def _marked_processes(mark: str) -> list[int]:
    """Live processes whose environment carries `mark` (the browser inherits it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if mark.encode() in environ and "\nState:\tZ" not in status:
            found.append(int(entry.name))
    return found


def _browser_started(mark: str) -> bool:
    for pid in _marked_processes(mark):
        try:
            if "chrom" in Path(f"/proc/{pid}/comm").read_text():
                return True
        except OSError:
            pass
    return False


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_no_browser_outlives_its_parent(servers: Any, sig: signal.Signals) -> None:
    site, _ = servers
    mark = f"RUMINATION_TEST_MARK_{uuid.uuid4().hex}"
    env = {**os.environ, "RUMINATION_FETCH_ALLOW_HOSTS": SITE, "RUMINATION_BROWSER_TIMEOUT_S":
           "120", mark: "1"}
    child = subprocess.Popen(
        [sys.executable, "-m", "rumination", "extract", f"{site}/hangs", "--browser", "always"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not _browser_started(mark):
            assert child.poll() is None and time.monotonic() < deadline, "no browser started"
            time.sleep(0.1)
        time.sleep(0.5)  # the page is loading
        child.send_signal(sig)
        child.wait(timeout=20)
        deadline = time.monotonic() + 10
        while _marked_processes(mark) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _marked_processes(mark) == []
        if sig == signal.SIGTERM:
            assert child.returncode == 4  # interrupted, as README's exit codes say
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


# --- a research run -------------------------------------------------------------------------


class OneHit:
    name = "one-hit"

    def __init__(self, url: str) -> None:
        self.url = url

    async def search(self, query: str, *, limit: int, language: str | None = None) -> list[
        SearchHit
    ]:
        return [SearchHit(title="Moons", url=self.url, snippet="about moons")]

    async def fetch(self, url: str) -> Page | None:
        return None

    async def aclose(self) -> None:
        return None


def test_a_research_run_reads_and_cites_a_page_only_javascript_writes(
    servers: Any, tmp_path: Path
) -> None:
    site, _ = servers
    settings = Settings(browser="auto", fetch_allow_hosts=[SITE], browser_settle_s=0.5,
                        run_store=str(tmp_path / "runs.db"), max_turns=6)
    f = page_fetcher(settings)

    async def run() -> Any:
        try:
            return await Researcher(settings, llm=SimulatorModel(), backend=OneHit(f"{site}/js"),
                                    fetcher=f).run("Why does tidal locking slow a moon?")
        finally:
            await f.aclose()

    report = asyncio.run(run())
    assert [c.url for c in report.citations] == [f"{site}/js"]
    assert "Tidal locking slows the rotation" in report.answer_markdown
    assert report.sources[0].rendered
    store = RunStore(str(tmp_path / "runs.db"))
    assert store.sources(report.run_id)[0].rendered
    observations = [t.observation or "" for t in store.turns(report.run_id)]
    assert any("Rendered: in a headless browser" in o and JS_TEXT in o for o in observations)


def test_the_browser_observation_says_the_page_was_rendered(servers: Any) -> None:
    site, _ = servers
    f = fetcher("auto")

    async def run() -> str:
        try:
            browser = Browser(OneHit(f"{site}/js"), f, prefetch=0)
            return (await browser.open(f"{site}/js")).text
        finally:
            await f.aclose()

    text = asyncio.run(run())
    assert "Rendered: in a headless browser" in text and JS_TEXT in text


def test_research_from_the_command_line_against_the_simulator_server(
    servers: Any, tmp_path: Path
) -> None:
    """The whole path: `rumination research --browser auto`, the simulator over HTTP, a
    SearXNG-shaped search on loopback whose only hit is the JavaScript page."""
    site, _ = servers
    out = tmp_path / "report.json"
    env = {**os.environ, "RUMINATION_FETCH_ALLOW_HOSTS": SITE, "RUMINATION_RETRIES": "0",
           "RUMINATION_RUN_STORE": str(tmp_path / "runs.db")}
    config = SimulatorConfig()
    with SimulatorServer(simulate, config) as simulator:
        done = subprocess.run(
            [sys.executable, "-m", "rumination", "research", "Why does tidal locking slow a moon?",
             "--llm-url", simulator.url, "--model", config.model, "--backend", "searxng",
             "--backend-opt", f"url={site}", "--browser", "auto", "--out", str(out)],
            capture_output=True, text=True, env=env, timeout=120,
        )
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text(encoding="utf-8"))
    assert [c["url"] for c in report["citations"]] == [f"{site}/js"]
    assert report["sources"][0]["rendered"] is True and report["simulated"] is True
    assert "Tidal locking slows the rotation" in report["answer_markdown"]


def test_prefetch_renders_in_the_background(servers: Any) -> None:
    site, _ = servers
    f = fetcher("auto")

    async def run() -> tuple[int, int, str]:
        try:
            browser = Browser(OneHit(f"{site}/js"), f, prefetch=1)
            await browser.search("moons")
            renderer = f.renderer
            assert renderer is not None
            for _ in range(300):  # the model "thinks" while the hit renders
                if renderer.rendered:
                    break
                await asyncio.sleep(0.05)
            before_click = renderer.rendered
            text = (await browser.click(0)).text
            return before_click, renderer.rendered, text
        finally:
            await f.aclose()

    before_click, after_click, text = asyncio.run(run())
    assert before_click == after_click == 1  # rendered once, before the click asked for it
    assert "Rendered: in a headless browser" in text and JS_TEXT in text


@pytest.mark.parametrize(
    ("extra_env", "args", "line"),
    [
        ({"RUMINATION_BROWSER_EXECUTABLE": "/nowhere/chromium"}, ["--browser", "always"],
         "error: browser_executable /nowhere/chromium not found; rendering pages needs "
         "Chromium: apt install chromium"),
        ({}, ["--browser", "sometimes"], "error: invalid setting browser: Input should be "
         "'auto', 'always' or 'never'"),
    ],
)
def test_browser_problems_are_one_line_and_exit_2(
    servers: Any, extra_env: dict[str, str], args: list[str], line: str
) -> None:
    site, _ = servers
    done = subprocess.run(
        [sys.executable, "-m", "rumination", "extract", f"{site}/js", *args],
        capture_output=True, text=True, env={**os.environ, **extra_env}, timeout=60,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith(line), done.stderr
