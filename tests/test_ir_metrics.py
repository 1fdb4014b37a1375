"""bench/ir_quality.py: nDCG@10 on hand-computed examples, and the bench run end to end on a
tiny SYNTHETIC BEIR-format collection (tests/fixtures/beir_synthetic)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
from conftest import load_bench

ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC = ROOT / "tests" / "fixtures" / "beir_synthetic"


bench = load_bench("ir_quality")


def test_ndcg_on_a_hand_computed_example() -> None:
    # ranks 1..3 hold gains 1, 0, 2: DCG = 1/log2(2) + 0 + 2/log2(4) = 1 + 1 = 2
    # ideal order 2, 1, 1: IDCG = 2/1 + 1/log2(3) + 1/log2(4) = 2.5 + 1/log2(3)
    gains = {"a": 1, "c": 2, "d": 1, "x": 0}
    assert bench.ndcg_at_k(["a", "b", "c"], gains) == 2 / (2.5 + 1 / math.log2(3))


def test_ndcg_edges() -> None:
    gains = {"a": 3, "b": 1}
    assert bench.ndcg_at_k(["a", "b"], gains) == 1.0
    assert bench.ndcg_at_k([], gains) == 0.0
    assert bench.ndcg_at_k(["a"], {"a": 0, "b": -1}) == 0.0  # nothing relevant: 0, not a crash
    # a document listed again counts once, at its first place; the cut is at k
    assert bench.ndcg_at_k(["b", "b", "a"], gains) == bench.ndcg_at_k(["b", "a"], gains)
    assert bench.ndcg_at_k(["z", "a"], gains, k=1) == 0.0


def test_recall_counts_positive_judgments_found_in_the_first_k() -> None:
    gains = {"a": 2, "b": 1, "c": 0, "d": 1}
    assert bench.recall_at_k(["a", "c", "x", "a"], gains) == 1 / 3
    assert bench.recall_at_k(["x", "b", "d", "a"], gains, k=2) == 1 / 3
    assert bench.recall_at_k(["d", "b", "a"], gains) == 1.0
    assert bench.recall_at_k(["a"], {"a": 0}) == 0.0  # nothing relevant: 0, not a crash


def test_the_synthetic_collection_loads_judged_queries_only() -> None:
    collection = bench.load_beir(SYNTHETIC)
    assert len(collection.docs) == 8
    assert sorted(collection.queries) == ["q1", "q2", "q3"]  # q4 has no judgment
    assert collection.qrels["q1"] == {"d1": 2, "d2": 1, "d3": 1}


def rows_of(out: str) -> dict[str, list[str]]:
    """Table rows by system name ("local (sqlite)", "bm25s", a run file's name)."""
    rows = {}
    for line in out.splitlines():
        words = line.split()
        if words and words[0] == "local":
            rows[" ".join(words[:2])] = words[2:]
        elif words:
            rows[words[0]] = words[1:]
    return rows


def test_the_bench_runs_end_to_end_and_prints_every_row(
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("tantivy")
    assert bench.main(["--data", str(SYNTHETIC)]) == 0
    rows = rows_of(out := capsys.readouterr().out)
    for engine in ("sqlite", "tantivy"):
        ours = rows[f"local ({engine})"]  # nDCG@10 R@100 queries ...
        assert float(ours[0]) > 0.5 and ours[2] == "3"  # easy queries, all three judged ones
        assert float(ours[1]) == 1.0  # 8 documents: every judged one is in the first 100
    try:
        import bm25s  # noqa: F401
    except ImportError:
        assert "bm25s: not installed, row skipped" in out
    else:
        assert float(rows["bm25s"][0]) > 0.5 and rows["bm25s"][2] == "3"


def test_without_bm25s_its_row_is_skipped_with_a_note(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "bm25s", None)  # import bm25s now raises ImportError
    assert bench.main(["--data", str(SYNTHETIC), "--engine", "sqlite"]) == 0
    out = capsys.readouterr().out
    assert "local (sqlite)" in out and "bm25s: not installed, row skipped" in out


@pytest.mark.parametrize("engine", ["sqlite", "tantivy"])
def test_a_trec_run_of_rumination_search_scores_as_the_bench_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], engine: str
) -> None:
    """`rumination index corpus.jsonl` + `rumination search --queries --trec`, scored by
    `--score`, reproduce the bench's own figures: what docs/benchmarks.md says anyone can
    check with trec_eval."""
    if engine == "tantivy":
        pytest.importorskip("tantivy")
    from typer.testing import CliRunner

    from rumination.cli import app

    runner, db, run = CliRunner(), tmp_path / "corpus", tmp_path / "run.trec"
    indexed = runner.invoke(app, ["index", str(SYNTHETIC / "corpus.jsonl"), "--db", str(db),
                                  "--engine", engine])
    assert indexed.exit_code == 0, indexed.output
    searched = runner.invoke(app, ["search", "--corpus", str(db), "--queries",
                                   str(SYNTHETIC / "queries.jsonl"), "--trec", "-n", "100",
                                   "--out", str(run)])
    assert searched.exit_code == 0, searched.output
    lines = run.read_text(encoding="utf-8").splitlines()
    assert lines and all(len(line.split()) == 6 and line.split()[1] == "Q0" for line in lines)
    assert bench.main(["--data", str(SYNTHETIC), "--score", str(run)]) == 0
    scored = rows_of(capsys.readouterr().out)["run.trec"]
    assert bench.main(["--data", str(SYNTHETIC), "--engine", engine]) == 0
    measured = rows_of(capsys.readouterr().out)[f"local ({engine})"]
    assert scored[:3] == measured[:3]  # nDCG@10, recall@100, queries


def test_missing_data_exits_2_saying_what_to_download(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench.main(["--data", str(tmp_path / "scifact")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "scifact.zip" in err and "CC BY 4.0" in err and f"-d {tmp_path}" in err
