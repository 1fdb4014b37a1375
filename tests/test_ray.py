"""The Ray executor on a local Ray (2 CPUs, no dashboard): the same reports as the local
executor, and a worker killed mid-job costs no job and repeats no committed turn."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import StartSimulator
from typer.testing import CliRunner

from rumination import Settings
from rumination.cli import app
from rumination.jobs.batch import Batch
from rumination.jobs.executors import LocalExecutor, RayExecutor
from rumination.jobs.files import Job
from rumination.reports.render import render_report
from rumination.store.run_store import RunStore
from rumination.testing import simulate


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    try:
        import ray
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("Ray is missing in CI: .ci/run installs rumination[ray]")
        pytest.skip("Ray is not installed (pip install 'rumination[ray]')")
    # address="local": a fresh instance even when a cluster started by `ray start` is running
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             _node_ip_address="127.0.0.1")  # fmt: skip
    yield ray
    ray.shutdown()


def jobs_for(corpus_db: Path, count: int) -> list[Job]:
    return [Job(question=f"How do otters help kelp, take {i}?", corpus=str(corpus_db),
                name=f"job{i}") for i in range(count)]  # fmt: skip


def settings_for(urls: list[str], store: Path) -> Settings:
    return Settings(llm_url=urls, model="sim", store_url=str(store), format="json",
                    retries=0, job_lease_s=5)  # fmt: skip


def reports_in(folder: Path) -> dict[str, tuple[Any, ...]]:
    """Each report without what differs between runs (run id, timings)."""
    found = {}
    for path in sorted(folder.glob("job*.json")):
        report = json.loads(path.read_text(encoding="utf-8"))
        found[path.stem] = (report["answer_markdown"], report["turns"],
                            [(s["source_id"], s["url"]) for s in report["sources"]],
                            [c["source_id"] for c in report["citations"]])  # fmt: skip
    return found


def test_a_worker_that_cannot_start_stops_the_batch_with_its_cause(tmp_path: Path) -> None:
    """The original failure: the driver's folder holds a `rumination` package that Ray puts
    on its workers' path, so every worker dies importing it. One line naming the error, exit
    2, before any job is sent (no "worker lost", no retries). First in this file, before the
    module's own Ray starts: this one starts a Ray of its own in the CLI's process."""
    pytest.importorskip("ray")
    driver_folder = tmp_path / "clone"
    (driver_folder / "rumination").mkdir(parents=True)
    (driver_folder / "rumination" / "__init__.py").write_text(
        'raise ImportError("this rumination is broken on purpose")\n', encoding="utf-8")
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("".join(f'{{"question": "q{i}", "name": "job{i}"}}\n' for i in range(3)),
                    encoding="utf-8")  # fmt: skip
    env = {**os.environ, "RAY_ADDRESS": "local", "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_CACHE_HOME": str(tmp_path / "cache")}  # fmt: skip
    command = [str(Path(sys.executable).with_name("rumination")), "batch", str(jobs),
               "--out-dir", str(tmp_path / "out"), "--executor", "ray", "--workers", "2",
               "--llm-url", "http://127.0.0.1:9", "--model", "sim"]  # fmt: skip
    done = subprocess.run(command, cwd=driver_folder, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: a Ray worker could not start: "
                      "ImportError: this rumination is broken on purpose"], done.stderr
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "worker lost" not in done.stderr
    assert done.stdout == ""  # no job was reported, failed or otherwise
    assert not list((tmp_path / "out").glob("job*"))


def test_ray_and_local_executors_write_the_same_reports(
    local_ray: Any, tmp_path: Path, corpus_db: Path, start_simulator: StartSimulator
) -> None:
    servers = [start_simulator(simulate, model="sim") for _ in range(2)]
    settings = settings_for([s.url for s in servers], tmp_path / "runs.db")
    jobs = jobs_for(corpus_db, 6)
    on_ray = Batch(jobs, tmp_path / "ray", settings, render_report,
                   executor=RayExecutor(workers=2, concurrency=2))  # fmt: skip
    results = asyncio.run(on_ray.run())
    assert [r.status for r in results] == ["finished"] * 6
    local = Batch(jobs, tmp_path / "local", settings, render_report,
                  executor=LocalExecutor(concurrency=4))  # fmt: skip
    asyncio.run(local.run())
    assert reports_in(tmp_path / "ray") == reports_in(tmp_path / "local")
    assert len(reports_in(tmp_path / "ray")) == 6
    assert all(server.requests for server in servers)  # runs spread over both endpoints


def test_a_worker_killed_mid_job_costs_no_job_and_repeats_no_turn(
    local_ray: Any, tmp_path: Path, corpus_db: Path, start_simulator: StartSimulator
) -> None:
    server = start_simulator(simulate, model="sim", latency_per_token_s=0.004)
    store_path = tmp_path / "runs.db"
    settings = settings_for([server.url], store_path)
    executor = RayExecutor(workers=2, concurrency=2)
    warnings: list[str] = []
    batch = Batch(jobs_for(corpus_db, 4), tmp_path / "out", settings, render_report,
                  executor=executor, on_event=lambda e: warnings.append(e.data.get("message", ""))
                  if e.kind == "warning" else None)  # fmt: skip
    store = RunStore(store_path)
    snapshot: dict[str, list[str]] = {}

    async def scenario() -> list[Any]:
        running = asyncio.ensure_future(batch.run())
        while not running.done():
            await asyncio.sleep(0.05)
            runs = store.list_runs() if store_path.exists() else []
            if runs and sum(r.turns for r in runs) >= 4:
                break
        assert not running.done(), "the batch ended before a worker could be killed"
        snapshot.update({r.run_id: [t.assistant_text for t in store.turns(r.run_id)]
                         for r in store.list_runs()})  # fmt: skip
        busiest = max(executor.in_flight, key=executor.in_flight.__getitem__)
        assert executor.in_flight[busiest] > 0
        os.kill((await executor.worker_pids())[busiest], signal.SIGKILL)
        return await running

    results = asyncio.run(scenario())
    assert [r.status for r in results] == ["finished"] * 4, [r.error for r in results]
    assert any(w.startswith("worker lost") for w in warnings), warnings  # a job was sent again
    runs = store.list_runs(100)
    assert len(runs) == 4 and all(r.status == "finished" for r in runs)  # none started twice
    for run_id, before in snapshot.items():  # resumed from the last committed turn
        after = [t.assistant_text for t in store.turns(run_id)]
        assert after[: len(before)] == before
        assert [t.index for t in store.turns(run_id)] == list(range(len(after)))
    requests = len(server.requests)
    answered = sum(r.turns + 1 for r in runs)  # each turn, and each final answer
    assert requests - answered <= 2  # at most the killed worker's requests in flight were lost


def test_a_missing_ray_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import builtins

    real_import = builtins.__import__

    def no_ray(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"question": "q"}\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["batch", str(jobs), "--out-dir", str(tmp_path / "o"),
                                      "--executor", "ray"])  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr == "error: --executor ray needs Ray: pip install 'rumination[ray]'\n"


def test_ray_workers_send_the_same_progress_as_local(
    local_ray: Any, tmp_path: Path, corpus_db: Path, start_simulator: StartSimulator
) -> None:
    server = start_simulator(simulate, model="sim")
    settings = settings_for([server.url], tmp_path / "runs.db")
    jobs = jobs_for(corpus_db, 3)
    seen: dict[str, list[tuple[str, str]]] = {"ray": [], "local": []}

    def recorder(where: str) -> Any:
        return lambda event: seen[where].append((event.data.get("job", ""), event.kind))

    ray_batch = Batch(jobs, tmp_path / "ray", settings, render_report,
                      executor=RayExecutor(workers=2, concurrency=2), on_event=recorder("ray"))
    asyncio.run(ray_batch.run())
    local = Batch(jobs, tmp_path / "local", settings, render_report,
                  executor=LocalExecutor(concurrency=2), on_event=recorder("local"))
    asyncio.run(local.run())

    def per_job(where: str) -> dict[str, list[str]]:
        kinds: dict[str, list[str]] = {}
        for job, kind in seen[where]:
            if kind not in ("answer_delta", "model_answered"):  # timings differ, deltas unsent
                kinds.setdefault(job, []).append(kind)
        return kinds

    assert per_job("ray") == per_job("local")
    assert sorted(per_job("ray")) == ["job0", "job1", "job2"]
    assert all(kinds[0] == "run_started" and kinds[-1] == "finished"
               for kinds in per_job("ray").values())
