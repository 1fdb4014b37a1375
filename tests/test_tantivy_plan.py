"""The tantivy engine's pruned search (`tantivy_plan`): the same top passages as the full OR
query, found without scoring the common words' passages whenever the bound allows it."""

from __future__ import annotations

import json
import random

import pytest

pytest.importorskip("tantivy")

import tantivy  # noqa: E402

from rumination.search_backends.engines.tantivy_corpus import TantivyCorpus  # noqa: E402
from rumination.search_backends.engines.tantivy_plan import (  # noqa: E402
    Clause,
    any_of,
    long_clauses,
    top_passages,
    within,
)
from rumination.search_backends.engines.tantivy_query import build_clauses  # noqa: E402
from rumination.search_backends.fts_query import fts_terms  # noqa: E402
from rumination.search_backends.importers.jsonl import JsonlSource  # noqa: E402
from rumination.search_backends.importers.records import import_records  # noqa: E402

WORDS = [f"w{rank}x" for rank in range(1, 3001)]  # made-up words: no stopword, no stemming
WEIGHTS = [1 / rank for rank in range(1, 3001)]
K = 10


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> TantivyCorpus:
    """3,000 passages over a Zipfian vocabulary: a few words in most passages, most rare."""
    rng = random.Random(11)
    folder = tmp_path_factory.mktemp("plan")
    records = folder / "records.jsonl"
    with records.open("w", encoding="utf-8") as out:
        for number in range(3000):
            text = " ".join(rng.choices(WORDS, WEIGHTS, k=rng.randint(30, 90)))
            title = " ".join(rng.choices(WORDS, WEIGHTS, k=2))
            out.write(json.dumps({"id": f"r{number}", "title": title, "text": text}) + "\n")
    opened = TantivyCorpus(folder / "corpus", create=True)
    import_records(opened, JsonlSource(records))
    return opened


def queries() -> list[str]:
    rng = random.Random(3)
    return [" ".join(rng.choices(WORDS, WEIGHTS, k=rng.randint(2, 5))) for _ in range(150)]


def clauses_of(corpus: TantivyCorpus, query: str) -> tuple[tantivy.Searcher, list[Clause]]:
    searcher = corpus._index.searcher()
    return searcher, build_clauses(corpus._schema_t, fts_terms(query), searcher)


def places(hits: list[tuple[float, tantivy.DocAddress]]) -> list[tuple[int, int]]:
    return [(address.segment_ord, address.doc) for _, address in hits]


def test_the_pruned_search_finds_the_full_querys_top_passages(corpus: TantivyCorpus) -> None:
    pruned_answers = 0
    for query in queries():
        searcher, clauses = clauses_of(corpus, query)
        full = searcher.search(any_of(clauses), K, count=False).hits
        answer = top_passages(searcher, clauses, K)
        assert [s for s, _ in answer.hits] == pytest.approx([s for s, _ in full], abs=1e-4)
        distinct = [i for i, (score, _) in enumerate(full)  # passages not tied with another
                    if all(abs(score - other) > 1e-4 for j, (other, _) in enumerate(full)
                           if j != i)]
        assert [places(answer.hits)[i] for i in distinct] == [places(full)[i] for i in distinct]
        pruned_answers += answer.pruned
    # the bounds are useful: a third of these searches (of 5 in 6 at 1M passages, where
    # fewer words are long and more are rare) never score the common words' passages alone
    assert pruned_answers >= 40


def test_a_clause_never_scores_above_its_bound(corpus: TantivyCorpus) -> None:
    for words in (WORDS[:10], WORDS[30:50]):  # all common (so all kept), and the next ones
        searcher, clauses = clauses_of(corpus, " ".join(words))
        bounded = [c for c in clauses if c.bound is not None]
        assert len(bounded) == 2 * len(words)  # a title and a body clause for each word
        for clause in bounded:
            best = searcher.search(clause.query, 1, count=False).hits
            assert best and best[0][0] <= clause.bound


def test_the_long_clauses_start_optional_and_the_rarest_stays_required(
    corpus: TantivyCorpus,
) -> None:
    searcher, clauses = clauses_of(corpus, "w2x w3x")  # both in most passages' bodies
    long = long_clauses(clauses, searcher.num_docs)
    assert [c.passages for c in long] == sorted((c.passages for c in long), reverse=True)
    assert len(long) == len(clauses) - 1
    assert min(clauses, key=lambda c: c.passages) not in long
    kept = within(long, long[-1].bound + 0.01)  # room for the shortest one only
    assert kept == [long[-1]] or sum(c.bound for c in kept) < long[-1].bound + 0.01
