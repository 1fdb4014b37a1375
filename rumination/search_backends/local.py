"""The `local` backend: search a SQLite corpus built by `rumination index`.

With no corpus configured it uses the bundled demo corpus (texts written for this project,
CC0), indexed on first use into the user's cache folder: one index per installed copy, since
its documents' URLs are the paths of that copy's files.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sqlite3
from importlib.resources import as_file, files
from pathlib import Path
from typing import TYPE_CHECKING

from rumination.models import Page, SearchHit
from rumination.reading.cachedir import user_cache_dir
from rumination.search_backends.corpus import Corpus
from rumination.search_backends.engines.open import open_corpus
from rumination.search_backends.engines.protocol import RankedHit

if TYPE_CHECKING:
    from rumination.settings import Settings


DEMO_INDEX_PREFIX = "demo-corpus"
_SHARED_DEMO_INDEX = "demo-corpus.db"  # the one index every install used to share
_SQLITE_SIDE_FILES = ("-journal", "-wal", "-shm")


def demo_corpus_path() -> Path:
    """The bundled demo corpus, indexed (or refreshed) into the cache folder."""
    with as_file(files("rumination.search_backends") / "demo_corpus") as folder:
        return index_demo_corpus(Path(folder), user_cache_dir())


def index_demo_corpus(folder: Path, cache: Path) -> Path:
    """`folder` indexed into an index of its own in `cache`, named after where it lies: two
    installs never share one, so neither cites the other's files. An install changed in place
    is brought up to date file by file (Corpus.index_folder), and the indexes of copies that
    are gone are deleted."""
    folder = folder.resolve()
    digest = hashlib.sha256(str(folder).encode("utf-8")).hexdigest()[:16]
    db_path = cache / f"{DEMO_INDEX_PREFIX}-{digest}.db"
    _delete_indexes_of_deleted_copies(cache)
    corpus = Corpus(db_path, create=True)
    try:
        corpus.index_folder(folder)
    finally:
        corpus.close()
    return db_path


def _delete_indexes_of_deleted_copies(cache: Path) -> None:
    """Delete the shared index older versions wrote, and each demo index whose files are gone."""
    for db_path in cache.glob(f"{DEMO_INDEX_PREFIX}*.db"):
        if db_path.name == _SHARED_DEMO_INDEX or _files_are_gone(db_path):
            for leftover in (db_path, *(Path(f"{db_path}{end}") for end in _SQLITE_SIDE_FILES)):
                leftover.unlink(missing_ok=True)


def _files_are_gone(db_path: Path) -> bool:
    """True if the index holds documents and none of their files exists any more."""
    try:
        with contextlib.closing(sqlite3.connect(f"{db_path.as_uri()}?mode=ro", uri=True)) as db:
            paths = [Path(row[0]) for row in db.execute("SELECT path FROM documents")]
    except sqlite3.Error:  # being created right now, or not an index: leave it
        return False
    return bool(paths) and not any(path.exists() for path in paths)


class LocalCorpusBackend:
    """Search backend over a local corpus (either engine, found from the corpus itself): a
    hit is the best passage of a document, and fetching its URL reads the document from
    that passage on."""

    name = "local"
    requires = ("--corpus PATH built by `rumination index` (a SQLite file, or a tantivy "
                "folder; default: the bundled demo corpus)")

    def __init__(self, corpus_path: str | Path) -> None:
        self.corpus = open_corpus(corpus_path)

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalCorpusBackend:
        return cls(settings.corpus or demo_corpus_path())

    async def search(
        self, query: str, *, limit: int, language: str | None = None
    ) -> list[SearchHit]:
        return await asyncio.to_thread(self.corpus.search, query, limit)

    async def ranked(self, query: str, *, limit: int) -> list[RankedHit]:
        """Hits with their documents' collection ids and scores (`rumination search --trec`)."""
        return await asyncio.to_thread(self.corpus.ranked, query, limit)

    async def fetch(self, url: str) -> Page | None:
        return await asyncio.to_thread(self.corpus.get, url)

    async def aclose(self) -> None:
        self.corpus.close()
