"""A local document corpus in SQLite with an FTS5 index of passages (bm25 ranking, snippets).

Files (.md, .markdown, .txt, .html, .htm, and .pdf when pypdf is installed) are read, split
into passages (see `chunking`) and every passage is indexed with its own URL and title. A
search returns the best passage of each matching document: the passages of a document share
one citation id (their URLs differ only by a fragment). Documents keep their full text, so
`click` on a hit needs no network: a passage URL gives the document from that passage on
(clicking again reads on into the next passages), the document URL the whole document.

Indexing records each file's size, modification time and SHA-256: re-indexing does not read
a file whose size and mtime are unchanged, re-indexes only files whose content changed (all
their passages are replaced), drops deleted ones, and reports and skips a file it cannot read.
Files and folders whose names start with "." are left out. Work is committed every
COMMIT_EVERY files, so an interrupted run keeps what it had done.

Schema 2 (passages) replaced schema 1 (one row per file); schema 3 added the size and mtime
(`stat`); schema 4 the document's id in its collection (`doc_id`: the path relative to the
indexed folder, or the id of an imported record; what `rumination search --trec` prints).
Older corpora are upgraded in place when opened: schema 1 by splitting the stored texts into
passages, schemas 2 and 3 by adding the columns (`doc_id` stays empty for the files they
hold: the absolute path stands in); no file is re-read for any of them.

This is the `sqlite` engine; `engines.tantivy_corpus` keeps the same documents table and
indexes the passages with Tantivy instead (see `engines.protocol`).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from rumination.errors import UsageError
from rumination.models import Page, SearchHit
from rumination.reading.documents import (
    SUPPORTED_SUFFIXES,
    ParsedDocument,
    Unreadable,
    read_document,
    read_file,
)
from rumination.search_backends.chunking import Chunk, passage_titles, passage_url, split_passages
from rumination.search_backends.common_terms import TermCounts
from rumination.search_backends.engines.protocol import RankedHit
from rumination.search_backends.fts_query import fts_terms
from rumination.search_backends.index_events import FileAction as FileAction  # re-exported
from rumination.search_backends.index_events import FileEvent, IndexStats
from rumination.store.database import immediate_transaction

SCHEMA_VERSION = 4
COMMIT_EVERY = 200
RECORDS_PER_COMMIT = 2000
INDEX_CACHE_KIB = 256 * 1024
MERGE_SHARE = 0.25
# marks the matched words in snippets; plain text, so it survives neutralise() and rendering
HIGHLIGHT = "**"
# bm25 with a title match worth five body matches (best of 1-10 on SciFact and Cranfield)
_RANK = "bm25(5.0, 1.0)"
# passages fetched per hit asked for: a document's best passage is the one shown
PASSAGES_PER_HIT = 3

DOCUMENT_TABLES = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS documents (
        id INTEGER PRIMARY KEY,
        path TEXT UNIQUE NOT NULL,
        url TEXT UNIQUE NOT NULL,
        title TEXT NOT NULL,
        body TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        indexed_at TEXT NOT NULL,
        stat TEXT,
        doc_id TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS passages (
        id INTEGER PRIMARY KEY,
        document_id INTEGER NOT NULL REFERENCES documents(id),
        number INTEGER NOT NULL,
        start INTEGER NOT NULL,
        url TEXT NOT NULL,
        title TEXT NOT NULL,
        body TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS passages_document ON passages(document_id)",
    "CREATE INDEX IF NOT EXISTS passages_url ON passages(url)",
)
# the FTS5 index of the passages, kept up to date by triggers (the sqlite engine's own)
_FTS_INDEX = (
    """CREATE VIRTUAL TABLE IF NOT EXISTS passages_fts USING fts5(
        title, body, content='passages', content_rowid='id', tokenize='porter unicode61'
    )""",
    """CREATE TRIGGER IF NOT EXISTS passages_ai AFTER INSERT ON passages BEGIN
        INSERT INTO passages_fts(rowid, title, body) VALUES (new.id, new.title, new.body);
    END""",
    """CREATE TRIGGER IF NOT EXISTS passages_ad AFTER DELETE ON passages BEGIN
        INSERT INTO passages_fts(passages_fts, rowid, title, body)
        VALUES ('delete', old.id, old.title, old.body);
    END""",
)
_SCHEMA_1_INDEX = (
    "DROP TRIGGER IF EXISTS documents_ai",
    "DROP TRIGGER IF EXISTS documents_ad",
    "DROP TABLE IF EXISTS documents_fts",
)


@dataclass(frozen=True)
class FoundPassage:
    """A passage a search found: its document's row, and what its engine needs to make it a
    hit (the sqlite engine: the hit's fields; tantivy: the score and the passage's address)."""

    document_row: int
    detail: object


def best_of_each_document(found: list[FoundPassage], limit: int) -> list[FoundPassage]:
    """The first (best-ranked) passage of each document, for the first `limit` documents."""
    best: dict[int, FoundPassage] = {}
    for passage in found:
        best.setdefault(passage.document_row, passage)
        if len(best) == limit:
            break
    return list(best.values())


def ranked_hit(doc_id: str, score: float, title: str, url: str, snippet: str) -> RankedHit:
    return RankedHit(doc_id=doc_id, score=float(score),
                     hit=SearchHit(title=title, url=url, snippet=" ".join(snippet.split())))


class Corpus:
    """One SQLite corpus file: documents, passages and their FTS5 index (the `sqlite`
    engine). Subclasses may index the passages elsewhere: they override the hooks
    `_add_passages`, `_delete_passages`, `_best_passages`, `_commit_search_index`."""

    engine = "sqlite"
    # files (or records) per transaction: a bigger batch would keep more work at risk
    commit_every: int | None = None  # None: COMMIT_EVERY
    records_per_commit = RECORDS_PER_COMMIT  # collection imports (importers/records.py)

    def __init__(self, db_path: str | Path, *, create: bool = False) -> None:
        self.path = Path(db_path)
        if not create and not self.path.is_file():
            raise UsageError(f"corpus not found: {self.path} (build one with `rumination index`)")
        self._lock = threading.Lock()
        try:
            # autocommit: transactions are explicit (see _transaction)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise UsageError(f"cannot open the corpus {self.path} ({exc})") from None
        self._term_counts = TermCounts(self._db)
        try:
            self._prepare()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise UsageError(f"not a rumination corpus: {self.path} ({exc})") from None
        except UsageError:
            self._db.close()
            raise

    def close(self) -> None:
        self._db.close()

    def __len__(self) -> int:
        """Documents (files) in the corpus."""
        return int(self._db.execute("SELECT count(*) FROM documents").fetchone()[0])

    def passage_count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM passages").fetchone()[0])

    def index_folder(
        self, folder: Path, on_file: Callable[[FileEvent], None] | None = None
    ) -> IndexStats:
        """Index every supported file under `folder`; `on_file` hears about each file."""
        if not folder.is_dir():
            raise UsageError(f"not a folder: {folder}")
        with self._index_cache():
            return self._index_folder(folder, on_file)

    @contextmanager
    def _index_cache(self) -> Iterator[None]:
        """A page cache of INDEX_CACHE_KIB while indexing: the passage tables' B-trees outgrow
        SQLite's default 2 MiB early, and every insert would then read pages back in."""
        default = self._db.execute("PRAGMA cache_size").fetchone()[0]
        self._db.execute(f"PRAGMA cache_size = -{INDEX_CACHE_KIB}")
        try:
            yield
        finally:
            self._db.execute(f"PRAGMA cache_size = {int(default)}")

    def _index_folder(
        self, folder: Path, on_file: Callable[[FileEvent], None] | None
    ) -> IndexStats:
        started = time.perf_counter()
        report = on_file or (lambda event: None)
        found, unsupported = _supported_files(folder)
        files = [(path, str(path.resolve())) for path in found]
        batch = self.commit_every or COMMIT_EVERY
        known: dict[str, tuple[str, str | None]] = {
            path: (digest, stat)
            for path, digest, stat in self._db.execute("SELECT path, sha256, stat FROM documents")
        }
        counts: Counter[str] = Counter()
        now = datetime.now(UTC).isoformat()
        for first in range(0, len(files), batch):
            with self._transaction():
                for position, (path, key) in enumerate(files[first : first + batch]):
                    doc_id = path.relative_to(folder).as_posix()
                    event = self._index_file(path, key, known.get(key), now, doc_id)
                    counts[event.action] += 1
                    counts["passages"] += event.passages
                    report(replace(event, position=first + position + 1, total=len(files)))
        root, seen = folder.resolve(), {key for _, key in files}
        gone = [key for key in known if key not in seen and Path(key).is_relative_to(root)]
        with self._transaction():
            for key in gone:
                self._drop(key)
                report(FileEvent(Path(key), "removed", position=len(files), total=len(files)))
        self._merge_if_grown(counts["passages"])
        return IndexStats(
            added=counts["added"], updated=counts["updated"], unchanged=counts["unchanged"],
            removed=len(gone), skipped=counts["skipped"], passages=counts["passages"],
            unsupported=dict(unsupported),
            seconds=time.perf_counter() - started,
        )

    def _merge_if_grown(self, written: int) -> None:
        """Merges the full-text index into one segment when this run wrote at least
        MERGE_SHARE of the corpus's passages. Bulk inserts leave FTS5 many segments, and a
        search reads every one for each term: at 1M passages, 19 segments made the median
        search 1.5x slower. The merge reads the whole index (14 s at 1M passages, 4% of
        indexing it), so it waits until that much is new: its cost per passage written stays
        bounded however large the corpus."""
        if written and written >= MERGE_SHARE * self.passage_count():
            with self._transaction():
                self._db.execute("INSERT INTO passages_fts(passages_fts) VALUES('optimize')")

    def search(self, query: str, limit: int = 10) -> list[SearchHit]:
        """The best passage of each of the `limit` best-ranked documents for `query` (see
        `fts_terms`; words common in this corpus are left out, see `common_terms`), matched
        words in HIGHLIGHT marks in the snippets."""
        return [ranked.hit for ranked in self.ranked(query, limit)]

    def ranked(self, query: str, limit: int = 10) -> list[RankedHit]:
        """`search`'s hits with each document's id in its collection and its score."""
        terms = fts_terms(query)
        if not terms or limit <= 0:
            return []
        with self._lock:
            match = self._match(self._rarer(terms))
        fetch = limit * PASSAGES_PER_HIT
        while True:
            with self._lock:
                found = self._best_passages(match, fetch)
            best = best_of_each_document(found, limit)
            if len(best) >= limit or len(found) < fetch:
                with self._lock:
                    return self._describe(match, best)
            fetch *= 4  # many passages of the same few documents: look deeper

    def _rarer(self, terms: list[str]) -> list[str]:
        """`terms` without the words common in this corpus (see `common_terms`)."""
        return self._term_counts.rarer(terms)

    def _match(self, terms: list[str]) -> object:
        """What `_best_passages` searches for: here an FTS5 MATCH expression."""
        return " OR ".join(terms)

    def _best_passages(self, match: object, limit: int) -> list[FoundPassage]:
        """The `limit` best-ranked passages, best first. FTS5 sorts by rank itself and makes
        snippets only for the rows it returns, so each passage is found fully described:
        document id, score, title, URL, snippet."""
        rows = self._db.execute(
            "SELECT p.document_id, coalesce(d.doc_id, d.path), -m.rank, p.title, p.url,"
            " m.snippet FROM"
            " (SELECT rowid, snippet(passages_fts, 1, ?, ?, ' … ', 40) AS snippet, rank"
            "  FROM passages_fts WHERE passages_fts MATCH ? AND rank MATCH ?"
            "  ORDER BY rank LIMIT ?) AS m"
            " JOIN passages p ON p.id = m.rowid JOIN documents d ON d.id = p.document_id"
            " ORDER BY m.rank",
            (HIGHLIGHT, HIGHLIGHT, match, _RANK, limit),
        ).fetchall()
        return [FoundPassage(row[0], row[1:]) for row in rows]

    def _describe(self, match: object, found: list[FoundPassage]) -> list[RankedHit]:
        """The hits of the passages `found`, in their order."""
        return [ranked_hit(*cast(tuple[str, float, str, str, str], passage.detail))
                for passage in found]

    def get(self, url: str) -> Page | None:
        """The whole document at a document URL; at a passage URL, the document from the
        start of that passage on."""
        with self._lock:
            row = self._db.execute(
                "SELECT url, title, 0, body FROM documents WHERE url = ?", (url,)
            ).fetchone() or self._db.execute(
                "SELECT p.url, p.title, p.start, d.body"
                " FROM passages p JOIN documents d ON d.id = p.document_id"
                " WHERE p.url = ? ORDER BY p.id LIMIT 1",
                (url,),
            ).fetchone()
        if row is None:
            return None
        url, title, start, body = row
        return Page(url=url, title=title, text=body[start:].strip(),
                    content_type="text/markdown")

    def _index_file(
        self, path: Path, key: str, old: tuple[str, str | None] | None, now: str, doc_id: str
    ) -> FileEvent:
        old_digest, old_stat = old or (None, None)
        try:
            stat = _stat_stamp(path)
            if stat is not None and stat == old_stat:
                return FileEvent(path, "unchanged")  # same size and mtime: not read again
            data = read_file(path)
            digest = hashlib.sha256(data).hexdigest()
            if digest == old_digest:
                self._db.execute("UPDATE documents SET stat = ? WHERE path = ?", (stat, key))
                return FileEvent(path, "unchanged")
            doc = read_document(path, data)
            chunks = split_passages(doc.body)
            if not chunks:
                raise Unreadable("no readable text")
            self._check_url_is_free(doc.url, key)
        except Unreadable as exc:
            self._drop(key)  # an older version must not stay searchable
            return FileEvent(path, "skipped", reason=str(exc))
        self.store(key, doc, chunks, digest=digest, stamp=stat, doc_id=doc_id, now=now)
        return FileEvent(path, "updated" if old_digest else "added", passages=len(chunks))

    # --- what importers use (inside `batch()`) ---

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction: everything stored or removed in it is kept, or none of it."""
        with self._transaction():
            yield

    def known(self, key: str) -> tuple[str, str | None] | None:
        """(sha256, stamp) of the document stored under `key`, or None."""
        row = self._db.execute(
            "SELECT sha256, stat FROM documents WHERE path = ?", (key,)
        ).fetchone()
        return (row[0], row[1]) if row else None

    def restamp(self, key: str, stamp: str) -> None:
        self._db.execute("UPDATE documents SET stat = ? WHERE path = ?", (stamp, key))

    def store(
        self, key: str, doc: ParsedDocument, chunks: list[Chunk], *, digest: str,
        stamp: str | None, doc_id: str, now: str,
    ) -> None:
        """Store `doc` under `key` with its passages, replacing what `key` held."""
        self._drop(key)
        cursor = self._db.execute(
            "INSERT INTO documents(path, url, title, body, sha256, indexed_at, stat, doc_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (key, doc.url, doc.title, doc.body, digest, now, stamp, doc_id),
        )
        self._insert_passages(int(cursor.lastrowid or 0), doc, chunks)

    def remove_stale(self, key_prefix: str, stamp: str) -> int:
        """Removes the documents whose key starts with `key_prefix` and whose stamp is not
        `stamp` (records an import no longer found); how many."""
        keys = [row[0] for row in self._db.execute(
            "SELECT path FROM documents WHERE substr(path, 1, ?) = ? AND stat IS NOT ?",
            (len(key_prefix), key_prefix, stamp),
        )]
        for key in keys:
            self._drop(key)
        return len(keys)

    def url_holder(self, url: str) -> str | None:
        """The key of the document stored at `url`, if any."""
        row = self._db.execute("SELECT path FROM documents WHERE url = ?", (url,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str | None) -> None:
        if value is None:
            self._db.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _check_url_is_free(self, url: str, key: str) -> None:
        """Unreadable if another file that still exists holds `url`; a vanished one is dropped."""
        row = self._db.execute(
            "SELECT path FROM documents WHERE url = ? AND path != ?", (url, key)
        ).fetchone()
        if row is None:
            return
        if Path(row[0]).is_file():
            raise Unreadable(f"its URL {url} is already the URL of {row[0]}")
        self._drop(row[0])

    def _insert_passages(self, document_id: int, doc: ParsedDocument, chunks: list[Chunk]) -> None:
        titles = passage_titles(doc.title, chunks)
        rows = [
            (document_id, number, chunk.start, passage_url(doc.url, number), title, chunk.text)
            for number, (chunk, title) in enumerate(zip(chunks, titles, strict=True), 1)
        ]
        self._add_passages(rows)

    def _add_passages(self, rows: list[tuple[int, int, int, str, str, str]]) -> None:
        """Stores passages given as (document row, number, start, URL, title, text); FTS5
        indexes them through the table's trigger."""
        self._db.executemany(
            "INSERT INTO passages(document_id, number, start, url, title, body)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )

    def _drop(self, key: str) -> None:
        """Delete the document stored for the file `key`, with its passages."""
        row = self._db.execute("SELECT id FROM documents WHERE path = ?", (key,)).fetchone()
        if row is None:
            return
        self._delete_passages(int(row[0]))
        self._db.execute("DELETE FROM documents WHERE id = ?", (row[0],))

    def _delete_passages(self, document_row: int) -> None:
        self._db.execute("DELETE FROM passages WHERE document_id = ?", (document_row,))

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        try:
            with immediate_transaction(self._db):
                yield
                self._commit_search_index()
        finally:
            self._term_counts.forget()  # this connection's own commits leave data_version as is

    def _commit_search_index(self) -> None:
        """Makes the passages written in this transaction searchable, just before it commits
        (FTS5 is part of the transaction: nothing to do)."""

    def _prepare(self) -> None:
        """Create the schema in a new file, check it in an old one, upgrade schema 1."""
        tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master")}
        if not tables:
            with self._transaction():
                self._create_schema()
            return
        version = self._schema_version() if "meta" in tables else None
        if version == SCHEMA_VERSION:
            return
        if version == 1:
            self._upgrade_from_1()
            return
        if version in (2, 3):
            self._upgrade_from_2_or_3()
            return
        if version is None:
            raise UsageError(f"not a rumination corpus: {self.path} (it has no corpus tables)")
        raise UsageError(
            f"the corpus {self.path} has schema {version}, which this rumination does not know"
            f" (it reads schema {SCHEMA_VERSION}); upgrade rumination or rebuild the corpus"
            " with `rumination index`"
        )

    def _schema_version(self) -> int | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        try:
            return int(row[0]) if row else None
        except ValueError:
            return None

    def _create_schema(self) -> None:
        for statement in self._schema():
            self._db.execute(statement)
        self._db.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )

    def _schema(self) -> tuple[str, ...]:
        return DOCUMENT_TABLES + _FTS_INDEX

    def _upgrade_from_1(self) -> None:
        """Schema 1 had one FTS row per document: index the stored texts as passages."""

        def steps() -> None:
            for statement in _SCHEMA_1_INDEX:
                self._db.execute(statement)
            self._create_schema()
            self._add_columns()
            rows = self._db.execute("SELECT id, url, title, body FROM documents").fetchall()
            for document_id, url, title, body in rows:
                doc = ParsedDocument(title=title, url=url, body=body)
                self._insert_passages(document_id, doc, split_passages(body))

        self._upgrade(steps)

    def _upgrade_from_2_or_3(self) -> None:
        """Schema 3 adds each file's size and mtime (`stat`), so re-indexing can skip
        unchanged files without reading them; a schema-2 corpus gets the column (empty: each
        file is read and hashed once more, then recorded). Schema 4 adds `doc_id` (empty)."""

        def steps() -> None:
            self._add_columns()
            self._db.execute(
                "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),)
            )

        self._upgrade(steps)

    def _upgrade(self, steps: Callable[[], None]) -> None:
        """Run an upgrade's `steps` in one transaction, unless another connection already did."""
        try:
            with self._transaction():
                if self._schema_version() == SCHEMA_VERSION:
                    return  # another connection upgraded it while this one waited
                steps()
        except sqlite3.Error as exc:
            raise UsageError(
                f"the corpus {self.path} is in an older format that could not be upgraded "
                f"({exc}); rebuild it with `rumination index FOLDER --db {self.path}`"
            ) from None

    def _add_columns(self) -> None:
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(documents)")}
        for column in ("stat", "doc_id"):
            if column not in columns:
                self._db.execute(f"ALTER TABLE documents ADD COLUMN {column} TEXT")


def _stat_stamp(path: Path) -> str | None:
    """Size and modification time of a file: unchanged, the file is not read again (as make
    and rsync decide); None when it cannot be read (read_file then says why)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return f"{st.st_size}:{st.st_mtime_ns}"


def _supported_files(folder: Path) -> tuple[list[Path], Counter[str]]:
    """Supported files under `folder`, sorted, skipping hidden files and folders; and the
    other files counted by suffix ("(none)" for no suffix)."""
    found: list[Path] = []
    unsupported: Counter[str] = Counter()
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            suffix = Path(name).suffix.lower()
            if name.startswith("."):
                continue
            if suffix in SUPPORTED_SUFFIXES:
                found.append(Path(root, name))
            else:
                unsupported[suffix or "(none)"] += 1
    return sorted(path for path in found if path.is_file()), unsupported
