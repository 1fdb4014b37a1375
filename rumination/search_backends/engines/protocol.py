"""What a local corpus engine provides, whichever index it searches.

Two engines ship: `sqlite` (`corpus.Corpus`: one SQLite file, passages in FTS5) and
`tantivy` (`engines.tantivy_corpus.TantivyCorpus`: a folder holding the same documents table
in SQLite and the passages in a Tantivy index). Both keep the same query semantics
(`fts_query`: words, "phrases", prefix*, stopwords; Porter-style stemming; a title match
worth five body matches), the same passages (`chunking`) and the same incremental
re-indexing of folders. A later engine (a dense index, say) provides the same methods; the
`merge` backend can then fuse its hits with a lexical engine's by reciprocal rank.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from rumination.models import Page, SearchHit

if TYPE_CHECKING:
    from rumination.reading.documents import ParsedDocument
    from rumination.search_backends.chunking import Chunk
    from rumination.search_backends.index_events import FileEvent, IndexStats


@dataclass(frozen=True)
class RankedHit:
    """A search hit with what an evaluation needs: the document's id in its collection (the
    imported record's id, or the file's path relative to the indexed folder) and its score
    (higher is better; comparable within one engine's answer only)."""

    doc_id: str
    score: float
    hit: SearchHit


class CorpusEngine(Protocol):
    """A local corpus: documents split into passages, searched for their best passage."""

    engine: str  # "sqlite", "tantivy"
    records_per_commit: int  # records a collection import commits at once
    path: Path

    def search(self, query: str, limit: int = 10) -> list[SearchHit]: ...

    def ranked(self, query: str, limit: int = 10) -> list[RankedHit]: ...

    def get(self, url: str) -> Page | None: ...

    def index_folder(
        self, folder: Path, on_file: Callable[[FileEvent], None] | None = None
    ) -> IndexStats: ...

    def __len__(self) -> int: ...

    def passage_count(self) -> int: ...

    def close(self) -> None: ...

    # what collection importers use (see importers.records)
    def batch(self) -> AbstractContextManager[None]: ...

    def known(self, key: str) -> tuple[str, str | None] | None: ...

    def restamp(self, key: str, stamp: str) -> None: ...

    def store(
        self, key: str, doc: ParsedDocument, chunks: list[Chunk], *, digest: str,
        stamp: str | None, doc_id: str, now: str,
    ) -> None: ...

    def remove_stale(self, key_prefix: str, stamp: str) -> int: ...

    def url_holder(self, url: str) -> str | None: ...

    def set_meta(self, key: str, value: str | None) -> None: ...

    def meta(self, key: str) -> str | None: ...

