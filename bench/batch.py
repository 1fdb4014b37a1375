"""Batch throughput against a continuous-batching simulator in a process of its own, and
memory per concurrent run.

Every generated token costs `--ms-per-token`, slowed by the slowdown per extra request in
flight (vLLM's continuous batching: per-request latency grows slowly with concurrency). The
simulator runs in its own process (bench/simproc.py), so its CPU is not billed to the harness.
The same kind of job (`simulate`: three searches, nine clicks, a cited answer) runs at
concurrency 1, 8, 32 and 128, `--waves` times as many jobs as the concurrency (at least 3);
the table shows jobs/s, the ratio to concurrency 1, the ceiling the simulator allows,
c / (1 + slowdown * (c - 1)) (the ratio if the harness cost nothing), and the share of that
ceiling reached (target: at least 0.95 at 32).

Each `--slowdown` given is one table; the default is two: 0 (a server that never slows, so
the ratio measures the harness alone: targets >= 7x at 8 and >= 20x at 32) and 0.02 (a
continuous-batching model, whose ceiling at 32 is 19.75x).

Memory: `--memory-runs` runs (default 32) at once, each reading long documents until its
conversation fills a 131072-token window (compaction keeps it under), at 0 ms/token; the peak
RSS of this process above its level before the batch, divided by the runs.

    python bench/batch.py [--ms-per-token 25] [--slowdown 0 --slowdown 0.02] [--waves 2]
                          [--concurrency 1 --concurrency 128] [--single-pool | --shard-size N]
                          [--memory-runs 32]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
from pathlib import Path

from simproc import fixed, simulator_process

import rumination.llm.client as llm_client
from rumination.jobs.batch import Batch
from rumination.jobs.files import Job
from rumination.reports.render import render_report
from rumination.search_backends.local import demo_corpus_path
from rumination.settings import Settings
from rumination.testing import SimulatorConfig, simulate
from rumination.testing.simulator import long_corpus, long_reader

TOPICS = [
    "cold climates",
    "running costs",
    "refrigerants",
    "noise",
    "grid peaks",
    "history",
    "sizing",
    "hybrid systems",
]
CONCURRENCIES = (1, 8, 32, 128)
LONG_RUN_CALLS = 40
LONG_WINDOW = 131072


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class PeakRSS:
    """Samples this process's RSS every 20 ms while in use; `peak` is the highest seen."""

    def __init__(self) -> None:
        self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def run_batch(jobs: list[Job], settings: Settings, out: Path, concurrency: int) -> float:
    """Seconds to run `jobs`; every job must finish."""
    batch = Batch(jobs, out, settings, render_report, concurrency=concurrency)
    started = time.perf_counter()
    results = asyncio.run(batch.run())
    elapsed = time.perf_counter() - started
    assert all(r.status == "finished" for r in results), [r.error for r in results]
    return elapsed


def throughput(concurrency: int, jobs: int, config: SimulatorConfig,
               workdir: Path) -> tuple[float, float]:
    """(jobs/s, this process's CPU seconds per job): the CPU figure hardly moves with the
    machine's load, so it compares versions measured at different times."""
    questions = [
        f"What matters about heat pump {TOPICS[i % len(TOPICS)]}? (job {i})" for i in range(jobs)
    ]
    with simulator_process(fixed, (simulate,), config) as sim:
        settings = Settings(llm_url=sim.url, model=config.model, corpus=str(demo_corpus_path()),
                            run_store=str(workdir / f"runs-{concurrency}.db"))
        cpu_before = time.process_time()
        elapsed = run_batch([Job(question=q) for q in questions], settings,
                            workdir / f"out-{concurrency}", concurrency)
        cpu = time.process_time() - cpu_before
    return jobs / elapsed, cpu / jobs


def memory_per_run(runs: int, workdir: Path) -> tuple[float, float, float]:
    """(MiB per run, peak MiB above the start, seconds) for `runs` long runs at once."""
    corpus = long_corpus(workdir / "long", docs=12, words=6000)
    config = SimulatorConfig(model="sim", max_model_len=LONG_WINDOW)
    with simulator_process(long_reader, (LONG_RUN_CALLS,), config) as sim:
        settings = Settings(llm_url=sim.url, model="sim", corpus=str(corpus),
                            max_turns=LONG_RUN_CALLS + 5, answer_max_tokens=1024,
                            run_store=str(workdir / "runs-memory.db"))
        jobs = [Job(question=f"glacier moraine (run {i})") for i in range(runs)]
        before = rss_bytes()
        with PeakRSS() as rss:
            elapsed = run_batch(jobs, settings, workdir / "out-memory", runs)
    above = (rss.peak - before) / 2**20
    return above / runs, above, elapsed


def throughput_table(ms_per_token: float, slowdown: float, waves: int,
                     concurrencies: list[int], workdir: Path) -> None:
    config = SimulatorConfig(model="sim", latency_per_token_s=ms_per_token / 1000,
                             batch_slowdown=slowdown)
    print(f"simulator in its own process: {ms_per_token:g} ms/token, "
          f"+{100 * slowdown:g}% per extra request in flight")
    workdir.mkdir()
    base = None
    print(f"{'concurrency':>11} {'jobs':>5} {'jobs/s':>8} {'ratio':>7} {'ceiling':>8} "
          f"{'of ceiling':>10} {'CPU ms/job':>10}")
    for concurrency in concurrencies:
        jobs = max(3, waves * concurrency)
        rate, cpu_per_job = throughput(concurrency, jobs, config, workdir)
        base = base or rate
        ceiling = concurrency / (1 + slowdown * (concurrency - 1))
        print(f"{concurrency:>11} {jobs:>5} {rate:>8.3f} {rate / base:>6.2f}x "
              f"{ceiling:>7.2f}x {rate / base / ceiling:>10.3f} {1000 * cpu_per_job:>10.0f}",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ms-per-token", type=float, default=25.0)
    parser.add_argument("--slowdown", type=float, action="append",
                        help="per extra request in flight; repeat for several tables "
                        "(default: 0 and 0.02)")
    parser.add_argument("--waves", type=int, default=2, help="jobs per level: waves x concurrency")
    parser.add_argument("--concurrency", type=int, action="append",
                        help="levels to run, repeatable; the first is the base of the ratios "
                        f"(default: {' '.join(map(str, CONCURRENCIES))})")
    parser.add_argument("--single-pool", action="store_true",
                        help="one httpx pool for the whole batch, as before the pools were split")
    parser.add_argument("--shard-size", type=int,
                        help="requests in flight per httpx pool [default: the client's, 16]")
    parser.add_argument("--memory-runs", type=int, default=32, help="0: skip the memory run")
    args = parser.parse_args()
    if args.single_pool:
        llm_client.SHARD_SIZE = None  # type: ignore[assignment]
    elif args.shard_size:
        llm_client.SHARD_SIZE = args.shard_size
    with tempfile.TemporaryDirectory() as tmp:
        for slowdown in args.slowdown or [0.0, 0.02]:
            throughput_table(args.ms_per_token, slowdown, args.waves,
                             args.concurrency or list(CONCURRENCIES), Path(tmp, f"s{slowdown}"))
        if args.memory_runs:
            per_run, above, seconds = memory_per_run(args.memory_runs, Path(tmp))
            print(f"memory: {args.memory_runs} concurrent runs filling a {LONG_WINDOW}-token "
                  f"window: peak RSS {above:.0f} MiB above the start, {per_run:.1f} MiB per run "
                  f"({seconds:.0f} s)")


if __name__ == "__main__":
    main()
