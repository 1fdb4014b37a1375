"""`verify --judge llm` when the judge cannot judge (issue 21, item 6): an unreachable judge
server is exit 3 and an unserved judge model exit 2, each one line, the same as research
gives, found before any statement is judged; a judge server that fails part-way fails the
run. In every case the report file and the stored report stay as they were."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rumination.agent.researcher import Researcher
from rumination.cli import app
from rumination.reports.render import render_report
from rumination.settings import Settings
from rumination.store.run_store import RunStore
from rumination.testing import SimulatorModel, SimulatorServer, simulate

runner = CliRunner()
Start = Callable[..., SimulatorServer]


def closed_port_url() -> str:
    """A loopback URL nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.fixture
def report_file(tmp_path: Path, corpus_db: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A finished run in the run store and its report as REPORT.json, judged lexically."""
    store_path = tmp_path / "runs.db"
    monkeypatch.setenv("RUMINATION_RUN_STORE", str(store_path))
    settings = Settings(corpus=str(corpus_db), max_turns=4)
    report = asyncio.run(Researcher(settings, llm=SimulatorModel(), store=RunStore(store_path))
                         .run("How do sea otters help kelp forests?"))
    assert report.statements and {s.judge for s in report.statements} == {"lexical"}
    path = tmp_path / "report.json"
    path.write_text(render_report(report, "json"), encoding="utf-8")
    return path


def stored_report_json(report_file: Path) -> str:
    store = RunStore(report_file.parent / "runs.db")
    run_id = store.list_runs(1)[0].run_id
    stored = store.report(run_id)
    assert stored is not None
    return stored.model_dump_json()


def assert_one_error_line(stderr: str, *needles: str) -> None:
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_an_unreachable_judge_is_exit_3_and_rewrites_nothing(report_file: Path) -> None:
    before, stored_before = report_file.read_bytes(), stored_report_json(report_file)
    url = closed_port_url()
    result = runner.invoke(app, ["verify", str(report_file), "--judge", "llm",
                                 "--judge-url", url, "--judge-model", "judge-sim"])
    assert result.exit_code == 3, result.output
    assert_one_error_line(result.stderr, f"LLM server unreachable at {url}")
    assert report_file.read_bytes() == before
    assert stored_report_json(report_file) == stored_before


def test_an_unserved_judge_model_is_exit_2_naming_the_served_one(
    report_file: Path, start_simulator: Start
) -> None:
    before, stored_before = report_file.read_bytes(), stored_report_json(report_file)
    judge = start_simulator(simulate, model="judge-sim")
    result = runner.invoke(app, ["verify", str(report_file), "--judge", "llm",
                                 "--judge-url", judge.url, "--judge-model", "nosuch"])
    assert result.exit_code == 2, result.output
    assert_one_error_line(result.stderr, "model 'nosuch' is not served at",
                          "--judge-model judge-sim")
    assert judge.requests == []  # refused before any statement went to the judge
    assert report_file.read_bytes() == before
    assert stored_report_json(report_file) == stored_before


def test_a_judge_failing_part_way_fails_the_run_and_rewrites_nothing(
    report_file: Path, start_simulator: Start
) -> None:
    before, stored_before = report_file.read_bytes(), stored_report_json(report_file)
    judge = start_simulator(simulate, model="judge-sim", status_override=400)
    result = runner.invoke(app, ["verify", str(report_file), "--judge", "llm",
                                 "--judge-url", judge.url, "--judge-model", "judge-sim"])
    assert judge.rejections  # the health and model checks passed; judging itself failed
    assert result.exit_code == 3, result.output
    assert_one_error_line(result.stderr, "HTTP 400")
    assert report_file.read_bytes() == before
    assert stored_report_json(report_file) == stored_before


def test_verify_run_as_users_do_gives_one_line_and_exit_3(report_file: Path) -> None:
    before = report_file.read_bytes()
    url = closed_port_url()
    done = subprocess.run(
        [sys.executable, "-m", "rumination", "verify", str(report_file), "--judge", "llm",
         "--judge-url", url, "--judge-model", "judge-sim"],
        capture_output=True, text=True, timeout=60, env=dict(os.environ),
    )
    assert done.returncode == 3, done.stderr
    assert_one_error_line(done.stderr, f"LLM server unreachable at {url}")
    assert done.stdout == "" and report_file.read_bytes() == before
