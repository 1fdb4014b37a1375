"""Output never lost: output places checked before any model call, a failed write at the
end recoverable from the run store, resume on another server, write-mode runs stored,
SIGTERM like Ctrl-C, batch re-runs keeping their figures."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import wait_for_turns
from typer.testing import CliRunner

from rumination.cli import app
from rumination.jobs import output
from rumination.store.run_store import RunStore
from rumination.testing import SimulatorConfig, SimulatorServer, simulate

runner = CliRunner()


def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


@pytest.fixture
def store_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "runs.db"
    monkeypatch.setenv("RUMINATION_RUN_STORE", str(path))
    monkeypatch.setenv("RUMINATION_RETRIES", "0")
    return path


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.mark.parametrize("place", ["folder", "under-a-file"])
def test_a_bad_out_is_refused_before_the_model_is_called(
    tmp_path: Path, corpus_db: Path, store_path: Path, place: str
) -> None:
    (tmp_path / "file.txt").write_text("x")
    out = tmp_path if place == "folder" else tmp_path / "file.txt" / "r.md"
    result = runner.invoke(app, ["research", "kelp?", "--llm-url", dead_url(),
                                 "--corpus", str(corpus_db), "--out", str(out)])
    assert result.exit_code == 2  # not 3: the (dead) server was never asked
    line = one_error_line(result.stderr)
    assert "--out" in line and str(out if place == "folder" else out.parent) in line
    assert not store_path.exists() or RunStore(store_path).list_runs() == []


def test_a_bad_out_dir_is_refused_before_the_model_is_called(
    tmp_path: Path, store_path: Path
) -> None:
    (tmp_path / "file.txt").write_text("x")
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text("- question: kelp?\n")
    result = runner.invoke(app, ["batch", str(jobs), "--out-dir", str(tmp_path / "file.txt" / "o"),
                                 "--llm-url", dead_url()])
    assert result.exit_code == 2
    assert "--out-dir" in one_error_line(result.stderr)


def test_an_unusable_run_store_is_refused_before_the_model_is_called(
    tmp_path: Path, corpus_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "file.txt").write_text("x")
    monkeypatch.setenv("RUMINATION_RUN_STORE", str(tmp_path / "file.txt" / "runs.db"))
    monkeypatch.setenv("RUMINATION_RETRIES", "0")
    result = runner.invoke(app, ["research", "kelp?", "--llm-url", dead_url(),
                                 "--corpus", str(corpus_db)])
    assert result.exit_code == 2
    assert "cannot open run store" in one_error_line(result.stderr)


def test_a_report_that_cannot_be_written_is_recovered_with_runs_export(
    tmp_path: Path, corpus_db: Path, store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "r.md"
    real_write = output.write_atomic

    def disk_full(path: Path, text: str) -> None:
        if path == out:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(path, text)

    monkeypatch.setattr(output, "write_atomic", disk_full)
    with SimulatorServer(simulate) as server:
        result = runner.invoke(app, ["research", "How do otters help kelp?", "--llm-url",
                                     server.url, "--model", "glm-z1-rumination-simulator",
                                     "--corpus", str(corpus_db), "--out", str(out)])
    assert result.exit_code == 2
    line = one_error_line(result.stderr)
    assert "No space left on device" in line and "rumination runs export" in line
    (run,) = RunStore(store_path).list_runs()
    assert run.status == "finished" and f"runs export {run.run_id} --report md" in line
    recovered = tmp_path / "recovered.md"
    export = runner.invoke(app, ["runs", "export", run.run_id, "--report", "md",
                                 "--out", str(recovered)])
    assert export.exit_code == 0, export.stderr
    text = recovered.read_text(encoding="utf-8")
    assert "## Sources" in text and run.run_id in text
    # without --report the export is JSON: a report's file name is refused, nothing written
    mistaken = tmp_path / "run.md"
    refused = runner.invoke(app, ["runs", "export", run.run_id, "--out", str(mistaken)])
    assert refused.exit_code == 2
    assert one_error_line(refused.stderr) == (
        f"error: --out {mistaken}: a run's export is JSON; for its report as md, add "
        "--report md")
    assert not mistaken.exists()


def test_resume_continues_on_the_server_given_now(
    tmp_path: Path, corpus_db: Path, store_path: Path
) -> None:
    interrupt_on_old_server(["research", "How do otters help kelp?", "--corpus",
                             str(corpus_db)], store_path)  # fmt: skip
    (run,) = RunStore(store_path).list_runs()
    assert run.status == "interrupted"
    moved = runner.invoke(app, ["runs", "resume", run.run_id])
    assert moved.exit_code == 3  # the stored server is gone
    with SimulatorServer(simulate, SimulatorConfig(model="new-name")) as new:
        result = runner.invoke(app, ["runs", "resume", run.run_id, "--llm-url", new.url,
                                     "--model", "new-name", "--format", "json"])
        assert result.exit_code == 0, result.stderr
        assert new.requests and json.loads(result.stdout)["model"] == "new-name"


def interrupt_on_old_server(arguments: list[str], store_path: Path) -> None:
    """Run `rumination ARGUMENTS` against a simulator named old-name that goes away after a
    Ctrl-C sent once two turns are committed."""
    slow = SimulatorConfig(model="old-name", latency_per_token_s=0.003)  # still running at ^C
    with SimulatorServer(simulate, slow) as old:
        env = {**os.environ, "RUMINATION_RUN_STORE": str(store_path)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "rumination", *arguments, "--llm-url", old.url,
             "--model", "old-name"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_turns(store_path, 2, proc)
            proc.send_signal(signal.SIGINT)
        finally:
            proc.wait(timeout=30)


def test_sigterm_is_handled_like_ctrl_c(tmp_path: Path, corpus_db: Path, store_path: Path) -> None:
    config = SimulatorConfig(latency_per_token_s=0.002)
    with SimulatorServer(simulate, config) as server:
        env = {**os.environ, "RUMINATION_RUN_STORE": str(store_path)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "rumination", "research", "How do otters help kelp?",
             "--llm-url", server.url, "--model", config.model, "--corpus", str(corpus_db)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        try:
            wait_for_turns(store_path, 1, proc)
            proc.terminate()
            _, stderr = proc.communicate(timeout=30)
        finally:
            proc.kill()
    (run,) = RunStore(store_path).list_runs()
    assert proc.returncode == 4, stderr
    assert run.status == "interrupted"
    assert f"rumination runs resume {run.run_id}" in stderr
    assert "error: interrupted" in stderr and "Traceback" not in stderr


def test_a_run_that_never_reached_a_turn_is_not_offered_for_resuming(
    corpus_db: Path, store_path: Path
) -> None:
    with SimulatorServer(simulate, SimulatorConfig(status_override=503)) as server:
        result = runner.invoke(app, ["research", "kelp?", "--llm-url", server.url, "--model",
                                     "glm-z1-rumination-simulator", "--corpus", str(corpus_db)])
    assert result.exit_code == 3, result.stderr
    assert "runs resume" not in result.stderr
    (run,) = RunStore(store_path).list_runs()
    assert run.status == "failed" and run.turns == 0


def test_write_mode_runs_are_stored(corpus_db: Path, store_path: Path) -> None:
    with SimulatorServer(simulate) as server:
        result = runner.invoke(app, ["research", "How do otters help kelp?", "--mode", "write",
                                     "--llm-url", server.url, "--model",
                                     "glm-z1-rumination-simulator", "--corpus", str(corpus_db),
                                     "--format", "json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    store = RunStore(store_path)
    record = store.get_run(report["run_id"])
    assert (record.mode, record.status, record.turns) == ("write", "finished", 1)
    stored = store.report(report["run_id"])
    assert stored is not None and stored.answer_markdown == report["answer_markdown"]
    assert [s.url for s in store.sources(report["run_id"])] == [
        s["url"] for s in report["sources"]]


def test_a_batch_re_run_keeps_each_jobs_figures(
    tmp_path: Path, corpus_db: Path, store_path: Path
) -> None:
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text("jobs:\n  - question: How do otters help kelp?\n    name: otters\n")
    out = tmp_path / "out"
    with SimulatorServer(simulate) as server:
        args = ["batch", str(jobs), "--out-dir", str(out), "--llm-url", server.url,
                "--model", "glm-z1-rumination-simulator", "--corpus", str(corpus_db)]
        first = runner.invoke(app, args)
        assert first.exit_code == 0, first.stderr
        before = json.loads((out / "summary.json").read_text())
        again = runner.invoke(app, args)
    assert again.exit_code == 0, again.stderr
    (job,) = json.loads((out / "summary.json").read_text())
    assert job["status"] == "skipped"
    assert before[0]["citations"] > 0 and before[0]["prompt_tokens"] > 0
    for figure in ("citations", "prompt_tokens", "completion_tokens", "seconds", "run_id"):
        assert job[figure] == before[0][figure], figure


def test_a_batch_re_run_resumes_on_the_server_given_now(
    tmp_path: Path, corpus_db: Path, store_path: Path
) -> None:
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text("- question: How do otters help kelp?\n  name: otters\n")
    out = tmp_path / "out"
    common = ["batch", str(jobs), "--out-dir", str(out), "--corpus", str(corpus_db)]
    interrupt_on_old_server(common, store_path)
    (run,) = RunStore(store_path).list_runs()
    assert run.status == "interrupted"
    with SimulatorServer(simulate, SimulatorConfig(model="new-name")) as new:
        result = runner.invoke(app, [*common, "--llm-url", new.url, "--model", "new-name"])
        assert result.exit_code == 0, result.stderr
        assert len(new.requests[0]["messages"]) > 2  # continued, not restarted
    (job,) = json.loads((out / "summary.json").read_text())
    assert (job["status"], job["run_id"]) == ("finished", run.run_id)


def test_a_schedule_whose_out_dir_cannot_be_written_is_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "jobs.yaml").write_text("- question: kelp?\n")
    schedules = tmp_path / "schedules.yaml"
    schedules.write_text("schedules:\n  - name: weekly\n    cron: '@daily'\n    jobs: jobs.yaml\n"
                         "    out_dir: file.txt/reports\n")
    result = runner.invoke(app, ["schedule", str(schedules)])
    assert result.exit_code == 2
    assert "out_dir of schedule 'weekly'" in one_error_line(result.stderr)
