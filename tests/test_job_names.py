"""A job's `name` is a file name inside the output folder, never a path: batch, schedule and
eval refuse one that would write elsewhere (one line naming the file's line, exit 2, nothing
written), and the API takes no name at all."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from servicekit import running_api, service_settings, simulator
from typer.testing import CliRunner

from rumination.cli import app
from rumination.jobs.files import MAX_NAME_BYTES, Job
from rumination.testing import SimulatorServer, simulate

runner = CliRunner()
Start = Callable[..., SimulatorServer]

UNSAFE = {
    "../../escape": "contains a path separator",
    "..": "is '.' or '..'",
    ".": "is '.' or '..'",
    "": "is empty",
    "a\\b": "contains a path separator",
    "tab\there": "contains a control character",
    "nul\x00": "contains a control character",
    "x" * (MAX_NAME_BYTES + 1): f"is longer than {MAX_NAME_BYTES} bytes",
    "summary": "the batch's own summary or state file",
    "Batch-State": "the batch's own summary or state file",
}


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def one_error(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


@pytest.mark.parametrize(("name", "why"), UNSAFE.items())
def test_a_name_that_is_no_plain_file_name_is_refused(name: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        Job(question="q", name=name)


def test_plain_names_pass() -> None:
    for name in ("cold-climate", "a..b", "Q3 report", "été", "x" * MAX_NAME_BYTES):
        assert Job(question="q", name=name).key() == name


@pytest.mark.parametrize("form", ["list", "mapping"])
def test_batch_yaml_names_the_line_and_writes_nothing(tmp_path: Path, form: str) -> None:
    outside = tmp_path / "escape"
    head = "jobs:\n  " if form == "mapping" else ""
    indent = "  " if form == "mapping" else ""
    text = (f"{head}- question: fine\n{indent}- question: where does it go?\n"
            f"{indent}  name: {outside}\n")
    jobs = tmp_path / "work" / "jobs.yaml"
    jobs.parent.mkdir()
    jobs.write_text(text, encoding="utf-8")
    before = files_under(tmp_path)
    result = runner.invoke(app, ["batch", str(jobs), "--out-dir", str(tmp_path / "work/out")])
    assert result.exit_code == 2
    line = 3 if form == "mapping" else 2
    error = one_error(result.stderr)
    assert f"jobs.yaml:{line}: job 2: field `name`: '{str(outside)[:40]}" in error
    assert error.endswith("is not a plain file name: it contains a path separator (/ or \\)")
    assert files_under(tmp_path) == before and not (tmp_path / "work/out").exists()


@pytest.mark.parametrize("name", ["../../escape", "..", "nul\x00"])
def test_batch_jsonl_names_the_line_and_writes_nothing(tmp_path: Path, name: str) -> None:
    jobs = tmp_path / "work" / "jobs.jsonl"
    jobs.parent.mkdir()
    rows = [{"question": "fine"}, {"question": "where does it go?", "name": name}]
    jobs.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    before = files_under(tmp_path)
    result = runner.invoke(app, ["batch", str(jobs), "--out-dir", str(tmp_path / "work/out")])
    assert result.exit_code == 2
    assert f"jobs.jsonl:2: field `name`: {name!r} is not a plain file name: it {UNSAFE[name]}" \
        in one_error(result.stderr)
    assert files_under(tmp_path) == before


def test_schedule_refuses_a_jobs_file_with_an_unsafe_name_at_start(tmp_path: Path) -> None:
    (tmp_path / "jobs.yaml").write_text("- question: weekly news\n  name: ../../escape\n",
                                        encoding="utf-8")
    schedules = tmp_path / "schedules.yaml"
    schedules.write_text("schedules:\n  - name: weekly\n    cron: '0 6 * * MON'\n"
                         "    jobs: jobs.yaml\n    out_dir: out\n", encoding="utf-8")
    before = files_under(tmp_path)
    result = runner.invoke(app, ["schedule", str(schedules)])
    assert result.exit_code == 2
    assert "jobs.yaml:1: job 1: field `name`: '../../escape' is not a plain file name" \
        in one_error(result.stderr)
    assert files_under(tmp_path) == before


def test_eval_refuses_an_id_that_names_no_report_file(tmp_path: Path) -> None:
    suite = tmp_path / "suite.jsonl"
    suite.write_text('{"id": "a", "question": "q"}\n{"id": "..", "question": "r"}\n',
                     encoding="utf-8")
    result = runner.invoke(app, ["eval", str(suite), "--out-dir", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "suite.jsonl:2: field `id`: '..' is not a plain file name" in one_error(result.stderr)
    assert not (tmp_path / "out").exists()


def test_eval_ids_with_separators_stay_inside_the_out_dir(
    start_simulator: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUMINATION_RUN_STORE", str(tmp_path / "state" / "runs.db"))
    server = start_simulator(simulate, model="sim")
    work = tmp_path / "work"
    work.mkdir()
    suite = work / "suite.jsonl"
    suite.write_text('{"id": "../../escape", "question": "How do otters help kelp?"}\n',
                     encoding="utf-8")
    out = work / "out"
    result = runner.invoke(app, ["eval", str(suite), "--out-dir", str(out), "--llm-url",
                                 server.url, "--model", "sim", "--max-turns", "2"])
    assert result.exit_code == 0, result.stderr
    assert (out / "reports" / "..-..-escape.md").is_file()
    written = files_under(tmp_path) - files_under(tmp_path / "state")
    assert written == {suite} | files_under(out)


def test_the_api_takes_no_name(tmp_path: Path) -> None:
    with simulator() as llm, running_api(service_settings(tmp_path, llm.url)) as url, \
            httpx.Client(base_url=url) as client:
        reply = client.post("/runs", json={"question": "q", "name": "../../escape"})
        listed = client.get("/runs").json()["runs"]
    assert reply.status_code == 422
    assert reply.json()["error"] == "body.name: Extra inputs are not permitted"
    assert listed == [] and not (tmp_path / "escape.md").exists()
