"""Execute the model's search / click / open calls and render what it sees.

Every hit and opened page is registered in the run's SourceRegistry. Pages load through the
run's PageCache, which starts fetching the top search hits while the model thinks. Pages are
shown in windows of `window_chars` with a "Visible: a% - b%" header; clicking the same id
again shows the next window, so nothing is silently cut.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rumination.agent.backends import SearchBackend
from rumination.agent.sources import SourceRegistry
from rumination.errors import BackendError, FetchError
from rumination.models import Page, Source, ToolCall
from rumination.reading.fetch import PageFetcher
from rumination.reading.prefetch import PageCache
from rumination.reading.untrusted import neutralise, one_line
from rumination.templates import render

# "scheme:" not followed by a digit ("localhost:8080" is a host and port, not a scheme)
_HAS_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:(?!\d)")


# observation_style -> template: the form the model writes, or the model card's mock form
SEARCH_RESULT_TEMPLATES = {"model": "search_results", "card": "search_results_card"}


@dataclass
class Observation:
    text: str
    new_sources: list[Source] = field(default_factory=list)
    failure: str | None = None  # search_failed, fetch_failed, unknown_link: for metrics


@dataclass
class _Reading:
    page: Page
    offset: int = 0


class Browser:
    def __init__(
        self,
        backend: SearchBackend,
        fetcher: PageFetcher,
        registry: SourceRegistry | None = None,
        *,
        search_limit: int = 10,
        window_chars: int = 12000,
        prefetch: int = 3,
        language: str | None = None,
        observation_style: str = "model",
    ) -> None:
        self.backend = backend
        self.fetcher = fetcher
        self.registry = registry if registry is not None else SourceRegistry()
        self.search_limit = search_limit
        self.window_chars = window_chars
        self.language = language
        self.results_template = SEARCH_RESULT_TEMPLATES[observation_style]
        self.pages = PageCache(self._load, prefetch=prefetch)
        self._readings: dict[int, _Reading] = {}

    async def aclose(self) -> None:
        """Cancel the page loads still under way."""
        await self.pages.aclose()

    async def execute(self, call: ToolCall) -> Observation:
        if call.name == "search":
            return await self.search(str(call.arguments["query"]))
        if call.name == "click":
            return await self.click(int(call.arguments["link_id"]))
        if call.name == "open":
            return await self.open(str(call.arguments["url"]))
        raise ValueError(f"the browser does not execute {call.name!r}")

    async def search(self, query: str) -> Observation:
        try:
            hits = await self.backend.search(
                query, limit=self.search_limit, language=self.language
            )
        except BackendError as exc:
            return Observation(
                render("search_failed", query=one_line(query), reason=one_line(str(exc))),
                failure="search_failed",
            )
        if not hits:
            return Observation(render("no_results", query=one_line(query)))
        first_new = self.registry.next_id
        shown = []
        for hit in hits:
            source = self.registry.register(hit.url, one_line(hit.title), neutralise(hit.snippet))
            shown.append(
                {
                    "source_id": source.source_id,
                    "title": source.title,
                    "url": one_line(source.url, 2000),
                    "snippet": " ".join(neutralise(hit.snippet).split()),
                }
            )
        new = [s for s in self.registry.all() if s.source_id >= first_new]
        self.pages.prefetch(hit.url for hit in hits)
        return Observation(render(self.results_template, hits=shown), new)

    def reading_position(self, call: ToolCall) -> int | None:
        """Where a click or open of `call` would start reading its page (clicking again
        shows the next window, so a second click is progress until the page is read)."""
        if call.name == "click":
            source = self.registry.get(call.arguments.get("link_id"))  # type: ignore[arg-type]
        elif call.name == "open":
            source = self.registry.by_url(with_scheme(str(call.arguments.get("url", ""))))
        else:
            return None
        reading = self._readings.get(source.source_id) if source is not None else None
        if reading is None:
            return 0
        return 0 if reading.offset >= len(reading.page.text) else reading.offset

    async def click(self, link_id: int) -> Observation:
        source = self.registry.get(link_id)
        if source is None:
            known = _id_range(self.registry) or "none yet; search first"
            return Observation(
                f"There is no result with link_id {link_id} (ids seen so far: {known}).",
                failure="unknown_link",
            )
        return await self._read(source, [])

    async def open(self, url: str) -> Observation:
        url = with_scheme(url)
        known = self.registry.by_url(url)
        if known is not None:
            return await self._read(known, [])
        try:
            page = await self.pages.get(url)
        except FetchError as exc:
            return Observation(
                render(
                    "page_error", source_id="-", url=one_line(url, 2000),
                    reason=one_line(str(exc)),
                ),
                failure="fetch_failed",
            )
        source = self.registry.register(url, one_line(page.title or url))
        self._readings[source.source_id] = _Reading(page)
        return await self._read(source, [source])

    async def _load(self, url: str) -> Page:
        try:
            page = await self.backend.fetch(url)
        except BackendError as exc:  # like a failed web fetch: the model picks another source
            raise FetchError(str(exc)) from exc
        return page if page is not None else await self.fetcher.fetch(url)

    async def _read(self, source: Source, new: list[Source]) -> Observation:
        reading = self._readings.get(source.source_id)
        if reading is None:
            try:
                page = await self.pages.get(source.url)
            except FetchError as exc:
                return Observation(
                    render(
                        "page_error", source_id=source.source_id, url=one_line(source.url, 2000),
                        reason=one_line(str(exc)),
                    ),
                    new,
                    failure="fetch_failed",
                )
            reading = self._readings[source.source_id] = _Reading(page)
        self.registry.mark_fetched(source.source_id, rendered=reading.page.rendered)
        text = reading.page.text
        if reading.offset >= len(text):
            reading.offset = 0  # read past the end: start over rather than show nothing
        observation, reading.offset = page_window(
            source.source_id, source.title, source.url, text, reading.offset, self.window_chars,
            published=reading.page.published, rendered=reading.page.rendered,
        )
        return Observation(observation, new)


def with_scheme(url: str) -> str:
    """The URL as `open` reads it: stripped, https:// when it names no scheme."""
    url = url.strip()
    return url if _HAS_SCHEME.match(url) else "https://" + url


def page_window(
    source_id: int, title: str, url: str, text: str, start: int, size: int,
    *, published: str | None = None, rendered: bool = False,
) -> tuple[str, int]:
    """The observation showing `text` from `start` (about `size` characters, ending at a
    break) under its header, and where that window ends. `title` is already one line."""
    end = _window_end(text, start, size)
    observation = render(
        "page",
        source_id=source_id,
        title=title,
        url=one_line(url, 2000),
        published=published,
        rendered=rendered,
        start_percent=_percent(start, len(text)) if start else 0,
        end_percent=_percent(end, len(text)),
        more=end < len(text),
        text=neutralise(text[start:end]).strip() or "(no readable text)",
    )
    return observation, end


def _id_range(registry: SourceRegistry) -> str:
    ids = [source.source_id for source in registry.all()]
    return f"{min(ids)} to {max(ids)}" if ids else ""


def _window_end(text: str, start: int, size: int) -> int:
    """End of the window that starts at `start`, moved back to a paragraph or line break."""
    end = start + size
    if end >= len(text):
        return len(text)
    for separator in ("\n\n", "\n", ". ", " "):
        cut = text.rfind(separator, start + size // 2, end)
        if cut != -1:
            return cut + len(separator)
    return end


def _percent(position: int, total: int) -> int:
    return 100 if total == 0 else round(100 * position / total)
