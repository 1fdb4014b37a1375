"""Corpus queries: phrases, prefixes, ranking, highlighting, and FTS5 syntax that must never
raise (a table of nasty queries plus a seeded random generator)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from rumination.reading.untrusted import neutralise
from rumination.search_backends.corpus import HIGHLIGHT
from rumination.search_backends.engines.open import ENGINES, open_corpus
from rumination.search_backends.engines.protocol import CorpusEngine
from rumination.search_backends.fts_query import MAX_QUERY_TERMS, fts_query

DOCS = {
    "retreat.md": "# Retreat\n\nGlacier retreat exposes bare moraine in the Alps every summer.",
    "advance.md": "# Advance\n\nThe retreat of the glacier slowed when the glacier met cold air.",
    "firn.txt": "Firn is granular snow, older than a season, on its way to becoming ice.",
    "glaciology.md": "# Glaciology\n\nThe study of ice: its flow, its mass and its history.",
    "cooking.md": "# Cooking\n\nBread needs flour, water, salt and time. AND NOT OR near here.",
}


def needs_engine(engine: str) -> str:
    if engine == "tantivy":
        pytest.importorskip("tantivy")
    return engine


@pytest.fixture(scope="module", params=ENGINES)
def corpus(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[CorpusEngine]:
    """The same documents in each engine: every query test runs on both."""
    engine = needs_engine(request.param)
    folder = tmp_path_factory.mktemp("queries")
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    c = open_corpus(folder / "corpus.db", engine=engine, create=True)
    c.index_folder(folder)
    yield c
    c.close()


def titles(corpus: CorpusEngine, query: str) -> list[str]:
    return [hit.title for hit in corpus.search(query)]


def test_a_quoted_phrase_matches_only_those_words_in_that_order(corpus: CorpusEngine) -> None:
    assert titles(corpus, '"glacier retreat"') == ["Retreat"]
    assert set(titles(corpus, "glacier retreat")) == {"Retreat", "Advance"}
    assert titles(corpus, '"bare moraine"') == ["Retreat"]
    assert titles(corpus, '"moraine bare"') == []


def test_a_phrase_among_words_is_one_more_term_ored_with_them(corpus: CorpusEngine) -> None:
    # "Advance" has both words of the phrase, but not as the phrase
    assert set(titles(corpus, 'granular "glacier retreat"')) == {"Retreat", "firn"}


def test_a_star_after_a_word_is_a_prefix(corpus: CorpusEngine) -> None:
    assert set(titles(corpus, "glacio*")) == {"Glaciology"}
    assert set(titles(corpus, "glac*")) == {"Retreat", "Advance", "Glaciology"}
    assert titles(corpus, "glacio") == []  # without the star, a whole word
    assert titles(corpus, '"glacier ret"*') == ["Retreat"]  # a phrase ending in a prefix


def test_a_one_letter_prefix_is_searched_as_the_word(corpus: CorpusEngine) -> None:
    assert fts_query("g*") == '"g"'
    assert corpus.search("g*") == []


def test_an_unbalanced_quote_leaves_plain_words(corpus: CorpusEngine) -> None:
    assert fts_query('"glacier retreat') == '"glacier" OR "retreat"'
    assert set(titles(corpus, '"glacier retreat')) == {"Retreat", "Advance"}
    assert fts_query('glacier" retreat "firn') == '"glacier" OR "retreat" OR "firn"'


def test_title_matches_weigh_more_than_body_matches(corpus: CorpusEngine) -> None:
    # "retreat" is the title of one document and in the body of both
    assert titles(corpus, "retreat") == ["Retreat", "Advance"]


def test_snippets_mark_the_matched_words_in_plain_text(corpus: CorpusEngine) -> None:
    (hit,) = corpus.search("granular snow")
    assert f"{HIGHLIGHT}granular{HIGHLIGHT} {HIGHLIGHT}snow{HIGHLIGHT}" in hit.snippet
    assert neutralise(hit.snippet) == hit.snippet


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("glacier melt", '"glacier" OR "melt"'),
        ('"glacier melt"', '"glacier melt"'),
        ('"glacier melt"*', '"glacier melt"*'),
        ("glac*", '"glac"*'),
        ("*glac", '"glac"'),
        ("heat-pump*", '"heat" OR "pump"*'),
        ("snake_case", '"snake" OR "case"'),
        ("glacier glacier GLACIER", '"glacier"'),
        ("AND OR NOT NEAR", ""),
        ('"AND" "OR NOT"', ""),
        ('"salt AND pepper"', '"salt and pepper"'),
        ("Gletscher GLACIÉR*", '"gletscher" OR "glaciér"*'),
        ("and or not near", '"near"'),  # lower-case operators are words (here stopwords)
        ("and or not", '"and" OR "or" OR "not"'),  # only stopwords: all kept
        ("What is the retreat of THE glacier", '"retreat" OR "glacier"'),
        ('"the glacier" of ice', '"the glacier" OR "ice"'),  # kept inside a phrase
        ("the*", '"the"*'),  # a prefix is no stopword
        ("title:ice ^firn -melt", '"title" OR "ice" OR "firn" OR "melt"'),
        ("NEAR(ice snow, 3)", '"ice" OR "snow" OR "3"'),
        ('""', ""),
        ('"*"', ""),
        ("", ""),
    ],
)
def test_fts_query(query: str, expected: str) -> None:
    assert fts_query(query) == expected


def test_fts_query_keeps_at_most_max_query_terms() -> None:
    query = " ".join(f"word{i}" for i in range(100))
    assert fts_query(query).count(" OR ") == MAX_QUERY_TERMS - 1


SYNTAX_ONLY = [
    '"', '""', '"""', "*", "**", '"*"', "(", ")", "()", "(((", ")))", "AND", "OR", "NOT",
    "NEAR", "AND OR", "NOT NEAR", "NEAR()", "NEAR(,)", "-", "--", ":", "::", "^", "^^", "+",
    "{", "}", "{}:", "(*)", '"(AND)"', "- : ^ * ( )", "AND (OR) NOT -", '" AND "', "!!! ???",
    "   ", "\t\n", "\x00", "_", "__init__ ~ _", "\u200b", "\u0301",
]
WITH_WORDS = [
    '"glacier', 'glacier"', '"glacier" "', 'glacier*', "glacier**", "*glacier*", "(glacier",
    "glacier)", "((glacier))", "glacier AND", "AND glacier", "glacier OR OR firn",
    "glacier NOT", "-glacier", "glacier -", "NEAR(glacier firn)", "NEAR(glacier firn, 2)",
    "title:glacier", "body:glacier", "{title body}:glacier", "^glacier", "glacier^",
    "glacier:", "glacier + firn", '"glacier retreat" AND "firn', 'glacier "" firn',
    "glacier\x00firn", "glacier\nfirn\tice", "glacier's", "«glacier»", "glacier…", "GLACIER",
    "glaciér", "Gletscher glacier 冰川", "glacier 🧊", "x" * 5000, "glacier " * 200,
]


@pytest.mark.parametrize("query", SYNTAX_ONLY)
def test_a_query_of_only_syntax_finds_nothing_and_never_raises(
    corpus: CorpusEngine, query: str
) -> None:
    assert corpus.search(query) == []


@pytest.mark.parametrize("query", WITH_WORDS)
def test_a_query_with_words_in_syntax_never_raises(corpus: CorpusEngine, query: str) -> None:
    hits = corpus.search(query)
    assert isinstance(hits, list)
    if "glacier" in query.lower() and "glaciér" not in query:
        assert hits, query


ALPHABET = list('"*()-:^+{},.!?\'_ \t\n\x00') + [
    "AND", "OR", "NOT", "NEAR", "glacier", "firn", "ice", "retreat", "glac", "冰川", "é", "🧊",
    "\u0301", "\u200b", "title", "body",
]


@pytest.mark.parametrize("engine", ENGINES)
def test_random_queries_on_an_empty_corpus_never_raise(tmp_path: Path, engine: str) -> None:
    rng = random.Random(20240611)
    corpus = open_corpus(tmp_path / "empty.db", engine=needs_engine(engine), create=True)
    try:
        for _ in range(600):
            query = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 24)))
            assert corpus.search(query) == []  # FTS5 parses the query even with no rows
    finally:
        corpus.close()


def test_random_queries_against_documents_never_raise(corpus: CorpusEngine) -> None:
    rng = random.Random(7)
    for _ in range(600):
        query = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 24)))
        hits = corpus.search(query, limit=3)
        assert len(hits) <= 3
        if not fts_query(query):
            assert hits == []
