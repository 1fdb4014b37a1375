"""Batch jobs: jobs-file errors, concurrency, idempotent re-runs, a SIGKILL mid-batch."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
from conftest import SigkillAfterTurns
from typer.testing import CliRunner

from rumination.cli import app
from rumination.store.run_store import RunStore
from rumination.testing import SimulatorConfig, SimulatorServer, simulate

runner = CliRunner()
QUESTIONS = ["How do otters help kelp?", "What are urchin barrens?", "Why were otters hunted?"]


def write_jobs(path: Path, corpus_db: Path, extra: list[dict[str, object]] | None = None) -> Path:
    jobs = [{"question": q, "corpus": str(corpus_db)} for q in QUESTIONS] + (extra or [])
    path.write_text("\n".join(json.dumps(j) for j in jobs) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("name", "text", "needle"),
    [
        ("jobs.yaml", "- question: ok\n- [unclosed\n", "jobs.yaml:3: invalid YAML"),
        ("jobs.yaml", "- question: ok\n- name: x\n", "job 2: field `question`: Field required"),
        ("jobs.yaml", "- question: ok\n  colour: red\n", "job 1: field `colour`"),
        ("jobs.yaml", "question: not a list\n", "expected a list of jobs"),
        ("jobs.jsonl", '{"question": "a"}\n{"question": \n', "jobs.jsonl:2: invalid JSON"),
        ("jobs.jsonl", '{"question": "a", "max_turns": 0}\n', "jobs.jsonl:1: field `max_turns`"),
        (
            "jobs.jsonl",
            '{"question": "a", "name": "x"}\n{"question": "b", "name": "x"}\n',
            "share the output name 'x'",
        ),
    ],
)
def test_bad_jobs_files_give_one_line_and_exit_2(
    tmp_path: Path, name: str, text: str, needle: str
) -> None:
    jobs = tmp_path / name
    jobs.write_text(text, encoding="utf-8")
    result = runner.invoke(app, ["batch", str(jobs), "--out-dir", str(tmp_path / "out")])
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], result.stderr
    assert not (tmp_path / "out").exists()


def test_batch_runs_every_job_and_a_rerun_skips_them(tmp_path: Path, corpus_db: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", corpus_db)
    out = tmp_path / "out"
    with SimulatorServer(simulate, SimulatorConfig(model="sim")) as server:
        args = [
            "batch",
            str(jobs),
            "--out-dir",
            str(out),
            "--concurrency",
            "2",
            "--llm-url",
            server.url,
            "--model",
            "sim",
            "--format",
            "json",
        ]
        first = runner.invoke(app, args)
        assert first.exit_code == 0, first.stderr
        served = len(server.requests)
        second = runner.invoke(app, args)
    assert second.exit_code == 0
    assert len(server.requests) == served  # nothing was asked of the model again
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert [r["status"] for r in summary] == ["skipped"] * 3
    reports = sorted(out.glob("*.json"))
    assert len([p for p in reports if p.name not in ("summary.json", "batch-state.json")]) == 3
    for record in json.loads((out / "batch-state.json").read_text(encoding="utf-8")).values():
        report = json.loads(Path(record["output"]).read_text(encoding="utf-8"))
        assert report["run_id"] == record["run_id"] and report["citations"]


def test_one_failing_job_does_not_stop_the_others(tmp_path: Path, corpus_db: Path) -> None:
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        corpus_db,
        [{"question": "broken", "corpus": str(tmp_path / "missing.db")}],
    )
    with SimulatorServer(simulate, SimulatorConfig(model="sim")) as server:
        result = runner.invoke(
            app,
            [
                "batch",
                str(jobs),
                "--out-dir",
                str(tmp_path / "out"),
                "--llm-url",
                server.url,
                "--model",
                "sim",
            ],
        )
    assert result.exit_code == 1
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert sorted(r["status"] for r in summary) == ["failed", "finished", "finished", "finished"]
    assert "corpus not found" in next(r["error"] for r in summary if r["status"] == "failed")


def test_sigkill_mid_batch_then_rerun_finishes_every_job(
    tmp_path: Path,
    store_url: str,
    corpus_db: Path,
    sigkill_after_turns: SigkillAfterTurns,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", corpus_db)
    out, store_path = tmp_path / "out", store_url
    env = {**os.environ, "RUMINATION_STORE_URL": store_path, "RUMINATION_JOB_LEASE_S": "1"}
    config = SimulatorConfig(model="sim", latency_per_token_s=0.003)
    args = [
        "batch",
        str(jobs),
        "--out-dir",
        str(out),
        "--concurrency",
        "3",
        "--model",
        "sim",
        "--format",
        "json",
    ]
    with SimulatorServer(simulate, config) as server:
        sigkill_after_turns([*args, "--llm-url", server.url], env, store_path, 6)
        store = RunStore(store_path)
        before = {
            r.run_id: [(s.source_id, s.url) for s in store.sources(r.run_id)]
            for r in store.list_runs()
        }
        monkeypatch.setenv("RUMINATION_STORE_URL", store_path)
        monkeypatch.setenv("RUMINATION_JOB_LEASE_S", "1")  # the killed driver's claims expire
        # (a one-second lease for both drivers: the re-run takes the jobs over within a second)
        rerun = runner.invoke(app, [*args, "--llm-url", server.url])
    assert rerun.exit_code == 0, rerun.stderr
    state = json.loads((out / "batch-state.json").read_text(encoding="utf-8"))
    assert sorted(v["status"] for v in state.values()) == ["finished"] * 3
    for run_id, kept in before.items():  # interrupted runs were resumed, not restarted
        if run_id in {v["run_id"] for v in state.values()}:
            turns = store.turns(run_id)
            assert [t.index for t in turns] == list(range(len(turns)))
            assert [(s.source_id, s.url) for s in store.sources(run_id)][: len(kept)] == kept
    assert {v["run_id"] for v in state.values()} >= set(before)  # no run was abandoned
    assert len(store.list_runs(100)) == 3  # and none started twice


def test_a_write_mode_job_runs_in_write_mode(tmp_path: Path, corpus_db: Path) -> None:
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(
        json.dumps(
            {
                "question": "How do otters help kelp?",
                "mode": "write",
                "corpus": str(corpus_db),
                "name": "w",
            }
        )
        + "\n",
        encoding="utf-8",
    )
    with SimulatorServer(simulate, SimulatorConfig(model="sim")) as server:
        result = runner.invoke(
            app,
            [
                "batch",
                str(jobs),
                "--out-dir",
                str(tmp_path / "out"),
                "--llm-url",
                server.url,
                "--model",
                "sim",
                "--format",
                "json",
            ],
        )
    assert result.exit_code == 0, result.stderr
    report = json.loads((tmp_path / "out" / "w.json").read_text(encoding="utf-8"))
    assert report["mode"] == "write" and report["citations"]


def test_batch_spreads_over_two_endpoints_and_survives_one_dying(
    tmp_path: Path, corpus_db: Path
) -> None:
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        corpus_db,
        # runs pick their endpoint from their random id: 16 jobs leave each server without
        # a run once in 2**15 batches
        [{"question": f"Otter question {i}?", "corpus": str(corpus_db)} for i in range(13)],
    )
    config = SimulatorConfig(model="sim", latency_per_token_s=0.001)
    with SimulatorServer(simulate, config) as steady:
        doomed = SimulatorServer(simulate, config).start()

        def kill_after_a_while() -> None:
            while len(doomed.requests) < 5:
                time.sleep(0.01)
            doomed.stop()

        killer = threading.Thread(target=kill_after_a_while, daemon=True)
        killer.start()
        result = runner.invoke(
            app,
            [
                "batch",
                str(jobs),
                "--out-dir",
                str(tmp_path / "out"),
                "--concurrency",
                "4",
                "--llm-url",
                doomed.url,
                "--llm-url",
                steady.url,
                "--model",
                "sim",
            ],
        )
        killer.join(timeout=10)
    assert result.exit_code == 0, result.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert [r["status"] for r in summary] == ["finished"] * 16
    assert len(doomed.requests) >= 5 and len(steady.requests) > 0
