"""Rendering pages in headless Chromium: what `browser = never | auto | always` costs.

20 pages on a server on 127.0.0.1: 10 plain (their text is in the HTML; some carry scripts,
one is short) and 10 that only JavaScript fills (an empty app root, a `<noscript>` plea, data
fetched by the page, a JS page with a long static footer). Each mode reads all 20 through
the run's fetcher (`page_fetcher`), `--concurrency` at a time, with a fresh browser (its start
counts). Printed per mode: pages per second, the ratio to `never`, peak memory (PSS) of this
process and its children (the browser) sampled every 20 ms, pages rendered, pages whose key sentence
was read; and for `auto`, how many pages it rendered that the plain fetch had already read
(renders not needed) and how many JS pages it left unread (misses).

    python bench/browser.py [--concurrency 4] [--budget-s 240] > /tmp/browser-bench.txt

The budget is a hard limit: past it the script stops with exit status 3.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path

import loopback

from rumination import Settings
from rumination.errors import FetchError
from rumination.models import Page
from rumination.reading.browser_render import page_fetcher

MODES = ("never", "auto", "always")
ARTICLE = ("Glaciers store about two thirds of the fresh water on the planet, and their melt "
           "feeds rivers through the dry season. ")
SCRIPTS = '<script src="/analytics.js"></script><script>window.dataLayer = [];</script>'


def key(n: int) -> str:
    return f"Key sentence number {n} says that page {n} is about glacier number {n}."


def _page(title: str, head: str, body: str) -> str:
    return (f"<!doctype html><html><head><title>{title}</title>{head}</head>"
            f"<body>{body}</body></html>")


def _writes(n: int, into: str = "root") -> str:
    text = (key(n) + " " + ARTICLE * 6).replace('"', "")
    return (f'<script>document.getElementById("{into}").innerHTML = '
            f'"<article><h1>Glacier {n}</h1><p>{text}</p></article>";</script>')


def pages() -> dict[str, tuple[str, bool]]:
    """path -> (HTML, whether the page needs JavaScript for its key sentence)."""
    plain = {
        0: _page("Article", "",
                 f"<article><h1>Glaciers</h1><p>{key(0)} {ARTICLE * 12}</p></article>"),
        1: _page("Article with scripts", SCRIPTS,
                 f"<article><p>{key(1)} {ARTICLE * 10}</p></article>"),
        2: _page("Long article", SCRIPTS, f"<article><p>{key(2)} {ARTICLE * 40}</p></article>"),
        3: _page("Short note", SCRIPTS, f"<p>{key(3)}</p>"),  # short, with scripts
        4: _page("Server-rendered app", SCRIPTS,
                 f'<div id="root"><article><p>{key(4)} {ARTICLE * 8}</p></article></div>'),
        5: _page("Comments need JS", SCRIPTS,
                 f"<article><p>{key(5)} {ARTICLE * 3}</p></article>"
                 "<noscript>Enable JavaScript to see the comments.</noscript>"),
        6: _page("Table", "",
                 f"<table><tr><td>{key(6)}</td><td>{ARTICLE * 5}</td></tr></table>"),
        7: _page("List", SCRIPTS,
                 "<ul>" + f"<li>{key(7)}</li>" + f"<li>{ARTICLE}</li>" * 8 + "</ul>"),
        8: _page("Brief", SCRIPTS, f"<article><p>{key(8)} {ARTICLE}</p></article>"),
        9: _page("Plain, no scripts", "", f"<p>{key(9)} {ARTICLE * 4}</p>"),
    }
    footer = ("<footer>" + "<p>Contact, imprint, privacy, careers, press, help.</p>" * 30
              + "</footer>")
    js = {
        10: _page("App", "", '<div id="root"></div>' + _writes(10)),
        11: _page("App", "", '<div id="app"></div><noscript>You need to enable JavaScript to '
                  'run this app.</noscript>' + _writes(11, "app")),
        12: _page("App", "", "<app-root></app-root><div id=\"main\"></div>" + _writes(12, "main")),
        13: _page("App", "", '<div id="root"></div><script>fetch("/data/13.json").then(r => '
                  'r.json()).then(d => { document.getElementById("root").innerHTML = '
                  '"<article><p>" + d.text + "</p></article>"; });</script>'),
        14: _page("App", "", '<nav>' + '<a href="/x">Section</a> ' * 20 + '</nav>'
                  '<div id="__next"></div>' + _writes(14, "__next")),
        15: _page("App", SCRIPTS, '<div id="root"></div>' + _writes(15)),
        16: _page("App", "", '<div id="svelte"></div>' + _writes(16, "svelte")),
        17: _page("App", "", '<div id="content"></div>' + _writes(17, "content")),
        18: _page("App", "", '<div id="root"></div><script>setTimeout(() => { '
                  + _writes(18).removeprefix("<script>").removesuffix("</script>")
                  + " }, 300);</script>"),
        19: _page("App with footer", "",
                  '<div id="content"></div>' + footer + _writes(19, "content")),
    }
    return {**{f"/p/{n}": (h, False) for n, h in plain.items()},
            **{f"/p/{n}": (h, True) for n, h in js.items()}}


def serve(site: dict[str, tuple[str, bool]]) -> ThreadingHTTPServer:
    def respond(path: str) -> tuple[bytes, str]:
        if path.startswith("/data/"):
            n = int(path.rsplit("/", 1)[1].split(".")[0])
            return f'{{"text": "{key(n)} {ARTICLE * 6}"}}'.encode(), "application/json"
        if path in site:
            return site[path][0].encode(), "text/html; charset=utf-8"
        return b"window.analytics = 1;", "application/javascript"

    return loopback.serve(respond)


def tree_pss_bytes(root: int) -> int:
    """Proportional set size of `root` and every process below it: memory shared between
    the browser's processes is counted once, split between them (RSS would count it in each)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(parent, []).append(int(entry.name))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in rollup.splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1]) * 1024
    return total


class PeakMemory:
    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_pss_bytes(os.getpid()))
            self._stop.wait(0.02)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Result:
    mode: str
    seconds: float
    peak_mb: float
    pages: dict[str, Page | None]


async def read_all(mode: str, base: str, paths: list[str], concurrency: int) -> Result:
    settings = Settings(browser=mode, fetch_allow_hosts=["127.0.0.1"], browser_pages=concurrency)
    fetcher = page_fetcher(settings)
    slots = asyncio.Semaphore(concurrency)

    async def read(path: str) -> Page | None:
        async with slots:
            try:
                return await fetcher.fetch(base + path)
            except FetchError:
                return None

    with PeakMemory() as memory:
        started = time.perf_counter()
        try:
            read_pages = await asyncio.gather(*(read(p) for p in paths))
        finally:
            await fetcher.aclose()
        seconds = time.perf_counter() - started
    return Result(mode, seconds, memory.peak / 1e6, dict(zip(paths, read_pages, strict=True)))


def has_key(page: Page | None, path: str) -> bool:
    return page is not None and key(int(path.rsplit("/", 1)[1])) in page.text


async def main(concurrency: int) -> None:
    site = pages()
    server = serve(site)
    base = f"http://127.0.0.1:{server.server_port}"
    paths = list(site)
    results = {mode: await read_all(mode, base, paths, concurrency) for mode in MODES}
    never = results["never"]
    print(f"{len(paths)} pages ({sum(not js for _, js in site.values())} plain, "
          f"{sum(js for _, js in site.values())} JavaScript), {concurrency} at a time\n")
    print(f"{'mode':7} {'seconds':>8} {'pages/s':>8} {'vs never':>9} {'peak MB':>8} "
          f"{'rendered':>9} {'key read':>9}")
    for mode, r in results.items():
        rendered = sum(bool(p and p.rendered) for p in r.pages.values())
        read = sum(has_key(p, path) for path, p in r.pages.items())
        print(f"{mode:7} {r.seconds:8.2f} {len(paths) / r.seconds:8.1f} "
              f"{never.seconds / r.seconds:9.3f} {r.peak_mb:8.0f} {rendered:9d} {read:9d}")
    auto = results["auto"].pages
    plain_read = {path for path, p in never.pages.items() if has_key(p, path)}
    unneeded = sorted(p for p in plain_read if (page := auto[p]) is not None and page.rendered)
    missed = sorted(p for p in paths if p not in plain_read and not has_key(auto[p], p))
    print(f"\nauto rendered {len(unneeded)} of {len(plain_read)} pages the plain fetch had "
          f"already read ({', '.join(unneeded) or 'none'}); it left {len(missed)} of "
          f"{len(paths) - len(plain_read)} JavaScript pages unread ({', '.join(missed) or 'none'})")
    server.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--budget-s", type=float, default=240.0)
    args = parser.parse_args()
    try:
        asyncio.run(asyncio.wait_for(main(args.concurrency), args.budget_s))
    except TimeoutError:
        print(f"over the time budget of {args.budget_s:g} s")
        raise SystemExit(3) from None
