"""Scale-out figures, measured side by side in one run on this machine.

1. Throughput: the same jobs against 4 simulated endpoints (per-token latency, continuous
   batching slowdown), once with the local executor at concurrency 64, once with the Ray
   executor at 2 workers x 32 (a local Ray on this machine). jobs/s and their ratio.
2. The cost of one committed turn (RunStore.save_turn, the call the loop makes after every
   turn) on SQLite and on PostgreSQL (a local server, default durability: fsync on).
3. A paper estimate from those costs: how many concurrent runs one driver and one store hold.

One machine cannot show a cluster speed-up: both executors share its cores with the
simulators, and Ray adds its own processes. What the ratio shows is one process (the local
executor: driver, runs and the in-process simulators share one interpreter) against two
worker processes on the same two cores, Ray's own overhead included.

    python bench/scale.py [--jobs 200] [--ms-per-token 0.5] [--turns 300]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from rumination.jobs.batch import Batch
from rumination.jobs.executors import Executor, LocalExecutor, RayExecutor
from rumination.jobs.files import Job
from rumination.models import Source, ToolCall, Turn, Usage
from rumination.reports.render import render_report
from rumination.search_backends.local import demo_corpus_path
from rumination.settings import Settings
from rumination.store.run_store import RunStore
from rumination.testing import SimulatorConfig, SimulatorServer, simulate
from rumination.testing.postgres import LocalPostgres

TOPICS = ["cold climates", "running costs", "refrigerants", "noise", "grid peaks", "sizing"]
TURN_SECONDS_AT_25MS = 1000 * 0.025  # a 1000-token turn at a realistic 25 ms/token


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (user + system)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def run_batch(executor: Executor, urls: list[str], jobs: int, workdir: Path, name: str
              ) -> tuple[float, int, float]:  # fmt: skip
    """jobs/s, turns committed, and driver CPU seconds per turn."""
    settings = Settings(llm_url=urls, model="sim", corpus=str(demo_corpus_path()),
                        store_url=str(workdir / f"runs-{name}.db"), retries=2)  # fmt: skip
    questions = [f"What matters about heat pump {TOPICS[i % len(TOPICS)]}? (job {i})"
                 for i in range(jobs)]  # fmt: skip
    batch = Batch([Job(question=q) for q in questions], workdir / f"out-{name}", settings,
                  render_report, executor=executor)  # fmt: skip
    cpu, started = cpu_seconds(), time.perf_counter()
    results = asyncio.run(batch.run())
    elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    failed = [r.error for r in results if r.status != "finished"]
    assert not failed, failed[:3]
    store = RunStore(workdir / f"runs-{name}.db")
    turns = sum(r.turns for r in store.list_runs(jobs + 10))
    store.close()
    return jobs / elapsed, turns, cpu / turns


def sample_turn(index: int) -> tuple[Turn, list[Source]]:
    observation = ("【3†Heat pumps in cold climates†https://example.org/a】\n" + "word " * 1200)
    turn = Turn(index=index, assistant_text="<think>" + "reasoning " * 300 + "</think>"
                '{"name": "search", "arguments": {"query": "heat pump"}}',
                thinking="reasoning " * 300, tool_call=ToolCall(name="search", arguments={
                    "query": "heat pump"}), observation=observation,
                usage=Usage(prompt_tokens=9000, completion_tokens=400),
                model_seconds=10.0, tool_seconds=0.2)  # fmt: skip
    count = min(40, 4 * (index + 1))  # the registry grows as the run searches
    sources = [Source(source_id=i, url=f"https://example.org/{i}", title=f"Source {i}",
                      snippet="snippet " * 30) for i in range(count)]  # fmt: skip
    return turn, sources


def commit_cost(store: RunStore, turns: int) -> float:
    """Median seconds per save_turn over `turns` turns of 10-turn runs."""
    times = []
    for n in range(turns):
        run_id = f"bench{n // 10}"
        if n % 10 == 0:
            store.create_run(run_id, "q", "sim", "local", "rumination", "{}")
        turn, sources = sample_turn(n % 10)
        started = time.perf_counter()
        store.save_turn(run_id, turn, sources)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--ms-per-token", type=float, default=0.5)
    parser.add_argument("--slowdown", type=float, default=0.01)
    parser.add_argument("--turns", type=int, default=300, help="commits timed per store")
    args = parser.parse_args()
    config = SimulatorConfig(model="sim", latency_per_token_s=args.ms_per_token / 1000,
                             batch_slowdown=args.slowdown)  # fmt: skip
    import ray

    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        servers = [stack.enter_context(SimulatorServer(simulate, config)) for _ in range(4)]
        urls = [s.url for s in servers]
        print(f"{args.jobs} jobs, 4 simulated endpoints at {args.ms_per_token} ms/token")
        local, local_turns, local_cpu = run_batch(LocalExecutor(64), urls, args.jobs, workdir,
                                                  "local")  # fmt: skip
        print(f"  local executor, concurrency 64:  {local:6.2f} jobs/s  ({local_turns} turns, "
              f"driver CPU {local_cpu * 1000:.1f} ms/turn incl. the simulators)", flush=True)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 _node_ip_address="127.0.0.1")  # fmt: skip
        try:
            on_ray, ray_turns, _ = run_batch(RayExecutor(workers=2, concurrency=32), urls,
                                             args.jobs, workdir, "ray")  # fmt: skip
        finally:
            ray.shutdown()
        print(f"  ray executor, 2 workers x 32:    {on_ray:6.2f} jobs/s  ({ray_turns} turns)")
        print(f"  ray / local: {on_ray / local:.2f}x (one 2-core machine: two worker processes "
              "against one; no cluster speed-up can show here)", flush=True)

        sqlite_store = RunStore(workdir / "commit.db")
        sqlite_s = commit_cost(sqlite_store, args.turns)
        sqlite_store.close()
        with LocalPostgres() as pg:
            pg_store = RunStore(pg.create_database())
            pg_s = commit_cost(pg_store, args.turns)
            pg_store.close()
        print(f"per committed turn (median of {args.turns}; ~7 KB turn, up to 40 sources):")
        print(f"  SQLite (WAL):           {sqlite_s * 1000:6.2f} ms")
        print(f"  PostgreSQL (loopback):  {pg_s * 1000:6.2f} ms   ({pg_s / sqlite_s:.2f}x SQLite)")

        turn_s = TURN_SECONDS_AT_25MS
        print(f"paper estimate, turns of {turn_s:.0f} s (1000 tokens at 25 ms/token):")
        for name, cost in (("SQLite", sqlite_s), ("PostgreSQL", pg_s)):
            print(f"  one {name} store, commits back to back: {1 / cost:7.0f} turns/s"
                  f" = {turn_s / cost:8.0f} concurrent runs")
        print(f"  one driver core at {local_cpu * 1000:.1f} ms CPU/turn: "
              f"{turn_s / local_cpu:8.0f} concurrent runs (a lower bound: the CPU figure "
              "includes the simulators')")


if __name__ == "__main__":
    main()
