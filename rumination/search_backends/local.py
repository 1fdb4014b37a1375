"""The `local` backend: search a SQLite corpus built by `rumination index`.

With no corpus configured it uses the bundled demo corpus (texts written for this project,
CC0), indexed on first use into the user's cache folder.
"""

from __future__ import annotations

import asyncio
import os
from importlib.resources import as_file, files
from pathlib import Path
from typing import TYPE_CHECKING

from rumination.models import Page, SearchHit

from .corpus import Corpus

if TYPE_CHECKING:
    from rumination.settings import Settings


def demo_corpus_path() -> Path:
    """The bundled demo corpus, indexed (or refreshed) into the cache folder."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rumination"
    cache.mkdir(parents=True, exist_ok=True)
    db_path = cache / "demo-corpus.db"
    with as_file(files("rumination.search_backends") / "demo_corpus") as folder:
        corpus = Corpus(db_path, create=True)
        try:
            corpus.index_folder(Path(folder))
        finally:
            corpus.close()
    return db_path


class LocalCorpusBackend:
    """Search backend over a local SQLite FTS5 corpus: a hit is the best passage of a
    document, and fetching its URL reads the document from that passage on."""

    name = "local"
    requires = "--corpus FILE built by `rumination index` (default: the bundled demo corpus)"

    def __init__(self, corpus_path: str | Path) -> None:
        self.corpus = Corpus(corpus_path)

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalCorpusBackend:
        return cls(settings.corpus or demo_corpus_path())

    async def search(
        self, query: str, *, limit: int, language: str | None = None
    ) -> list[SearchHit]:
        return await asyncio.to_thread(self.corpus.search, query, limit)

    async def fetch(self, url: str) -> Page | None:
        return await asyncio.to_thread(self.corpus.get, url)

    async def aclose(self) -> None:
        self.corpus.close()
