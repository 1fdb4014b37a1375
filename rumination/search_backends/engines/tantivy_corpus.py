"""The `tantivy` engine: a corpus folder holding the documents table in SQLite
(`catalog.db`, as the sqlite engine keeps it, passage texts left out) and the passages in a
Tantivy index (`index/`). A search scores every passage that matches one of its words
(Tantivy's Python bindings collect the top k without its block-max WAND: see
docs/benchmarks.md), in compact postings and native code; then only the k passages shown are
read from the doc store and the catalog.

Everything `corpus.Corpus` does with documents (incremental re-indexing of folders,
imports, `get`) is inherited; only the passage index differs. A batch is committed to
Tantivy first, then to SQLite: if the process dies in between, the Tantivy side holds
passages of documents SQLite never recorded. Those have document rows above every
committed one (SQLite gives a new row the largest id plus one), and they are deleted when
the corpus is next opened for writing (at once, when only the SQLite commit failed and the
process lives on); searches skip them meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import tantivy

from rumination.errors import UsageError
from rumination.search_backends.corpus import (
    DOCUMENT_TABLES,
    HIGHLIGHT,
    RECORDS_PER_COMMIT,
    Corpus,
    FoundPassage,
    ranked_hit,
)
from rumination.search_backends.engines.protocol import RankedHit
from rumination.search_backends.engines.random_reads import advise_random_reads
from rumination.search_backends.engines.tantivy_query import (
    ANALYZER,
    ANALYZER_NAME,
    build_query,
)

CATALOG = "catalog.db"
INDEX = "index"
WRITER_HEAP_BYTES = 256 * 2**20
WRITER_THREADS = 2
SNIPPET_CHARS = 240
FILES_PER_COMMIT = 5000  # a Tantivy commit writes a segment: fewer, larger ones index faster

PassageRow = tuple[int, int, int, str, str, str]


@dataclass(frozen=True)
class _Match:
    """A search's query, and the searcher (one snapshot of the index) that runs it."""

    query: tantivy.Query
    searcher: tantivy.Searcher


def is_tantivy_corpus(path: Path) -> bool:
    return (path / CATALOG).is_file() and (path / INDEX).is_dir()


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("title", stored=True, tokenizer_name=ANALYZER_NAME)
    builder.add_text_field("body", stored=True, tokenizer_name=ANALYZER_NAME)
    builder.add_integer_field("document", stored=True, indexed=True, fast=True)
    builder.add_integer_field("number", stored=True)
    return builder.build()


class TantivyCorpus(Corpus):
    """A corpus folder: documents in SQLite, passages in Tantivy."""

    engine = "tantivy"
    commit_every = FILES_PER_COMMIT
    records_per_commit = 10 * RECORDS_PER_COMMIT  # each commit writes a Tantivy segment

    def __init__(self, folder: str | Path, *, create: bool = False) -> None:
        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"a tantivy corpus is a folder, and {folder} is a file")
        if not is_tantivy_corpus(folder):
            if not create:
                raise UsageError(f"corpus not found: {folder} "
                                 "(build one with `rumination index --engine tantivy`)")
            if folder.is_dir() and any(folder.iterdir()):
                raise UsageError(f"{folder} is a folder that is not a tantivy corpus: "
                                 "name a new or empty folder")
            (folder / INDEX).mkdir(parents=True, exist_ok=True)
        self._schema_t = _schema()
        try:
            self._index = tantivy.Index(self._schema_t, path=str(folder / INDEX), reuse=True)
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot open the tantivy index in {folder} ({exc})") from None
        self._index.register_tokenizer(ANALYZER_NAME, ANALYZER)
        self._writer: tantivy.IndexWriter | None = None
        self._advised_segments: tuple[int, int] | None = None
        self._pending = False
        self._committed_ahead = False  # this transaction's passages are in Tantivy already
        super().__init__(folder / CATALOG, create=create)
        self.path = folder

    def close(self) -> None:
        if self._writer is not None:
            self._writer.wait_merging_threads()  # segments merged before the files are read
            self._writer = None
        super().close()

    def index_size(self) -> int:
        """Bytes on disk: the catalog and the Tantivy index."""
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())

    # --- hooks of Corpus ---

    def _schema(self) -> tuple[str, ...]:
        return DOCUMENT_TABLES

    def _prepare(self) -> None:
        super()._prepare()
        engine = self.meta("engine")
        if engine is None:
            with self._transaction():
                self.set_meta("engine", self.engine)
        elif engine != self.engine:
            raise UsageError(f"{self.path} is a {engine} corpus, not a tantivy one")

    def _add_passages(self, rows: list[PassageRow]) -> None:
        writer = self._writer_open()
        # the texts live in Tantivy only: SQLite keeps where each passage starts
        super()._add_passages([(d, n, start, url, title, "") for d, n, start, url, title, _ in
                               rows])
        for document, number, _, _, title, text in rows:
            writer.add_document(tantivy.Document(title=title, body=text, document=document,
                                                 number=number))
        self._pending = True

    def _delete_passages(self, document_row: int) -> None:
        super()._delete_passages(document_row)
        self._writer_open().delete_documents_by_term("document", document_row)
        self._pending = True

    def _commit_search_index(self) -> None:
        if self._pending and self._writer is not None:
            self._writer.commit()
            self._pending, self._committed_ahead = False, True
            self._index.reload()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._committed_ahead = False
        try:
            with super()._transaction():
                yield
        except BaseException:
            if self._writer is not None and self._pending:
                self._writer.rollback()
                self._pending = False
            elif self._writer is not None and self._committed_ahead:
                self._delete_orphans(self._writer)  # SQLite failed after Tantivy committed
            raise

    def _merge_if_grown(self, written: int) -> None:
        """Tantivy merges its segments itself, in the background."""

    def _rarer(self, terms: list[str]) -> list[str]:
        return terms  # build_query leaves the common words out with Tantivy's own counts

    def _match(self, terms: list[str]) -> object:
        self._index.reload()  # another process may have committed
        searcher = self._index.searcher()
        self._advise_random_reads(searcher)
        query = build_query(self._schema_t, terms, searcher.num_docs,
                            lambda token: searcher.doc_freq("body", token) if token else 0)
        return None if query is None else _Match(query, searcher)

    def _best_passages(self, match: object, limit: int) -> list[FoundPassage]:
        """The `limit` best passages, each with its document's row from the index's fast
        field: nothing is read from the doc store or the catalog until `_describe`, which
        reads only the passages shown."""
        if match is None:
            return []
        assert isinstance(match, _Match)
        found = match.searcher.search(match.query, limit, count=False).hits
        documents = match.searcher.fast_field_values("document", [a for _, a in found])
        # an interrupted batch's passages belong to documents past the last one recorded
        # (see the module's docstring): left out here, so that they take no hit's place
        last = self._db.execute("SELECT coalesce(max(id), 0) FROM documents").fetchone()[0]
        return [FoundPassage(document, (score, address))
                for (score, address), document in zip(found, documents, strict=True)
                if isinstance(document, int) and document <= last]

    def _describe(self, match: object, found: list[FoundPassage]) -> list[RankedHit]:
        if not found:
            return []
        assert isinstance(match, _Match)
        searcher = match.searcher
        snippets = tantivy.SnippetGenerator.create(searcher, match.query, self._schema_t, "body")
        snippets.set_max_num_chars(SNIPPET_CHARS)
        hits = []
        for passage in found:
            score, address = cast(tuple[float, tantivy.DocAddress], passage.detail)
            stored = searcher.doc(address)
            row = self._catalog_row(passage.document_row, stored["number"][0])
            if row is None:  # an interrupted batch's passage (see the module's docstring)
                continue
            url, title, doc_id = row
            snippet = _snippet(snippets.snippet_from_doc(stored), stored["body"][0])
            hits.append(ranked_hit(doc_id, score, title, url, snippet))
        return hits

    def _catalog_row(self, document_row: int, number: int) -> tuple[str, str, str] | None:
        """A passage's URL, title and document id, from the catalog."""
        row = self._db.execute(
            "SELECT p.url, p.title, coalesce(d.doc_id, d.path) FROM passages p"
            " JOIN documents d ON d.id = p.document_id"
            " WHERE p.document_id = ? AND p.number = ?", (document_row, number),
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def _advise_random_reads(self, searcher: tantivy.Searcher) -> None:
        """Random-read advice on the doc store (`random_reads`), given again when the
        searcher's segments may have changed (new segments are new mappings)."""
        segments = self._segments(searcher)
        if segments != self._advised_segments:
            advise_random_reads(self.path / INDEX)
            self._advised_segments = segments

    @staticmethod
    def _segments(searcher: tantivy.Searcher) -> tuple[int, int]:
        """What tells one set of segments from the next, as far as a searcher shows it."""
        return searcher.num_segments, searcher.num_docs

    # --- the writer ---

    def _writer_open(self) -> tantivy.IndexWriter:
        if self._writer is None:
            try:
                self._writer = self._index.writer(WRITER_HEAP_BYTES, WRITER_THREADS)
            except ValueError as exc:  # Tantivy allows one writer: another process has it
                raise UsageError(f"cannot write to {self.path}: another process is indexing "
                                 f"into it ({exc})") from None
            self._delete_orphans(self._writer)
        return self._writer

    def _delete_orphans(self, writer: tantivy.IndexWriter) -> None:
        """Passages of documents an interrupted batch never recorded (module docstring)."""
        self._index.reload()
        if self._index.searcher().num_docs == self.passage_count():
            return
        last = self._db.execute("SELECT coalesce(max(id), 0) FROM documents").fetchone()[0]
        writer.delete_documents_by_query(tantivy.Query.range_query(
            self._schema_t, "document", tantivy.FieldType.Integer, int(last), None,
            include_lower=False,
        ))
        writer.commit()
        self._index.reload()


def _snippet(snippet: tantivy.Snippet, body: str) -> str:
    """The snippet's fragment with its matched words in HIGHLIGHT marks, widened to whole
    words and marked with ELLIPSIS where the passage goes on, as FTS5's snippet() is
    (Tantivy gives places as UTF-8 byte offsets and ends a fragment at its last word); the
    passage's start when no word of the body matched (a title match)."""
    text = body.encode("utf-8")
    if not snippet.fragment():
        return _with_ellipsis(text, 0, min(len(text), _word_end(text, SNIPPET_CHARS)))
    place = snippet.fragment_range()
    start, end = place.start, place.end
    end = _word_end(text, end)
    parts: list[bytes] = []
    position = start
    for place in sorted(snippet.highlighted(), key=lambda r: r.start):
        at, to = start + place.start, start + place.end
        if at < position:
            continue
        parts += [text[position:at], HIGHLIGHT.encode(), text[at:to], HIGHLIGHT.encode()]
        position = to
    parts.append(text[position:end])
    marked = b"".join(parts)
    return ("… " if start > 0 else "") + marked.decode("utf-8", errors="replace") + (
        " …" if end < len(text.rstrip()) else "")


def _with_ellipsis(text: bytes, start: int, end: int) -> str:
    return text[start:end].decode("utf-8", errors="replace") + (
        " …" if end < len(text.rstrip()) else "")


def _word_end(text: bytes, end: int) -> int:
    """`end` moved on to the next space: punctuation after the last word stays with it."""
    while end < len(text) and not text[end:end + 1].isspace():
        end += 1
    return end
