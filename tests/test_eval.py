"""`rumination eval`: suites, short-answer scores, the run over HTTP with the simulator (and an
llm judge that grades and checks citations), idempotent re-runs, and --compare."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rumination.cli import app
from rumination.errors import UsageError
from rumination.jobs.evaluation import (
    EvalItem,
    deltas,
    load_suite,
    run_eval,
    summary_table,
)
from rumination.reports import render_report
from rumination.settings import Settings
from rumination.support.scoring import (
    answer_in_report,
    exact_match,
    normalize,
    short_answer,
    token_f1,
)
from rumination.testing import SimulatorServer, simulate

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "eval" / "heat_pumps.jsonl"
Start = Callable[..., SimulatorServer]
runner = CliRunner()


# --- scores ------------------------------------------------------------------------------------


def test_normalized_exact_match_and_token_f1() -> None:
    assert normalize("The  River-Limmat!") == "riverlimmat"
    assert exact_match("Peter von Rittinger", "peter von rittinger.") == 1.0
    assert exact_match("1834", "In 1834") == 0.0
    # gold 3 tokens, guess 4 tokens, 2 shared: precision 1/2, recall 2/3 -> F1 4/7
    assert token_f1("15 to 20", "about 15 or 20") == pytest.approx(4 / 7)
    assert token_f1("", "") == 1.0 and token_f1("x", "") == 0.0
    assert answer_in_report("88 percent", "# Costs\n\nA boiler at 88 percent[1] burns more.")
    assert not answer_in_report("88 percent", "it burns 188 percent")


def test_the_short_answer_is_the_first_prose_paragraph() -> None:
    answer = "# Title\n\n## Part\n\nRittinger built it in the 1850s.[1][2]\n\nMore text."
    assert short_answer(answer) == "Rittinger built it in the 1850s."
    assert short_answer("# Only a heading") == ""


# --- suites ------------------------------------------------------------------------------------


def test_the_example_suite_loads() -> None:
    items = load_suite(EXAMPLE)
    assert len(items) >= 8 and sum(i.answer is None for i in items) >= 1


def test_a_yaml_suite_with_extra_fields_loads(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text("items:\n  - id: 7\n    question: Why?\n    answer: Because\n    topic: x\n")
    assert load_suite(suite) == [EvalItem(id="7", question="Why?", answer="Because")]


@pytest.mark.parametrize(
    ("name", "text", "needle"),
    [
        ("a.jsonl", '{"id": "a", "question": "q"}\n{broken\n', "a.jsonl:2: invalid JSON"),
        ("b.jsonl", '{"id": "a"}\n', "field `question`"),
        ("c.jsonl", '{"id": "a", "question": "q"}\n{"id": "a", "question": "r"}\n',
         "share the id 'a'"),
        ("d.yaml", "just text", "expected a list"),
        ("e.jsonl", "\n", "no items"),
    ],
)
def test_bad_suites_are_one_line_usage_errors(
    tmp_path: Path, name: str, text: str, needle: str
) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(UsageError, match=needle.replace("(", r"\(")):
        load_suite(tmp_path / name)


# --- a run -------------------------------------------------------------------------------------


def judge(messages: list[dict[str, Any]]) -> str:
    """One endpoint for both judges: citation verdicts (all supported) and SimpleQA grades
    (A when the gold target is in the predicted answer, else C)."""
    prompt = str(messages[-1]["content"])
    if "<statements>" in prompt:
        count = prompt.split("<statements>")[1].count("\n") - 1
        return json.dumps([{"statement": i + 1, "verdict": "supported"} for i in range(count)])
    target = prompt.split("Gold target: ")[1].split("\n")[0]
    predicted = prompt.split("Predicted answer: ")[1].split("\n")[0]
    return "A" if target.lower() in predicted.lower() else "C"


def faithful_first(messages: list[dict[str, Any]]) -> str:
    """The simulator, whose report opens with the text of the first page it read (so the short
    answer comes from a source instead of the simulator's own preamble)."""
    text = simulate(messages)
    return text.replace(
        "This report was written by the rumination protocol simulator from the sources it "
        "read; it quotes them and draws no conclusions of its own.",
        "Peter von Rittinger, the Austrian mining engineer, built it.",
    )


def test_eval_runs_scores_and_reruns_idempotently(start_simulator: Start, tmp_path: Path) -> None:
    calls: list[int] = []

    def counted(messages: list[dict[str, Any]]) -> str:
        calls.append(1)
        return faithful_first(messages)

    model = start_simulator(counted, model="sim")
    grader = start_simulator(judge, model="judge")
    settings = Settings(llm_url=model.url, model="sim", max_turns=4, judge="llm",
                        judge_url=grader.url, judge_model="judge",
                        run_store=str(tmp_path / "runs.db"))
    items = [i for i in load_suite(EXAMPLE) if i.id in ("rittinger", "r290", "cold-adoption")]
    out = tmp_path / "eval"
    results, summary = asyncio.run(run_eval(items, out, settings, render_report, concurrency=3))
    by_id = {r.id: r for r in results}
    # gold: 3 words, all in the 8-word short answer: precision 3/8, recall 1 -> F1 6/11
    assert by_id["rittinger"].token_f1 == pytest.approx(6 / 11, abs=1e-4)
    assert by_id["rittinger"].grade == "correct" and by_id["rittinger"].exact_match == 0.0
    assert by_id["r290"].grade == "not_attempted"
    assert by_id["cold-adoption"].grade is None and by_id["cold-adoption"].token_f1 is None
    assert all(r.citation_accuracy == 1.0 and r.turns == 4 and r.sources_seen > 0
               for r in results)
    assert summary["items"] == 3 and summary["graded"] == 2 and summary["grade_correct"] == 0.5
    assert summary["citation_accuracy"] == 1.0
    lines = (out / "results.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["rittinger", "r290", "cold-adoption"]
    assert json.loads((out / "summary.json").read_text()) == summary
    assert "| cold-adoption | finished |" in (out / "summary.md").read_text()
    assert len(list((out / "reports").glob("*.md"))) == 3

    made = len(calls)
    again, summary_again = asyncio.run(run_eval(items, out, settings, render_report))
    assert [r.status for r in again] == ["skipped"] * 3
    assert [r.run_id for r in again] == [r.run_id for r in results]
    assert summary_again["token_f1"] == summary["token_f1"]
    assert len(calls) == made  # nothing was asked of the model again


def test_compare_prints_deltas(tmp_path: Path) -> None:
    before = {"items": 2, "token_f1": 0.5, "citation_accuracy": None, "turns": 10.0}
    now = {"items": 2, "token_f1": 0.75, "citation_accuracy": 0.9, "turns": 4.0}
    assert deltas(now, before) == {"items": 0, "token_f1": 0.25, "turns": -6.0}
    table = summary_table(now, before)
    assert "| token_f1 | 0.75 | 0.5 | +0.25 |" in table
    assert "| citation_accuracy | 0.9 | – | – |" in table


def test_cli_eval_writes_results_and_compares(
    start_simulator: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUMINATION_RUN_STORE", str(tmp_path / "runs.db"))
    server = start_simulator(simulate, model="sim")
    suite = tmp_path / "suite.jsonl"
    suite.write_text("".join(line + "\n" for line in EXAMPLE.read_text().splitlines()[:2]))
    common = [str(suite), "--llm-url", server.url, "--model", "sim", "--max-turns", "3"]
    first = runner.invoke(app, ["eval", *common, "--out-dir", str(tmp_path / "one")])
    assert first.exit_code == 0, first.stderr
    assert "| citation_accuracy |" in first.stdout
    second = runner.invoke(app, ["eval", *common, "--max-turns", "2", "--out-dir",
                                 str(tmp_path / "two"), "--compare", str(tmp_path / "one")])
    assert second.exit_code == 0, second.stderr
    assert "| turns | 2 | 3 | -1 |" in second.stdout
    assert "| previous | delta |" in (tmp_path / "two" / "summary.md").read_text()
    bad = runner.invoke(app, ["eval", *common, "--out-dir", str(tmp_path / "x"),
                              "--compare", str(tmp_path / "nowhere")])
    assert bad.exit_code == 2 and "cannot read the summary" in bad.stderr
