"""The run's source registry: every document shown to the model gets a stable citation id.

Ids start at 0, as the model's own pipeline numbers results (`enumerate`), grow by one per new
document for the whole run (a later search never restarts them), and the same URL always keeps
its first id. A run stored before ids started at 0 keeps its 1-based ids when resumed: the
next id is always one past the highest one, so no id the model has seen changes meaning.
"""

from __future__ import annotations

from datetime import UTC, datetime

from rumination.models import Source
from rumination.urls import normalize_url

FIRST_ID = 0
class SourceRegistry:
    def __init__(self, sources: list[Source] | None = None) -> None:
        self._by_id: dict[int, Source] = {}
        self._by_url: dict[str, int] = {}
        for source in sources or []:
            self._add(source)

    def _add(self, source: Source) -> None:
        self._by_id[source.source_id] = source
        self._by_url.setdefault(normalize_url(source.url), source.source_id)

    def register(self, url: str, title: str, snippet: str = "") -> Source:
        """The source for `url`, created with the next id if it is new."""
        known = self.by_url(url)
        if known is not None:
            if snippet and not known.snippet:
                known.snippet = snippet
            return known
        source = Source(source_id=self.next_id, url=url, title=title, snippet=snippet)
        self._add(source)
        return source

    @property
    def next_id(self) -> int:
        """The id the next new document gets."""
        return max(self._by_id) + 1 if self._by_id else FIRST_ID

    def mark_fetched(self, source_id: int, *, rendered: bool = False) -> None:
        source = self._by_id[source_id]
        if source.fetched_at is None:
            source.fetched_at = datetime.now(UTC)
        source.rendered = source.rendered or rendered

    def get(self, source_id: int) -> Source | None:
        return self._by_id.get(source_id)

    def by_url(self, url: str) -> Source | None:
        source_id = self._by_url.get(normalize_url(url))
        return None if source_id is None else self._by_id[source_id]

    def __contains__(self, source_id: object) -> bool:
        return source_id in self._by_id

    def __len__(self) -> int:
        return len(self._by_id)

    def all(self) -> list[Source]:
        return [self._by_id[i] for i in sorted(self._by_id)]
