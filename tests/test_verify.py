"""`rumination verify`: a finished report re-checked from the run store, by run id or from its
JSON file, with the lexical judge or an llm judge served over HTTP on loopback."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rumination.cli import app
from rumination.store.run_store import RunStore
from rumination.testing import SimulatorServer, with_unsupported

runner = CliRunner()
QUESTION = "How well do air-source heat pumps perform in cold climates?"
Start = Callable[..., SimulatorServer]


def judge_responder(messages: list[dict[str, Any]]) -> str:
    """A strict reader as judge: a statement saying "not" or "It is not true" is unsupported."""
    prompt = str(messages[-1]["content"])
    block = prompt.split("<statements>")[1].split("</statements>")[0]
    statements = [line.split(". ", 1)[1] for line in block.strip().splitlines()]
    return json.dumps([
        {"statement": i, "verdict": "unsupported" if " not " in f" {s} " else "supported",
         "quote": "", "reason": "read by the test judge"}
        for i, s in enumerate(statements, start=1)
    ])


@pytest.fixture
def finished_run(start_simulator: Start, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    store = tmp_path / "runs.db"
    monkeypatch.setenv("RUMINATION_RUN_STORE", str(store))
    server = start_simulator(with_unsupported(2), model="sim")
    out = tmp_path / "report.json"
    result = runner.invoke(app, ["research", QUESTION, "--llm-url", server.url, "--model", "sim",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    return json.loads(out.read_text())["run_id"], out


def test_verify_by_run_id_rechecks_and_updates_the_stored_report(
    finished_run: tuple[str, Path], tmp_path: Path
) -> None:
    run_id, _ = finished_run
    result = runner.invoke(app, ["verify", run_id, "--format", "json",
                                 "--unsupported-citations", "drop"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert [s["action"] for s in data["statements"]].count("dropped") == 2
    assert "citation_accuracy" in result.stderr
    stored = RunStore(tmp_path / "runs.db").report(run_id)
    assert stored is not None
    assert [s.action for s in stored.statements].count("dropped") == 2
    again = runner.invoke(app, ["verify", run_id, "--format", "json"])
    statements = json.loads(again.stdout)["statements"]
    assert [s["action"] for s in statements].count("dropped") == 2  # kept as a record
    assert [s["verdict"] for s in statements].count("unsupported") == 2


def test_verify_a_report_file_with_an_llm_judge_rewrites_it(
    finished_run: tuple[str, Path], start_simulator: Start
) -> None:
    _, report_file = finished_run
    before = json.loads(report_file.read_text())
    assert {s["judge"] for s in before["statements"]} == {"lexical"}
    judge = start_simulator(judge_responder, model="judge-sim")
    result = runner.invoke(app, ["verify", str(report_file), "--judge", "llm",
                                 "--judge-url", judge.url, "--judge-model", "judge-sim"])
    assert result.exit_code == 0, result.stderr
    after = json.loads(report_file.read_text())
    assert {s["judge"] for s in after["statements"]} == {"llm:judge-sim"}
    assert [s["verdict"] for s in after["statements"]].count("unsupported") == 2
    assert after["answer_markdown"] == before["answer_markdown"]
    markdown = runner.invoke(app, ["verify", str(report_file), "--out", str(report_file) + ".md"])
    assert markdown.exit_code == 0
    assert "### Citations not supported" in Path(str(report_file) + ".md").read_text()


def test_verify_a_write_mode_run(start_simulator: Start, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUMINATION_RUN_STORE", str(tmp_path / "runs.db"))
    server = start_simulator(with_unsupported(1), model="sim")
    out = tmp_path / "w.json"
    assert runner.invoke(app, ["research", QUESTION, "--mode", "write", "--llm-url", server.url,
                               "--model", "sim", "--out", str(out)]).exit_code == 0
    run_id = json.loads(out.read_text())["run_id"]
    result = runner.invoke(app, ["verify", run_id, "--format", "json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["figures"]["statements_unsupported"] == 1


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["verify", "missing.json"], "report file not found"),
        (["verify", "nosuchrun"], "no run 'nosuchrun'"),
        (["verify", "x", "--judge", "oracle"], "invalid setting judge"),
        (["verify", "x", "--unsupported-citations", "hide"], "unsupported_citations"),
    ],
)
def test_verify_bad_input_exits_2_with_one_line(
    args: list[str], needle: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert needle in result.stderr and "Traceback" not in result.stderr


def test_verify_needs_the_run_in_the_store(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from rumination.models import Report

    monkeypatch.setenv("RUMINATION_RUN_STORE", str(tmp_path / "empty.db"))
    report_file = tmp_path / "foreign.json"
    report_file.write_text(Report(question="q", answer_markdown="a", run_id="elsewhere",
                                  model="m").model_dump_json())
    result = runner.invoke(app, ["verify", str(report_file)])
    assert result.exit_code == 2
    assert "run elsewhere is not in the run store" in result.stderr
    (tmp_path / "bad.json").write_text("{not json")
    bad = runner.invoke(app, ["verify", str(tmp_path / "bad.json")])
    assert bad.exit_code == 2 and "not a rumination JSON report" in bad.stderr
