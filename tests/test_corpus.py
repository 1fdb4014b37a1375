"""search_backends.corpus: indexing a folder into SQLite FTS5, bm25 search, re-indexing.

These documents are short: one passage each (chunking is tested in test_chunking.py and
test_index.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from rumination.errors import UsageError
from rumination.reading.documents import parse_document
from rumination.search_backends.corpus import SCHEMA_VERSION, Corpus, IndexStats
from rumination.search_backends.engines.open import ENGINES, open_corpus
from rumination.search_backends.engines.protocol import CorpusEngine
from rumination.search_backends.fts_query import fts_query
from rumination.search_backends.local import LocalCorpusBackend, demo_corpus_path

GLACIER_MD = """---
title: Glaciers of the Alps
url: https://example.org/glaciers
---
# Alpine ice

Glaciers in the Alps have lost more than half of their volume since 1900. A glacier
grows where winter snow outlasts summer melt; glacier retreat exposes bare moraine.
"""

VOLCANO_MD = """# Volcanic eruptions

Volcanoes erupt when magma rises through the crust. Ash clouds from an eruption can close
airports for days, and a single glacier sitting on a volcano can flood valleys when it melts.
"""

BEES_TXT = """Honey bees communicate the direction of flowers with a waggle dance.
A colony can hold fifty thousand workers in summer.
"""

TIDES_HTML = """<!doctype html>
<html><head><title>How tides work</title></head>
<body>
<nav>Home | About</nav>
<article>
<h1>How tides work</h1>
<p>Tides are the rise and fall of sea level caused by the gravity of the Moon and the Sun.
Most coasts see two high tides and two low tides every lunar day.</p>
<p>Spring tides happen near new and full moon, when the Sun and Moon pull in line.</p>
</article>
</body></html>
"""


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "glaciers.md").write_text(GLACIER_MD, encoding="utf-8")
    (folder / "volcanoes.md").write_text(VOLCANO_MD, encoding="utf-8")
    (folder / "honey_bees.txt").write_text(BEES_TXT, encoding="utf-8")
    (folder / "tides.html").write_text(TIDES_HTML, encoding="utf-8")
    (folder / "ignored.json").write_text('{"glacier": "not indexed"}', encoding="utf-8")
    return folder


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """Every test that takes a corpus runs on each engine: the same behaviour is asked of
    both."""
    if request.param == "tantivy":
        pytest.importorskip("tantivy")
    return str(request.param)


@pytest.fixture
def corpus(tmp_path: Path, docs: Path, engine: str) -> Iterator[CorpusEngine]:
    c = open_corpus(tmp_path / "corpus.db", engine=engine, create=True)
    stats = c.index_folder(docs)
    assert stats == IndexStats(added=4, passages=4)
    yield c
    c.close()


def test_index_reads_titles_and_urls_of_every_format(corpus: CorpusEngine, docs: Path) -> None:
    assert len(corpus) == 4
    rows = dict(corpus._db.execute("SELECT url, title FROM documents").fetchall())
    assert rows == {
        "https://example.org/glaciers": "Glaciers of the Alps",  # front matter wins
        (docs / "volcanoes.md").resolve().as_uri(): "Volcanic eruptions",  # first heading
        (docs / "honey_bees.txt").resolve().as_uri(): "honey bees",  # file name
        (docs / "tides.html").resolve().as_uri(): "How tides work",  # <title>
    }


def test_parse_document_strips_front_matter_from_the_body(tmp_path: Path) -> None:
    doc = parse_document(tmp_path / "glaciers.md", GLACIER_MD)
    assert doc.title == "Glaciers of the Alps"
    assert doc.url == "https://example.org/glaciers"
    assert doc.body.startswith("# Alpine ice\n\nGlaciers in the Alps")
    assert "title:" not in doc.body and "---" not in doc.body


def test_search_ranks_the_relevant_document_first(corpus: CorpusEngine) -> None:
    hits = corpus.search("glacier retreat")
    # both glacier documents match; the one about glaciers ranks above the volcano page
    assert [h.title for h in hits] == ["Glaciers of the Alps", "Volcanic eruptions"]
    assert hits[0].url == "https://example.org/glaciers"
    assert "glacier" in hits[0].snippet.lower()
    assert "\n" not in hits[0].snippet

    tides = corpus.search("spring tides moon")
    assert tides[0].title == "How tides work"
    assert "tides" in tides[0].snippet.lower()

    bees = corpus.search("waggle dance")
    assert len(bees) == 1
    assert bees[0].title == "honey bees"
    assert bees[0].snippet == (
        "Honey bees communicate the direction of flowers with a **waggle** **dance**. "
        "A colony can hold fifty thousand workers in summer."
    )


def test_search_respects_the_limit(corpus: CorpusEngine) -> None:
    assert len(corpus.search("glacier", limit=1)) == 1
    assert len(corpus.search("glacier", limit=10)) == 2


def test_search_without_match_is_empty(corpus: CorpusEngine) -> None:
    assert corpus.search("photosynthesis") == []


@pytest.mark.parametrize(
    "query",
    [
        '"',
        '"glacier',
        "glacier*",
        "*",
        "(",
        "(glacier",
        "glacier)",
        "AND",
        "glacier AND",
        "OR NOT",
        "-",
        "-glacier",
        "NEAR",
        "NEAR(glacier melt)",
        "title:glacier",
        "^glacier",
        "!!! ??? ... ;;;",
        "_",
        "",
        "   ",
        "\x00",
    ],
)
def test_fts5_syntax_in_queries_never_raises(corpus: CorpusEngine, query: str) -> None:
    hits = corpus.search(query)
    assert isinstance(hits, list)


@pytest.mark.parametrize("query", ['"', "*", "(", ")", "-", "^", ":", "!!! ???", "OR NOT", ""])
def test_queries_without_matching_words_return_nothing(corpus: CorpusEngine, query: str) -> None:
    assert corpus.search(query) == []


def test_fts5_operators_are_dropped_but_the_same_words_in_lower_case_are_searched(
    corpus: CorpusEngine,
) -> None:
    # "and" / "near" occur in the texts: as words they match, as operators they are ignored
    assert corpus.search("NEAR") == []
    assert corpus.search("AND") == []
    assert [h.title for h in corpus.search("near")] == ["How tides work"]
    assert {h.title for h in corpus.search("and")} == {"How tides work", "Volcanic eruptions"}


@pytest.mark.parametrize("query", ['"glacier', "glacier*", "(glacier", "-glacier", "{glacier}:"])
def test_syntax_around_a_real_word_still_finds_it(corpus: CorpusEngine, query: str) -> None:
    assert corpus.search(query)[0].title == "Glaciers of the Alps"


def test_fts_query_quotes_every_word() -> None:
    assert fts_query('glacier* AND "melt" -(NEAR)') == '"glacier"* OR "melt"'
    assert fts_query("!!! ???") == ""


def test_get_returns_the_stored_text(corpus: CorpusEngine, docs: Path) -> None:
    page = corpus.get("https://example.org/glaciers")
    assert page is not None
    assert page.title == "Glaciers of the Alps"
    assert page.url == "https://example.org/glaciers"
    assert page.text == GLACIER_MD.split("---\n", 2)[2].strip()

    bees = corpus.get((docs / "honey_bees.txt").resolve().as_uri())
    assert bees is not None
    assert bees.text == BEES_TXT.strip()

    assert corpus.get("https://example.org/nothing-here") is None


def test_reindex_after_changing_one_file(corpus: CorpusEngine, docs: Path) -> None:
    assert corpus.index_folder(docs) == IndexStats(unchanged=4)

    seen: list[tuple[str, str]] = []
    (docs / "honey_bees.txt").write_text(
        "Bumblebees fly in colder weather than honey bees.\n", encoding="utf-8"
    )
    stats = corpus.index_folder(docs, on_file=lambda e: seen.append((e.path.name, e.action)))
    assert stats == IndexStats(updated=1, unchanged=3, passages=1)
    assert [s for s in seen if s[1] != "unchanged"] == [("honey_bees.txt", "updated")]
    assert len(corpus) == 4
    assert corpus.search("waggle dance") == []
    assert [h.title for h in corpus.search("bumblebees")] == ["honey bees"]


def test_reindex_after_deleting_one_file(corpus: CorpusEngine, docs: Path) -> None:
    tides_url = (docs / "tides.html").resolve().as_uri()
    assert corpus.search("tides")[0].url == tides_url

    (docs / "tides.html").unlink()
    assert corpus.index_folder(docs) == IndexStats(unchanged=3, removed=1)
    assert len(corpus) == 3
    assert corpus.search("tides") == []
    assert corpus.get(tides_url) is None


def test_reindex_adds_a_new_file(corpus: CorpusEngine, docs: Path) -> None:
    (docs / "sub").mkdir()
    (docs / "sub" / "owls.md").write_text("# Owls\n\nOwls hunt at night.\n", encoding="utf-8")
    assert corpus.index_folder(docs) == IndexStats(added=1, unchanged=4, passages=1)
    assert [h.title for h in corpus.search("owls")] == ["Owls"]


def test_reindex_leaves_documents_of_a_sibling_folder_alone(
    tmp_path: Path, docs: Path, engine: str
) -> None:
    # "docs2" starts with the same characters as "docs": its files are not under docs/
    sibling = tmp_path / "docs2"
    sibling.mkdir()
    (sibling / "owls.md").write_text("# Owls\n\nOwls hunt at night.\n", encoding="utf-8")
    c = open_corpus(tmp_path / "two.db", engine=engine, create=True)
    try:
        assert c.index_folder(docs).added == 4
        assert c.index_folder(sibling) == IndexStats(added=1, passages=1)
        assert c.index_folder(docs) == IndexStats(unchanged=4)
        assert [h.title for h in c.search("owls")] == ["Owls"]
        assert len(c) == 5
    finally:
        c.close()


def test_index_of_a_missing_folder_is_a_usage_error(corpus: CorpusEngine, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a folder"):
        corpus.index_folder(tmp_path / "nope")


def test_opening_a_missing_corpus_is_a_usage_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    with pytest.raises(UsageError, match="corpus not found") as info:
        Corpus(missing)
    assert str(missing) in str(info.value)
    assert info.value.exit_code == 2
    assert not missing.exists()
    with pytest.raises(UsageError):
        LocalCorpusBackend(missing)


def test_opening_a_non_sqlite_file_is_a_usage_error(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.db"
    bogus.write_text("these are plain notes, not a database\n" * 200, encoding="utf-8")
    with pytest.raises(UsageError, match="not a rumination corpus"):
        Corpus(bogus)


def test_an_existing_corpus_reopens_with_its_documents(
    tmp_path: Path, corpus: CorpusEngine
) -> None:
    again = open_corpus(tmp_path / "corpus.db")
    try:
        assert len(again) == 4
        assert again.search("glacier")[0].title == "Glaciers of the Alps"
        assert again.engine == corpus.engine
        assert again.meta("schema_version") == str(SCHEMA_VERSION)
    finally:
        again.close()


def test_demo_corpus_is_indexed_into_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = demo_corpus_path()
    assert path.parent == tmp_path / "cache" / "rumination"
    assert path.name.startswith("demo-corpus-")  # one index per install: tests/test_demo_cache.py
    with sqlite3.connect(path) as db:
        count = db.execute("SELECT count(*) FROM documents").fetchone()[0]
    assert count >= 10

    demo = Corpus(path)
    try:
        hits = demo.search("refrigerant global warming potential")
        assert hits
        assert "refrigerant" in hits[0].title.lower()
    finally:
        demo.close()
    # a second call refreshes in place and finds nothing new
    assert demo_corpus_path() == path


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_local_backend_searches_and_fetches(corpus: CorpusEngine, tmp_path: Path) -> None:
    backend = LocalCorpusBackend(tmp_path / "corpus.db")
    try:
        hits = await backend.search("glacier", limit=5)
        assert hits[0].url == "https://example.org/glaciers"
        page = await backend.fetch("https://example.org/glaciers")
        assert page is not None and page.title == "Glaciers of the Alps"
        assert await backend.fetch("https://example.org/other") is None
    finally:
        await backend.aclose()
