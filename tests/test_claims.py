"""Job claims: two drivers never run the same job; a dead driver's job is taken over after
its lease and resumed. On both stores."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from conftest import StartSimulator, committed_turns

from rumination import Settings
from rumination.jobs.batch import Batch, JobResult
from rumination.jobs.files import Job
from rumination.reports.render import render_report
from rumination.store.claims import FINISHED, JobClaims
from rumination.store.run_store import RunStore
from rumination.testing import SimulatorConfig, SimulatorServer, simulate

JOBS = [f"job-{i}" for i in range(8)]


def claims(store_url: str, owner: str, jobs: list[str] = JOBS) -> JobClaims:
    made = JobClaims(RunStore(store_url), "/srv/out", owner, jobs)
    made.register(set(), {})
    return made


def test_two_owners_claiming_at_once_never_share_a_job(store_url: str) -> None:
    taken: dict[str, list[str]] = {"a": [], "b": []}

    def drain(owner: str) -> None:
        mine = claims(store_url, owner)  # each thread: its own connection, like a machine
        while (claim := mine.claim_next(lease_s=30)) is not None:
            taken[owner].append(claim.job)

    threads = [threading.Thread(target=drain, args=(owner,)) for owner in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(taken["a"] + taken["b"]) == sorted(JOBS)  # every job once, none twice


def test_an_expired_lease_is_taken_over_with_its_run(store_url: str) -> None:
    first, second = claims(store_url, "a", JOBS[:1]), claims(store_url, "b", JOBS[:1])
    claim = first.claim_next(lease_s=0.5)
    assert claim is not None and claim.run_id is None
    first.set_run(claim.job, "run-123")
    assert second.claim_next(lease_s=30) is None  # held
    assert first.renew(lease_s=0.5) == {claim.job}
    time.sleep(0.7)  # the first driver went silent
    taken = second.claim_next(lease_s=30)
    assert taken is not None and (taken.job, taken.run_id, taken.attempts) == (
        claim.job, "run-123", 2)  # fmt: skip
    assert first.renew(lease_s=30) == set()  # it lost the job...
    assert not first.finish(claim.job, FINISHED, {"job": claim.job})  # ...and cannot finish it
    assert second.finish(claim.job, FINISHED, {"job": claim.job, "run_id": "run-123"})
    assert second.counts() == {FINISHED: 1}


def test_released_jobs_are_free_at_once_and_failed_ones_run_again(store_url: str) -> None:
    first = claims(store_url, "a", JOBS[:2])
    one, two = first.claim_next(30), first.claim_next(30)
    assert one is not None and two is not None
    first.finish(one.job, "failed", {"job": one.job})
    first.release()  # Ctrl-C: the job in flight is pending again
    second = claims(store_url, "b", JOBS[:2])  # a re-run: the failed job is pending again
    assert sorted(c.job for c in [second.claim_next(30), second.claim_next(30)] if c) == [
        one.job, two.job]  # fmt: skip


def test_two_batch_drivers_on_one_jobs_file_split_the_jobs(
    tmp_path: Path, store_url: str, corpus_db: Path
) -> None:
    jobs = tmp_path / "jobs.jsonl"
    questions = [f"Otter question {i}?" for i in range(6)]
    jobs.write_text("".join(json.dumps({"question": q, "corpus": str(corpus_db)}) + "\n"
                            for q in questions), encoding="utf-8")  # fmt: skip
    out = tmp_path / "out"
    env = {**os.environ, "RUMINATION_STORE_URL": store_url}
    config = SimulatorConfig(model="sim", latency_per_token_s=0.002)
    with SimulatorServer(simulate, config) as server:
        args = [sys.executable, "-m", "rumination", "batch", str(jobs), "--out-dir", str(out),
                "--concurrency", "2", "--llm-url", server.url, "--model", "sim"]  # fmt: skip
        traces = [tmp_path / f"trace-{i}.jsonl" for i in range(2)]
        drivers = [subprocess.Popen([*args, "--trace", str(trace)], env=env, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                   for trace in traces]  # fmt: skip
        outputs = [d.communicate(timeout=120) for d in drivers]
    assert [d.returncode for d in drivers] == [0, 0], outputs
    store = RunStore(store_url)
    runs = store.list_runs(100)
    assert sorted(r.question for r in runs) == sorted(questions)  # each job ran exactly once
    for run in runs:
        assert run.status == FINISHED
        assert [t.index for t in store.turns(run.run_id)] == list(range(run.turns))
    started = [[json.loads(line) for line in trace.read_text(encoding="utf-8").splitlines()]
               for trace in traces]  # fmt: skip
    ran_here = [sum(e["event"] == "run_started" for e in events) for events in started]
    assert sum(ran_here) == len(questions) and min(ran_here) > 0, ran_here  # shared, not repeated
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert sorted(r["status"] for r in summary) == ["finished"] * 6  # the whole batch, either way


def test_a_driver_that_loses_its_claim_stops_the_job_and_resumes_it_later(
    tmp_path: Path, corpus_db: Path, start_simulator: StartSimulator
) -> None:
    server = start_simulator(simulate, model="sim", latency_per_token_s=0.004)
    store_path = tmp_path / "runs.db"
    settings = Settings(llm_url=server.url, model="sim", store_url=str(store_path),
                        corpus=str(corpus_db), job_lease_s=0.6, retries=0)  # fmt: skip
    batch = Batch([Job(question="How do otters help kelp?", name="otters")], tmp_path / "out",
                  settings, render_report)  # fmt: skip
    store = RunStore(store_path)

    async def scenario() -> list[JobResult]:
        running = asyncio.ensure_future(batch.run())
        while not running.done() and committed_turns(store_path) < 2:
            await asyncio.sleep(0.02)
        with store.db.transaction() as tx:  # as if this driver had stalled past its lease
            tx.execute("UPDATE job_claims SET owner = 'another-driver'")
        return await running

    [result] = asyncio.run(scenario())
    assert result.status == "finished"
    [run] = store.list_runs()  # the same run, stopped and resumed: not a second one
    assert run.status == FINISHED and run.run_id == result.run_id
    assert [t.index for t in store.turns(run.run_id)] == list(range(run.turns))
    assert store.db.query("SELECT attempts FROM job_claims")[0][0] == 2  # claimed again
