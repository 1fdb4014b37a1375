"""rumination.reading.prefetch: the run's page cache and speculative prefetch of search hits."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from rumination import Researcher, Settings
from rumination.agent.browser import Browser
from rumination.errors import FetchError
from rumination.llm.client import Completion
from rumination.models import Message, Page, SearchHit
from rumination.reading.fetch import PageFetcher
from rumination.reading.prefetch import PageCache
from rumination.testing import ScriptedModel

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class GatedLoader:
    """Loads pages only when the test opens the gate of that URL; records every call."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.failing: set[str] = set()
        self.cancelled: list[str] = []

    def gate(self, url: str) -> asyncio.Event:
        return self.gates.setdefault(url, asyncio.Event())

    async def __call__(self, url: str) -> Page:
        self.calls.append(url)
        try:
            await self.gate(url).wait()
        except asyncio.CancelledError:
            self.cancelled.append(url)
            raise
        if url in self.failing:
            raise FetchError("the server answered HTTP 503")
        return Page(url=url, title=url, text=f"text of {url}")


async def test_prefetch_starts_the_top_hits_only() -> None:
    loader = GatedLoader()
    cache = PageCache(loader, prefetch=2)
    cache.prefetch(["https://a.test/1", "https://a.test/2", "https://a.test/3"])
    await asyncio.sleep(0)
    assert loader.calls == ["https://a.test/1", "https://a.test/2"]
    await cache.aclose()


async def test_a_click_waits_for_the_prefetch_under_way_instead_of_fetching_again() -> None:
    loader = GatedLoader()
    cache = PageCache(loader, prefetch=3)
    cache.prefetch(["https://a.test/1"])
    click = asyncio.create_task(cache.get("https://a.test/1"))
    await asyncio.sleep(0)
    assert not click.done()
    loader.gate("https://a.test/1").set()
    page = await click
    assert page.text == "text of https://a.test/1"
    assert loader.calls == ["https://a.test/1"] and cache.hits == 1
    # served from memory afterwards, under any spelling of the same URL
    again = await cache.get("HTTPS://A.TEST/1#section")
    assert again is page and loader.calls == ["https://a.test/1"]


async def test_a_failed_prefetch_is_tried_again_by_the_click() -> None:
    loader = GatedLoader()
    loader.failing.add("https://a.test/flaky")
    loader.gate("https://a.test/flaky").set()
    cache = PageCache(loader, prefetch=3)
    cache.prefetch(["https://a.test/flaky"])
    await asyncio.sleep(0.01)
    with pytest.raises(FetchError, match="503"):
        await cache.get("https://a.test/flaky")
    assert loader.calls == ["https://a.test/flaky"] * 2  # the prefetch, then the click's own
    loader.failing.clear()
    page = await cache.get("https://a.test/flaky")  # failures are not cached
    assert page.text.endswith("flaky") and len(loader.calls) == 3
    assert cache.hits == 0


async def test_aclose_cancels_what_is_still_loading() -> None:
    loader = GatedLoader()
    cache = PageCache(loader, prefetch=3)
    cache.prefetch(["https://a.test/1", "https://a.test/2"])
    loader.gate("https://a.test/2").set()
    await asyncio.sleep(0.01)
    await cache.aclose()
    assert loader.cancelled == ["https://a.test/1"]
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("prefetch")]


async def test_a_cancelled_click_leaves_the_load_for_the_next_one() -> None:
    loader = GatedLoader()
    cache = PageCache(loader, prefetch=0)
    first = asyncio.create_task(cache.get("https://a.test/1"))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    loader.gate("https://a.test/1").set()
    page = await cache.get("https://a.test/1")
    assert page.url == "https://a.test/1" and loader.calls == ["https://a.test/1"]


class HitsBackend:
    name = "hits"

    def __init__(self, hits: list[SearchHit]) -> None:
        self.hits = hits

    async def search(
        self, query: str, *, limit: int, language: str | None = None
    ) -> list[SearchHit]:
        return self.hits[:limit]

    async def fetch(self, url: str) -> Page | None:
        return None

    async def aclose(self) -> None:
        return None


async def test_search_prefetches_so_the_click_makes_no_request_of_its_own() -> None:
    requests: list[str] = []
    arrived = asyncio.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(str(request.url))
        if len(requests) == 3:
            arrived.set()
        return httpx.Response(200, text=f"page {request.url.path}")

    hits = [SearchHit(title=f"Page {i}", url=f"https://web.test/{i}") for i in range(1, 6)]
    fetcher = PageFetcher(transport=httpx.MockTransport(handler), allow_hosts={"web.test"})
    browser = Browser(HitsBackend(hits), fetcher, prefetch=3)
    await browser.search("anything")
    await asyncio.wait_for(arrived.wait(), 5)  # the model "thinks"; the top 3 load meanwhile
    assert sorted(requests) == [f"https://web.test/{i}" for i in (1, 2, 3)]
    observation = await browser.click(1)
    assert "page /2" in observation.text
    assert len(requests) == 3 and browser.pages.hits == 1
    await browser.click(4)  # not prefetched: fetched on demand
    assert requests[-1] == "https://web.test/5" and len(requests) == 4
    await browser.aclose()
    await fetcher.aclose()


async def test_a_run_ends_promptly_and_cancels_prefetches_still_waiting(tmp_path: Path) -> None:
    started = asyncio.Event()

    async def never_answers(request: httpx.Request) -> httpx.Response:
        started.set()
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    texts = [
        '<think>look</think>{"name": "search", "arguments": {"query": "slow pages"}}',
        '<think>enough</think>{"name": "finish", "arguments": {}}',
        "Nothing could be read.",
    ]
    hits = [SearchHit(title="Slow", url=f"https://slow.test/{i}") for i in range(3)]
    fetcher = PageFetcher(transport=httpx.MockTransport(never_answers), allow_hosts={"slow.test"})
    settings = Settings(keep_runs=False, prefetch=3, run_store=str(tmp_path / "runs.db"))


    class ThinksUntilThePrefetchesAreWaiting(ScriptedModel):
        async def chat(self, messages: Sequence[Message], **kwargs: Any) -> Completion:
            if self.requests:
                await asyncio.wait_for(started.wait(), 5)
            return await super().chat(messages, **kwargs)

    model = ThinksUntilThePrefetchesAreWaiting(texts)
    researcher = Researcher(settings, llm=model, backend=HitsBackend(hits), fetcher=fetcher)
    report = await asyncio.wait_for(researcher.run("slow?"), 10)
    assert started.is_set() and report.turns == 2
    loads = [t for t in asyncio.all_tasks() if t.get_name().startswith(("prefetch", "load"))]
    assert loads == []
    await fetcher.aclose()
