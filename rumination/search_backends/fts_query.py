"""How a user's or the model's search query becomes a safe SQLite FTS5 query.

The terms are joined with OR so that bm25 ranks partial matches. Common English function words
("the", "of", "what", ...) are dropped from the OR when other terms remain: they match nearly
every passage, so they cost time (bm25 is computed for every matching row) and, measured on
SciFact and Cranfield with `bench/ir_quality.py`, add nothing to the ranking. Inside a quoted
phrase they are kept.
"""

from __future__ import annotations

import re

MAX_QUERY_CHARS = 4000
MAX_QUERY_TERMS = 32
MAX_PHRASE_WORDS = 16

_PHRASE = re.compile(r'"([^"]*)"(\*?)')
# letters and digits: "_" separates words for FTS5's unicode61 tokenizer
_WORD = re.compile(r"[^\W_]+")
_WORD_TERM = re.compile(r"([^\W_]+)(\*?)")
_OPERATORS = frozenset({"AND", "OR", "NOT", "NEAR"})
STOPWORDS = frozenset(
    "a an and are as at be been but by can could did do does for from had has have how if in"
    " into is it its may might must no not of on or should so such than that the their then"
    " there these they this to was were what when where which who whom why will with would"
    .split()
)


def fts_query(text: str) -> str:
    """A safe FTS5 query for `text`: its `fts_terms` joined with OR."""
    return " OR ".join(fts_terms(text))


def fts_terms(text: str) -> list[str]:
    """The FTS5 terms of `text`, each safe on its own, stopwords left out (see above).

    `"an exact phrase"` stays a phrase and `word*` a prefix (of two letters or more);
    everything else is plain words. FTS5 syntax (bare AND/OR/NOT/NEAR, `-`, `^`, `:`,
    parentheses, stray quotes and stars) never reaches the parser: a query made only of
    syntax gives no terms.
    """
    text = text[:MAX_QUERY_CHARS]
    terms: list[str] = []
    position = 0
    for match in _PHRASE.finditer(text):
        terms += _word_terms(text[position : match.start()])
        terms += _phrase_terms(match.group(1), prefix=bool(match.group(2)))
        position = match.end()
    terms += _word_terms(text[position:])
    unique = list(dict.fromkeys(terms))
    content = [term for term in unique if term.strip('"') not in STOPWORDS]
    return (content or unique)[:MAX_QUERY_TERMS]


def _word_terms(text: str) -> list[str]:
    return [
        _term([word], prefix=bool(star))
        for word, star in _WORD_TERM.findall(text)
        if word not in _OPERATORS
    ]


def _phrase_terms(text: str, prefix: bool) -> list[str]:
    words = _WORD.findall(text)[:MAX_PHRASE_WORDS]
    if all(word in _OPERATORS for word in words):  # also true of no words at all
        return []
    return [_term(words, prefix)]


def _term(words: list[str], prefix: bool) -> str:
    # lower case: FTS5 folds case anyway, and "Ice ice" is then one term, not two
    quoted = '"' + " ".join(words).lower() + '"'
    # a one-letter prefix matches much of the vocabulary: searched as the plain word instead
    return quoted + "*" if prefix and len(words[-1]) > 1 else quoted
