"""Batch throughput against a simulator that models continuous batching.

Every generated token costs `--ms-per-token`, slowed by `--slowdown` per extra request in
flight (vLLM's continuous batching: per-request latency grows slowly with concurrency).
Runs the same 32 jobs at concurrency 1, 8 and 32 and prints jobs/s and the ratio to
concurrency 1 (target: >= 6x at 8).

    python bench/batch.py [--jobs 32] [--ms-per-token 1.0] [--slowdown 0.02]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from rumination.reports.render import render_report
from rumination.search_backends.local import demo_corpus_path

from rumination.batch import Batch
from rumination.jobs import Job
from rumination.settings import Settings
from rumination.testing import SimulatorConfig, SimulatorServer, simulate

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


def run(concurrency: int, jobs: int, config: SimulatorConfig, workdir: Path) -> float:
    questions = [
        f"What matters about heat pump {TOPICS[i % len(TOPICS)]}? (job {i})" for i in range(jobs)
    ]
    with SimulatorServer(simulate, config) as server:
        settings = Settings(
            llm_url=server.url,
            model=config.model,
            corpus=str(demo_corpus_path()),
            run_store=str(workdir / f"runs-{concurrency}.db"),
        )
        batch = Batch(
            [Job(question=q) for q in questions],
            workdir / f"out-{concurrency}",
            settings,
            render_report,
            concurrency=concurrency,
        )
        started = time.perf_counter()
        results = asyncio.run(batch.run())
        elapsed = time.perf_counter() - started
    assert all(r.status == "finished" for r in results), [r.error for r in results]
    return jobs / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=32)
    parser.add_argument("--ms-per-token", type=float, default=1.0)
    parser.add_argument("--slowdown", type=float, default=0.02)
    args = parser.parse_args()
    config = SimulatorConfig(
        model="sim", latency_per_token_s=args.ms_per_token / 1000, batch_slowdown=args.slowdown
    )
    with tempfile.TemporaryDirectory() as tmp:
        base = None
        print(f"{'concurrency':>11} {'jobs/s':>8} {'ratio':>6}")
        for concurrency in (1, 8, 32):
            rate = run(concurrency, args.jobs, config, Path(tmp))
            base = base or rate
            print(f"{concurrency:>11} {rate:>8.2f} {rate / base:>6.2f}x", flush=True)


if __name__ == "__main__":
    main()
