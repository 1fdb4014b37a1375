"""A run's page cache, with speculative prefetch of search hits.

When a search returns, the top hits start loading in the background while the model thinks,
so a later `click` is served from memory. Pages are keyed by normalized URL, so the same page
reached twice (a click, then an `open` of the same URL) is fetched once. A failed prefetch
is forgotten: the click that wants the page tries again and reports its own error. Whatever
is still loading when the run ends is cancelled by `aclose`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from rumination.models import Page
from rumination.urls import normalize_url

Loader = Callable[[str], Coroutine[Any, Any, Page]]


class PageCache:
    def __init__(self, load: Loader, *, prefetch: int = 3) -> None:
        self._load = load
        self.prefetch_count = prefetch
        self._pages: dict[str, asyncio.Task[Page]] = {}
        self._speculative: set[str] = set()
        self.hits = 0
        """Pages served by a prefetch that was already under way or done."""

    def prefetch(self, urls: Iterable[str]) -> None:
        """Start loading the first `prefetch_count` of `urls` that are not loaded yet."""
        for url in list(urls)[: self.prefetch_count]:
            key = normalize_url(url)
            if key not in self._pages:
                self._pages[key] = asyncio.create_task(self._load(url), name=f"prefetch {url}")
                self._speculative.add(key)

    async def get(self, url: str) -> Page:
        """The page at `url`: from memory, from a load under way, or loaded now."""
        key = normalize_url(url)
        task = self._pages.get(key)
        if task is not None and not _failed(task):
            try:
                page = await asyncio.shield(task)
            except Exception:  # it failed while we waited: load again and report that
                pass
            else:
                if key in self._speculative:
                    self.hits += 1
                    self._speculative.discard(key)
                return page
        self._speculative.discard(key)
        task = self._pages[key] = asyncio.create_task(self._load(url), name=f"load {url}")
        return await asyncio.shield(task)

    async def aclose(self) -> None:
        """Cancel every load still under way (the run is over)."""
        pending = [task for task in self._pages.values() if not task.done()]
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(BaseException):
                await task
        for task in self._pages.values():  # retrieve failures so asyncio does not log them
            if task.done() and not task.cancelled():
                task.exception()
        self._pages.clear()


def _failed(task: asyncio.Task[Page]) -> bool:
    return task.done() and (task.cancelled() or task.exception() is not None)
