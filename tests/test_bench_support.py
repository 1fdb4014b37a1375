"""bench/support.py: the labeled set is well formed and the lexical judge keeps its floors."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest
from conftest import load_bench

from rumination.support.lexical import LexicalJudge

ROOT = Path(__file__).resolve().parent.parent


def bench() -> ModuleType:
    return load_bench("support")


@pytest.mark.parametrize(("name", "least"), [("support_set", 150), ("support_heldout", 50)])
def test_the_labeled_sets_cover_every_kind_of_error(name: str, least: int) -> None:
    rows = bench().load_set(ROOT / f"bench/{name}.jsonl")
    assert len(rows) >= least and len({r["id"] for r in rows}) == len(rows)
    kinds = Counter(r["kind"] for r in rows)
    assert set(kinds) == {"paraphrase", "changed_number", "swapped_entity", "negation",
                          "wrong_page"}
    assert all(r["label"] == ("supported" if r["kind"] == "paraphrase" else "unsupported")
               for r in rows)


def test_the_lexical_judge_keeps_its_floors_on_the_set() -> None:
    module = bench()
    scores = module.score(module.load_set(ROOT / "bench/support_set.jsonl"), LexicalJudge())
    assert scores.accuracy >= 0.9 and scores.precision >= 0.9 and scores.recall >= 0.9
