"""Query words that match a large share of a corpus, left out of its ranked search.

FTS5 computes bm25 for every passage that matches any OR-ed term, so one word found in half the
passages makes a query cost a pass over half the corpus, and that cost grows with the corpus.
Such a word barely moves the ranking: bm25's idf, ln((N - n + 0.5) / (n + 0.5)), is ln 2 at a
third of the passages and FTS5 floors it to nearly 0 past half. So a plain word that matches
more than COMMON_SHARE of the passages is left out when a rarer term that matches remains (a
misspelt word alone would find nothing): the same rule as the English stopwords in
`fts_query`, learnt from the corpus itself (Elasticsearch's "common terms" cut-off works
alike). Phrases and prefixes are always kept: the user asked for them. A
corpus of fewer than MIN_PASSAGES passages is searched with every term: shares mean little
there, and every search of it is fast.

Counting a word's passages walks its posting list without scoring it, an order of magnitude
cheaper than ranking; the counts are kept until the corpus changes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

COMMON_SHARE = 1 / 3
MIN_PASSAGES = 1000
_CACHE_LIMIT = 100_000  # words; cleared whole when passed


def rarer_terms(terms: list[str], passages: int, matches: Callable[[str], int]) -> list[str]:
    """`terms` (FTS5 terms of an OR query) without the plain words that `matches` more than
    COMMON_SHARE of `passages`; all of them when no other term is left that matches at all
    (every plain word is that common, or the rest are words found nowhere), or when there are
    fewer than MIN_PASSAGES passages."""
    if passages < MIN_PASSAGES:
        return terms
    common = {t for t in terms if _plain_word(t) and matches(t) > COMMON_SHARE * passages}
    rarer = [t for t in terms if t not in common]
    # a misspelt or unknown word left alone would find nothing where the common ones find
    if not any(not _plain_word(t) or matches(t) for t in rarer):
        return terms
    return rarer


def _plain_word(term: str) -> bool:
    """`"word"`: one quoted word, not a phrase and not a prefix."""
    return term.endswith('"') and " " not in term


class TermCounts:
    """Passages matching each term, and the corpus's passage count, for one connection;
    forgotten when another connection commits to the file (`PRAGMA data_version`) or when
    `forget` is called after this connection's own writes."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._version: int | None = None
        self._passages: int | None = None
        self._matches: dict[str, int] = {}

    def rarer(self, terms: list[str]) -> list[str]:
        """`rarer_terms` with this corpus's counts."""
        return rarer_terms(terms, self.passages(), self.matches)

    def forget(self) -> None:
        self._version, self._passages = None, None
        self._matches.clear()

    def _current(self) -> None:
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        if version != self._version:
            self.forget()
            self._version = version

    def passages(self) -> int:
        self._current()
        if self._passages is None:
            self._passages = int(self._db.execute("SELECT count(*) FROM passages").fetchone()[0])
        return self._passages

    def matches(self, term: str) -> int:
        count = self._matches.get(term)
        if count is None:
            if len(self._matches) >= _CACHE_LIMIT:
                self._matches.clear()
            count = self._matches[term] = int(self._db.execute(
                "SELECT count(*) FROM passages_fts WHERE passages_fts MATCH ?", (term,)
            ).fetchone()[0])
        return count
