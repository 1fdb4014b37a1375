"""A search's top passages without scoring every passage of its common words.

Tantivy's Python bindings collect a search's top k with a multi-collector, which scores every
passage that matches any term: its block-max WAND never runs (tantivy 0.27; measured in
docs/benchmarks.md). So a query's cost is the length of its terms' posting lists, and a
word found in a third of the passages makes every query that holds it read a third of the
corpus.

`top_passages` prunes at the level of queries instead, as MaxScore does inside an engine.
A BM25 term adds at most `idf * (1 + K1)` (times its boost) to a passage's score, whatever its
count in the passage. The long posting lists (clauses of words found in more than
LONG_POSTINGS of the passages) are made optional: the search runs over the passages that
match one of the other clauses, and adds the optional clauses' scores to those. If its k-th
score is above the most the optional clauses together can give, no passage that matches only
them can reach the top k, and the answer is the full query's. If not, that k-th score is
still a floor for the answer's k-th (those k passages were scored in full), so a second
search keeps optional only the long clauses whose bounds add up to less than it, and passes
the same test. Where neither can answer, the full query does. The answer is always exactly
the full query's top k (scores summed in another order can differ in the last bit, so two
passages of equal score may swap).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import tantivy

K1 = 1.2  # Tantivy's BM25 saturation: a term's score is below idf * (1 + K1)
LONG_POSTINGS = 0.01  # clauses matching more than this share of passages start optional
MARGIN = 1.001  # Tantivy adds scores in 32-bit floats: the bound keeps a margin above them


@dataclass(frozen=True, eq=False)  # a clause is itself: queries do not compare
class Clause:
    """One OR-ed clause of a search: a field's term, phrase or prefix query."""

    query: tantivy.Query
    passages: int  # how many passages it matches (0 when not counted)
    bound: float | None  # the most it adds to a score; None when not bounded here


def term_clause(searcher: tantivy.Searcher, query: tantivy.Query, field: str, token: str,
                boost: float) -> Clause:
    """A one-word clause, with its BM25 bound from Tantivy's own idf."""
    passages = searcher.doc_freq(field, token)
    total = max(searcher.num_docs, passages)
    idf = math.log(1 + (total - passages + 0.5) / (passages + 0.5))
    return Clause(query, passages, boost * idf * (1 + K1) * MARGIN)


@dataclass(frozen=True)
class Answer:
    hits: list[tuple[float, tantivy.DocAddress]]  # (score, address), best first
    pruned: bool  # found without scoring the optional clauses' own passages


def top_passages(searcher: tantivy.Searcher, clauses: list[Clause], limit: int) -> Answer:
    """The full OR query's `limit` best passages."""
    optional = long_clauses(clauses, searcher.num_docs)
    for _ in range(2):
        if not optional:
            break
        hits = _search(searcher, _with_optional(clauses, optional), limit)
        if len(hits) < limit:
            break  # the required clauses match too few passages to bound the rest
        if hits[-1][0] > _bound(optional):
            return Answer(hits, pruned=True)
        # these `limit` scores are full scores: the answer's k-th is at least the last one,
        # so the optional clauses that add up to less than it can stay optional
        optional = within(optional, hits[-1][0])
    return Answer(_search(searcher, any_of(clauses), limit), pruned=False)


def long_clauses(clauses: list[Clause], total: int) -> list[Clause]:
    """The bounded clauses with long posting lists, longest first; never all the clauses:
    the rarest of them stays required, or nothing would be searched."""
    long = sorted((c for c in clauses if c.bound is not None
                   and c.passages > LONG_POSTINGS * total), key=lambda c: -c.passages)
    return long[:-1] if len(long) == len(clauses) else long


def within(optional: list[Clause], score: float) -> list[Clause]:
    """The longest of `optional` (longest first) whose bounds add up to less than `score`."""
    kept: list[Clause] = []
    for clause in optional:
        if _bound(kept) + (clause.bound or 0.0) < score:
            kept.append(clause)
    return kept


def _bound(optional: list[Clause]) -> float:
    return sum(c.bound or 0.0 for c in optional)


def _with_optional(clauses: list[Clause], optional: list[Clause]) -> tantivy.Query:
    """The required clauses' OR, each optional clause's score added to its passages. One
    optional clause a level: Tantivy seeks a lone optional term in its skip list for each
    required passage, where a union of optional terms would walk (and score) every passage
    of theirs."""
    query = any_of([c for c in clauses if c not in optional])
    for clause in optional:
        query = tantivy.Query.boolean_query([(tantivy.Occur.Must, query),
                                             (tantivy.Occur.Should, clause.query)])
    return query


def _search(searcher: tantivy.Searcher, query: tantivy.Query, limit: int
            ) -> list[tuple[float, tantivy.DocAddress]]:
    hits: list[tuple[float, tantivy.DocAddress]] = searcher.search(query, limit,
                                                                   count=False).hits
    return hits


def any_of(clauses: list[Clause]) -> tantivy.Query:
    return tantivy.Query.boolean_query([(tantivy.Occur.Should, c.query) for c in clauses])
