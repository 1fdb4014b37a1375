"""Indexing a folder into passages: formats, PDFs, skipped files, re-indexing, schema upgrades,
and the `rumination index` command."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make_pdf
from typer.testing import CliRunner

import rumination.search_backends.corpus as corpus_module
from rumination.cli import app
from rumination.cli.tools import _IndexProgress
from rumination.errors import UsageError
from rumination.search_backends.chunking import MAX_CHARS, passage_titles, split_passages
from rumination.search_backends.corpus import SCHEMA_VERSION, Corpus, FileEvent, IndexStats
from rumination.search_backends.engines.open import ENGINES, open_corpus
from rumination.search_backends.local import LocalCorpusBackend

SECTIONS = ["Moraines", "Firn", "Crevasses", "Calving", "Albedo", "Surges"]
FILLER = (
    "Ice moves downhill under its own weight, and the speed of that motion depends on the "
    "slope, the thickness of the ice and the water at its bed. "
)


def atlas(marker: str = "") -> str:
    """A long Markdown document: one section per SECTIONS entry, each with a word of its own."""
    parts = ["# Ice atlas", "", "An atlas of glacier features, section by section."]
    for number, name in enumerate(SECTIONS):
        parts += ["", f"## {name}", ""]
        parts += [f"Term{number}{marker} appears only here. " + FILLER * 5, "", FILLER * 4]
    return "\n".join(parts)




def report_pdf() -> bytes:
    line = "Sea otters keep urchins in check so that kelp forests can grow back."
    pages = [[f"Page {p} line {n}: {line}" for n in range(18)] for p in range(1, 4)]
    pages[1][3] = "Kelp canopies shade the seabed and shelter young rockfish."
    return make_pdf(pages, "Kelp report")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "atlas.md").write_text(atlas(), encoding="utf-8")
    (docs / "notes.markdown").write_text("# Notes\n\nSeracs topple without warning.", "utf-8")
    (docs / "firn.txt").write_text("Firn is snow that has survived one melt season.", "utf-8")
    (docs / "tides.html").write_text(
        "<html><head><title>Tides</title></head><body><article><p>Spring tides follow the "
        "new and the full moon, when Sun and Moon pull in line.</p></article></body></html>",
        "utf-8",
    )
    (docs / "sub" / "owls.htm").write_text(
        "<html><body><h1>Owls</h1><p>Barn owls hunt by sound alone on the darkest nights, "
        "their facial discs funnelling faint rustles.</p></body></html>",
        "utf-8",
    )
    (docs / "sub" / "kelp.pdf").write_bytes(report_pdf())
    return docs


@pytest.fixture(params=ENGINES)
def corpus(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Corpus]:
    """Each engine: what indexing does with files and passages is the same for both."""
    if request.param == "tantivy":
        pytest.importorskip("tantivy")
    c = open_corpus(tmp_path / "corpus.db", engine=request.param, create=True)
    assert isinstance(c, Corpus)  # the tantivy engine is a Corpus with another passage index
    yield c
    c.close()


def index(corpus: Corpus, folder: Path) -> tuple[IndexStats, list[FileEvent]]:
    events: list[FileEvent] = []
    stats = corpus.index_folder(folder, on_file=events.append)
    return stats, events


def passages_of(corpus: Corpus, name: str) -> list[tuple[int, str, str]]:
    return corpus._db.execute(
        "SELECT p.id, p.url, p.title FROM passages p JOIN documents d ON d.id = p.document_id"
        " WHERE d.path LIKE ? ORDER BY p.number",
        (f"%/{name}",),
    ).fetchall()


def assert_index_is_consistent(corpus: Corpus) -> None:
    if corpus.engine == "sqlite":
        corpus._db.execute("INSERT INTO passages_fts(passages_fts) VALUES ('integrity-check')")
    else:
        index = corpus._index  # type: ignore[attr-defined]  # the tantivy engine's
        index.reload()
        assert index.searcher().num_docs == corpus.passage_count()
    orphans = corpus._db.execute(
        "SELECT count(*) FROM passages WHERE document_id NOT IN (SELECT id FROM documents)"
    ).fetchone()
    assert orphans == (0,)


# --- formats ---------------------------------------------------------------------------------


def test_every_supported_format_is_indexed(corpus: Corpus, folder: Path) -> None:
    pytest.importorskip("pypdf")
    stats, events = index(corpus, folder)
    assert (stats.added, stats.skipped) == (6, 0)
    assert [e.position for e in events] == [1, 2, 3, 4, 5, 6]
    assert {e.total for e in events} == {6}
    assert len(corpus) == 6 and corpus.passage_count() == stats.passages
    assert corpus.search("seracs")[0].title == "Notes"
    assert corpus.search("survived melt season")[0].title == "firn"
    assert corpus.search("spring tides")[0].title == "Tides"
    assert corpus.search("barn owls")[0].title == "Owls"
    kelp = corpus.search("rockfish")
    assert kelp[0].title == "Kelp report — page 2"
    assert kelp[0].url == (folder / "sub" / "kelp.pdf").resolve().as_uri() + "#passage-2"
    assert_index_is_consistent(corpus)


def test_a_pdf_without_pypdf_is_skipped_with_the_reason(
    corpus: Corpus, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pypdf", None)  # import pypdf now raises ImportError
    stats, events = index(corpus, folder)
    assert (stats.added, stats.skipped) == (5, 1)
    (skipped,) = [e for e in events if e.action == "skipped"]
    assert skipped.path.name == "kelp.pdf"
    assert "pypdf" in skipped.reason and "rumination[pdf]" in skipped.reason
    assert skipped.describe() == f"skipped: {skipped.path}: {skipped.reason}"


def test_unreadable_files_are_reported_and_skipped(
    corpus: Corpus, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\nnothing here")
    (folder / "binary.txt").write_bytes(b"\x00\x01\x02 not text \x00" * 50)
    (folder / "empty.md").write_text("---\ntitle: Empty\n---\n\n", encoding="utf-8")
    locked = folder / "locked.md"
    locked.write_text("# Locked\n\nSecret glacier.", encoding="utf-8")
    read_bytes = Path.read_bytes

    def refuse(path: Path) -> bytes:
        if path.name == "locked.md":
            raise PermissionError(13, "Permission denied")
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", refuse)
    stats, events = index(corpus, folder)
    reasons = {e.path.name: e.reason for e in events if e.action == "skipped"}
    assert set(reasons) == {"broken.pdf", "binary.txt", "empty.md", "locked.md"}
    assert reasons["binary.txt"] == "binary data, not text"
    assert reasons["empty.md"] == "no readable text"
    assert reasons["locked.md"] == "cannot be read (Permission denied)"
    assert "PDF" in reasons["broken.pdf"]
    assert stats.skipped == 4 and stats.added == 6  # the other files are all there
    assert corpus.search("secret") == []


def test_a_file_that_becomes_unreadable_leaves_the_index(corpus: Corpus, folder: Path) -> None:
    index(corpus, folder)
    assert corpus.search("seracs")
    (folder / "notes.markdown").write_bytes(b"\x00" * 100)
    stats, _ = index(corpus, folder)
    assert stats.skipped == 1
    assert corpus.search("seracs") == []
    assert_index_is_consistent(corpus)


def test_hidden_files_and_folders_are_left_out(corpus: Corpus, folder: Path) -> None:
    (folder / ".git").mkdir()
    (folder / ".git" / "notes.md").write_text("# Hidden\n\nwalrus", encoding="utf-8")
    (folder / ".draft.md").write_text("# Draft\n\nwalrus", encoding="utf-8")
    index(corpus, folder)
    assert corpus.search("walrus") == []


def test_a_second_file_claiming_a_url_is_skipped(corpus: Corpus, folder: Path) -> None:
    (folder / "a.md").write_text("---\nurl: https://example.org/x\n---\nAlpha ice.", "utf-8")
    (folder / "b.md").write_text("---\nurl: https://example.org/x\n---\nBeta ice.", "utf-8")
    for _ in range(2):  # the same outcome every time: no flip-flopping between the two
        _, events = index(corpus, folder)
        (skipped,) = [e for e in events if e.action == "skipped"]
        assert skipped.path.name == "b.md"
        assert skipped.reason == f"its URL https://example.org/x is already the URL of " \
            f"{(folder / 'a.md').resolve()}"
        assert [h.title for h in corpus.search("alpha beta")] == ["a"]


# --- passages --------------------------------------------------------------------------------


def test_a_long_document_is_split_into_passages(corpus: Corpus, folder: Path) -> None:
    index(corpus, folder)
    url = (folder / "atlas.md").resolve().as_uri()
    rows = passages_of(corpus, "atlas.md")
    chunks = split_passages(atlas())
    assert len(rows) == len(chunks) > 2
    assert [u for _, u, _ in rows] == [url] + [f"{url}#passage-{n}" for n in
                                               range(2, len(rows) + 1)]
    assert rows[0][2] == "Ice atlas (part 1)"
    assert all(t.startswith("Ice atlas — ") for _, _, t in rows[1:])
    lengths = corpus._db.execute(
        "SELECT length(body) FROM passages WHERE url LIKE ?", (f"{url}%",)
    ).fetchall()
    assert all(n <= MAX_CHARS for (n,) in lengths)


def test_search_finds_the_passage_and_get_reads_on_from_it(corpus: Corpus, folder: Path) -> None:
    index(corpus, folder)
    url = (folder / "atlas.md").resolve().as_uri()
    chunks = split_passages(atlas())
    number = next(n for n, chunk in enumerate(chunks, 1) if "Term4 " in chunk.text)
    (hit,) = corpus.search("term4")
    assert number > 1 and hit.url == f"{url}#passage-{number}"
    assert hit.title == passage_titles("Ice atlas", chunks)[number - 1]
    assert hit.title.startswith("Ice atlas — ")
    assert "**Term4**" in hit.snippet

    page = corpus.get(hit.url)
    assert page is not None and page.url == hit.url and page.title == hit.title
    assert "Term4 appears only here" in page.text[:MAX_CHARS]
    assert page.text.endswith(atlas().rstrip()[-200:])  # reading goes on to the end
    assert "Term0 " not in page.text  # and starts at the passage

    whole = corpus.get(url)
    assert whole is not None and whole.title == "Ice atlas" and whole.text == atlas().strip()
    assert corpus.get(f"{url}#passage-99") is None


def test_search_gives_the_best_passage_of_each_document(corpus: Corpus, folder: Path) -> None:
    index(corpus, folder)
    hits = corpus.search("ice weight slope thickness")  # in every section of the atlas
    assert len({h.url.split("#")[0] for h in hits}) == len(hits)


# --- re-indexing -----------------------------------------------------------------------------


def test_reindex_replaces_only_the_changed_files_passages(corpus: Corpus, folder: Path) -> None:
    first, _ = index(corpus, folder)
    others = corpus._db.execute(
        "SELECT p.id FROM passages p JOIN documents d ON d.id = p.document_id"
        " WHERE d.path NOT LIKE '%/atlas.md' ORDER BY p.id"
    ).fetchall()
    (folder / "atlas.md").write_text(atlas(marker="new"), encoding="utf-8")

    stats, events = index(corpus, folder)
    changed = len(split_passages(atlas(marker="new")))
    assert stats == IndexStats(updated=1, unchanged=5, passages=changed)
    assert [(e.path.name, e.action) for e in events if e.action != "unchanged"] == [
        ("atlas.md", "updated")
    ]
    assert corpus._db.execute(
        "SELECT p.id FROM passages p JOIN documents d ON d.id = p.document_id"
        " WHERE d.path NOT LIKE '%/atlas.md' ORDER BY p.id"
    ).fetchall() == others  # the other files' passages were not touched
    assert corpus.search("term2") == []
    assert len(corpus.search("term2new")) == 1
    assert corpus.passage_count() == first.passages - len(split_passages(atlas())) + changed
    assert_index_is_consistent(corpus)


def test_a_deleted_file_loses_all_its_passages(corpus: Corpus, folder: Path) -> None:
    index(corpus, folder)
    url = (folder / "atlas.md").resolve().as_uri()
    count = len(passages_of(corpus, "atlas.md"))
    before = corpus.passage_count()
    (folder / "atlas.md").unlink()
    stats, events = index(corpus, folder)
    assert (stats.removed, stats.unchanged) == (1, 5)
    assert [e.action for e in events][-1] == "removed"
    assert corpus.passage_count() == before - count
    assert corpus.search("term3") == []
    assert corpus.get(url) is None and corpus.get(f"{url}#passage-2") is None
    assert_index_is_consistent(corpus)


def test_an_interrupted_index_keeps_the_files_already_committed(
    corpus: Corpus, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(corpus_module, "COMMIT_EVERY", 2)
    monkeypatch.setattr(corpus, "commit_every", None)  # the tantivy engine's own batch size

    def interrupt(event: FileEvent) -> None:
        if event.position == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        corpus.index_folder(folder, on_file=interrupt)
    assert len(corpus) == 4  # two batches of two committed, the third rolled back
    stats, _ = index(corpus, folder)
    assert (stats.added, stats.unchanged) == (2, 4)
    assert_index_is_consistent(corpus)


# --- schema ----------------------------------------------------------------------------------

SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE documents (
    id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL, url TEXT UNIQUE NOT NULL,
    title TEXT NOT NULL, body TEXT NOT NULL, sha256 TEXT NOT NULL, indexed_at TEXT NOT NULL
);
CREATE VIRTUAL TABLE documents_fts USING fts5(
    title, body, content='documents', content_rowid='id', tokenize='porter unicode61'
);
CREATE TRIGGER documents_ai AFTER INSERT ON documents BEGIN
    INSERT INTO documents_fts(rowid, title, body) VALUES (new.id, new.title, new.body);
END;
CREATE TRIGGER documents_ad AFTER DELETE ON documents BEGIN
    INSERT INTO documents_fts(documents_fts, rowid, title, body)
    VALUES ('delete', old.id, old.title, old.body);
END;
INSERT INTO meta VALUES ('schema_version', '1');
"""


def schema_1_corpus(db: Path, folder: Path) -> None:
    """A corpus as rumination wrote it before passages: one row per file."""
    with sqlite3.connect(db) as con:
        con.executescript(SCHEMA_1)
        for name, title in [("atlas.md", "Ice atlas"), ("firn.txt", "firn")]:
            path = folder / name
            con.execute(
                "INSERT INTO documents(path, url, title, body, sha256, indexed_at)"
                " VALUES (?, ?, ?, ?, ?, '2024-01-01T00:00:00+00:00')",
                (str(path.resolve()), path.resolve().as_uri(), title,
                 path.read_text(encoding="utf-8").strip(),
                 hashlib.sha256(path.read_bytes()).hexdigest()),
            )
    con.close()


def test_a_schema_1_corpus_is_upgraded_when_opened(tmp_path: Path, folder: Path) -> None:
    db = tmp_path / "old.db"
    schema_1_corpus(db, folder)
    corpus = Corpus(db)  # opened for searching, as `research --corpus` does
    try:
        version = corpus._db.execute("SELECT value FROM meta WHERE key='schema_version'")
        assert version.fetchone() == (str(SCHEMA_VERSION),)
        assert corpus.passage_count() == len(split_passages(atlas())) + 1
        (hit,) = corpus.search("term5")
        assert "#passage-" in hit.url and hit.title.startswith("Ice atlas — ")
        assert corpus.get(hit.url) is not None
        tables = {r[0] for r in corpus._db.execute("SELECT name FROM sqlite_master")}
        assert "documents_fts" not in tables
        # the stored hashes still hold: only the files the old corpus lacked are read
        stats, _ = index(corpus, folder)
        assert (stats.added, stats.unchanged) == (4, 2)
        assert_index_is_consistent(corpus)
    finally:
        corpus.close()


def test_a_schema_1_corpus_that_cannot_be_upgraded_says_to_rebuild(tmp_path: Path) -> None:
    db = tmp_path / "odd.db"
    with sqlite3.connect(db) as con:
        con.executescript(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "INSERT INTO meta VALUES ('schema_version', '1');"
            "CREATE TABLE documents (id INTEGER PRIMARY KEY, something TEXT);"
        )
    con.close()
    with pytest.raises(UsageError, match=r"rebuild it with `rumination index FOLDER --db"):
        LocalCorpusBackend(db)
    result = CliRunner().invoke(app, ["index", str(tmp_path), "--db", str(db)])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "rumination index" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_corpus_from_a_newer_rumination_is_a_usage_error(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    with sqlite3.connect(db) as con:
        con.executescript(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "INSERT INTO meta VALUES ('schema_version', '99');"
        )
    con.close()
    with pytest.raises(UsageError, match="has schema 99"):
        Corpus(db)


def test_another_sqlite_database_is_not_a_corpus(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE runs (id TEXT)")
    con.close()
    with pytest.raises(UsageError, match="not a rumination corpus"):
        Corpus(db, create=True)
    with sqlite3.connect(db) as con:  # and it was left as it was
        assert {r[0] for r in con.execute("SELECT name FROM sqlite_master")} == {"runs"}
    con.close()


# --- the command -----------------------------------------------------------------------------


def test_the_index_command_reports_each_change_and_a_summary(tmp_path: Path, folder: Path) -> None:
    pytest.importorskip("pypdf")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\nnothing here")
    db = tmp_path / "c.db"
    runner = CliRunner()
    first = runner.invoke(app, ["index", str(folder), "--db", str(db)])
    assert first.exit_code == 0, first.stderr
    lines = first.stderr.splitlines()
    assert f"added: {folder / 'atlas.md'} ({len(split_passages(atlas()))} passages)" in lines
    assert f"added: {folder / 'firn.txt'} (1 passage)" in lines
    (skipped,) = [line for line in lines if line.startswith("skipped: ")]
    assert skipped.startswith(f"skipped: {folder / 'broken.pdf'}: the PDF could not be read")
    summary = first.stdout.strip()
    assert summary.startswith(f"{db}: 6 documents (6 added, 0 updated, 0 unchanged, 0 removed)"
                              ", 1 skipped, ")
    assert summary.endswith("s") and " passages (" in summary

    second = runner.invoke(app, ["index", str(folder), "--db", str(db)])
    assert "6 documents (0 added, 0 updated, 6 unchanged, 0 removed), 1 skipped" in second.stdout
    assert second.stderr.splitlines() == [skipped]  # only the skipped file again


def test_the_progress_bar_on_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    with _IndexProgress(force_terminal=True) as show:
        show(FileEvent(Path("a.md"), "added", passages=2, position=1, total=3))
        show(FileEvent(Path("[/b].md"), "unchanged", position=2, total=3))  # not markup
        show(FileEvent(Path("c.pdf"), "skipped", reason="no readable text", position=3, total=3))
    err = capsys.readouterr().err
    assert "skipped: c.pdf: no readable text" in err
    assert "added: a.md" not in err  # the bar counts it; the summary line tells


@pytest.mark.parametrize("files", [{}, {"report.docx": b"PK\3\4", "a.png": b"\x89PNG",
                                       "b.png": b"\x89PNG", "README": b"hello"}])
def test_indexing_a_folder_with_nothing_to_index_says_what_it_found(
    tmp_path: Path, files: dict[str, bytes]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    result = CliRunner().invoke(app, ["index", str(folder), "--db", str(tmp_path / "c.db")])
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {folder}: nothing to index: {len(files)} file")
    if files:
        assert "4 files of other types not read (2 .png, 1 (none), 1 .docx)" in line
    else:
        assert "0 files found" in line and "no files of other types" in line
    assert ".md" in line and ".pdf" in line


def test_the_summary_counts_other_types_and_says_1_document(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "kelp.md").write_text("# Kelp\n\nOtters eat urchins.\n")
    (folder / "notes.docx").write_bytes(b"PK\3\4")
    result = CliRunner().invoke(app, ["index", str(folder), "--db", str(tmp_path / "c.db")])
    assert result.exit_code == 0, result.stderr
    assert "1 document (1 added" in result.stdout and "1 passage (1 written)" in result.stdout
    assert "1 file of other types not read (1 .docx)" in result.stdout


# --- unchanged files are not read again -------------------------------------------------------


def test_reindexing_skips_files_whose_size_and_mtime_are_unchanged(
    tmp_path: Path, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = Corpus(tmp_path / "c.db", create=True)
    try:
        first, _ = index(corpus, folder)
        reads: list[str] = []
        real = corpus_module.read_file

        def counting(path: Path) -> bytes:
            reads.append(path.name)
            return real(path)

        monkeypatch.setattr(corpus_module, "read_file", counting)
        again, _ = index(corpus, folder)
        assert reads == [] and again.unchanged == len(corpus) == first.added
        touched = folder / "firn.txt"
        os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
        same, _ = index(corpus, folder)
        assert reads == ["firn.txt"] and same.updated == 0  # read, hashed, found the same
        index(corpus, folder)
        assert reads == ["firn.txt"]  # its new mtime was recorded
        touched.write_text(touched.read_text(encoding="utf-8") + " more", encoding="utf-8")
        changed, _ = index(corpus, folder)
        assert changed.updated == 1
        assert_index_is_consistent(corpus)
    finally:
        corpus.close()


def test_a_schema_2_corpus_gains_the_stat_column_in_place(tmp_path: Path, folder: Path) -> None:
    db = tmp_path / "v2.db"
    corpus = Corpus(db, create=True)
    stats, _ = index(corpus, folder)
    corpus.close()
    with sqlite3.connect(db) as con:  # as schema 2 wrote it: no stat column
        con.execute("ALTER TABLE documents DROP COLUMN stat")
        con.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    con.close()
    reopened = Corpus(db)
    try:
        version = reopened._db.execute("SELECT value FROM meta WHERE key='schema_version'")
        assert version.fetchone() == (str(SCHEMA_VERSION),) == ("4",)
        assert len(reopened) == stats.added - stats.skipped
        again, _ = index(reopened, folder)
        assert again.unchanged == len(reopened) and again.updated == again.added == 0
        recorded = reopened._db.execute("SELECT count(*) FROM documents WHERE stat IS NULL")
        assert recorded.fetchone() == (0,)
    finally:
        reopened.close()
