"""Prefetch: do page fetches hide behind the model's thinking?

A scripted session (3 searches, each followed by clicks on its top 3 hits, then the answer)
runs against a real HTTP server on 127.0.0.1 whose pages take `--page-ms` to serve, with a
model that spends `--think-s` per turn. The same session runs with prefetch off and on;
the table shows wall time, the model's own time, and what the tools added on top of it
(target with prefetch on: under 10% of the model's time).

    python bench/prefetch.py [--page-ms 300] [--think-s 1.0] [--prefetch 3]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Sequence
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import loopback

from rumination import Researcher, Settings
from rumination.llm.client import Completion
from rumination.models import Message, Page, SearchHit
from rumination.testing import ScriptedModel

SEARCHES = 3
CLICKS_PER_SEARCH = 3
HITS_PER_SEARCH = 10


def slow_web(page_seconds: float) -> ThreadingHTTPServer:
    def page(path: str) -> tuple[bytes, str]:
        time.sleep(page_seconds)
        body = (f"<html><head><title>Page {path}</title></head><body><article>"
                + "<p>Heat pumps move heat rather than make it. </p>" * 40
                + "</article></body></html>")
        return body.encode(), "text/html; charset=utf-8"

    return loopback.serve(page)


class WebBackend:
    """Every query gets its own ten pages on the slow server."""

    name = "bench-web"

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.queries = 0

    async def search(
        self, query: str, *, limit: int, language: str | None = None
    ) -> list[SearchHit]:
        self.queries += 1
        return [
            SearchHit(title=f"Result {i}", url=f"{self.base_url}/q{self.queries}/p{i}",
                      snippet="Heat pumps.")
            for i in range(1, min(limit, HITS_PER_SEARCH) + 1)
        ]

    async def fetch(self, url: str) -> Page | None:
        return None

    async def aclose(self) -> None:
        return None


class ThinkingModel(ScriptedModel):
    """Replays the session's turns, spending `think_s` of (model) time on each."""

    def __init__(self, texts: list[str], think_s: float) -> None:
        super().__init__(texts)
        self.think_s = think_s
        self.model_seconds = 0.0

    async def chat(self, messages: Sequence[Message], **kwargs: Any) -> Completion:
        started = time.perf_counter()
        await asyncio.sleep(self.think_s)
        self.model_seconds += time.perf_counter() - started
        return await super().chat(messages, **kwargs)


def session() -> list[str]:
    turns = []
    for s in range(SEARCHES):
        turns.append(f'<think>search</think>{{"name": "search", "arguments": '
                     f'{{"query": "heat pumps {s}"}}}}')
        for c in range(CLICKS_PER_SEARCH):
            link_id = s * HITS_PER_SEARCH + c  # ids count from 0 across searches
            turns.append(f'<think>read</think>{{"name": "click", "arguments": '
                         f'{{"link_id": {link_id}}}}}')
    turns.append('<think>done</think>{"name": "finish", "arguments": {}}')
    turns.append("Heat pumps move heat 【0†source】.")
    return turns


def run(prefetch: int, base_url: str, think_s: float, workdir: Path) -> tuple[float, float]:
    model = ThinkingModel(session(), think_s)
    settings = Settings(
        prefetch=prefetch, fetch_allow_hosts=["127.0.0.1"], keep_runs=False,
        run_store=str(workdir / "runs.db"), context_window=32768,
    )
    researcher = Researcher(settings, llm=model, backend=WebBackend(base_url))
    started = time.perf_counter()
    report = asyncio.run(researcher.run("How do heat pumps work?"))
    wall = time.perf_counter() - started
    assert report.turns == SEARCHES * (CLICKS_PER_SEARCH + 1) + 1, report.warnings
    assert not any("could not" in w for w in report.warnings), report.warnings
    return wall, model.model_seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--page-ms", type=float, default=300.0)
    parser.add_argument("--think-s", type=float, default=1.0)
    parser.add_argument("--prefetch", type=int, default=3)
    args = parser.parse_args(argv)
    server = slow_web(args.page_ms / 1000)
    base_url = f"http://127.0.0.1:{server.server_address[1]}"
    clicks = SEARCHES * CLICKS_PER_SEARCH
    print(f"{clicks} clicks on pages served in {args.page_ms:g} ms; "
          f"model {args.think_s:g} s per turn")
    print(f"{'prefetch':>8} {'wall s':>7} {'model s':>8} {'tools add':>10}")
    walls = []
    with tempfile.TemporaryDirectory() as tmp:
        for prefetch in (0, args.prefetch):
            wall, model_s = run(prefetch, base_url, args.think_s, Path(tmp))
            walls.append(wall)
            added = (wall - model_s) / model_s
            print(f"{prefetch:>8} {wall:>7.2f} {model_s:>8.2f} {added:>10.1%}", flush=True)
    server.shutdown()
    print(f"wall-clock ratio, prefetch on / off: {walls[1] / walls[0]:.3f}")


if __name__ == "__main__":
    main()
