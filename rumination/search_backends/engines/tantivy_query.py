"""`fts_terms` (the query semantics both engines share) as a Tantivy query.

Each term becomes a match in the title (weighted TITLE_WEIGHT) or the body, and the terms
are OR-ed: scores add up like FTS5's bm25 of an OR query. The title's weight is not FTS5's
5.0: FTS5 adds a column's weighted term counts before one BM25 saturation, while here each
field is a BM25 of its own and their scores add, so a title match already counts in full.
0.5 was the best of 0, 0.5, 1, 2 and 5 on SciFact and Cranfield (nDCG@10 0.5603 and 0.3376
at 5; 0.6931 and 0.3800 at 0.5, documents unsplit), the way FTS5's weight was chosen; see
docs/benchmarks.md. Words go through the same analyzer as the indexed text (`ANALYZER`:
lower case, accents folded, English Snowball stemming), so "Glaciers" finds "glacier"; in a prefix
(`glac*`) the last word is not stemmed, since stored words are stems ("glaciology" is kept
as "glaciolog", which "glacio*" still begins). A prefix matches with a constant score per
field (Tantivy does not rank the words it expands to); words and phrases rank by BM25.
"""

from __future__ import annotations

from collections.abc import Callable

import tantivy

from rumination.search_backends.common_terms import rarer_terms

ANALYZER_NAME = "rumination_en"
TITLE_WEIGHT = 0.5
MAX_TOKEN_BYTES = 40  # longer "words" (base64, URLs run together) are not indexed


def analyzer(*, stem: bool = True) -> tantivy.TextAnalyzer:
    """Words of letters and digits, lower-cased, accents folded, stemmed (English)."""
    builder = (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(MAX_TOKEN_BYTES))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
    )
    if stem:
        builder = builder.filter(tantivy.Filter.stemmer("english"))
    return builder.build()


ANALYZER = analyzer()
_UNSTEMMED = analyzer(stem=False)


def term_parts(term: str) -> tuple[list[str], bool]:
    """The analyzed tokens of one `fts_terms` term, and whether it ends in a prefix."""
    prefix = term.endswith("*")
    words = term.removesuffix("*").strip('"')
    if not prefix:
        return list(ANALYZER.analyze(words)), False
    *head, last = words.split() or [""]
    tokens = list(ANALYZER.analyze(" ".join(head))) + list(_UNSTEMMED.analyze(last))
    return tokens, True


def _first_token(term: str) -> str:
    tokens, _ = term_parts(term)
    return tokens[0] if tokens else ""


def build_query(
    schema: tantivy.Schema, terms: list[str], passages: int, body_doc_freq: Callable[[str], int]
) -> tantivy.Query | None:
    """The OR of `terms` (words common in the corpus left out, as `common_terms` does for the
    sqlite engine); None when no term has a token left."""
    kept = rarer_terms(terms, passages, lambda term: body_doc_freq(_first_token(term)))
    clauses = [
        (tantivy.Occur.Should, query)
        for term in kept
        for query in _field_queries(schema, *term_parts(term))
    ]
    return tantivy.Query.boolean_query(clauses) if clauses else None


def _field_queries(
    schema: tantivy.Schema, tokens: list[str], prefix: bool
) -> list[tantivy.Query]:
    if not tokens:
        return []
    title = _one_field(schema, "title", tokens, prefix)
    return [tantivy.Query.boost_query(title, TITLE_WEIGHT),
            _one_field(schema, "body", tokens, prefix)]


def _one_field(schema: tantivy.Schema, field: str, tokens: list[str], prefix: bool
               ) -> tantivy.Query:
    if prefix and len(tokens) == 1:
        # tokens are letters and digits only: nothing to escape in the pattern
        return tantivy.Query.regex_query(schema, field, tokens[0] + ".*")
    words: list[str | tuple[int, str]] = list(tokens)
    if prefix:
        return tantivy.Query.phrase_prefix_query(schema, field, words)
    if len(tokens) == 1:
        return tantivy.Query.term_query(schema, field, tokens[0])
    return tantivy.Query.phrase_query(schema, field, words)
