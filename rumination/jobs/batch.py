"""Run many research jobs, each to its own report file, on an executor (local or Ray).

The driver registers the jobs in the run store (rumination.store.claims) under the output folder's
name, then keeps `executor.slots` jobs going, claiming one at a time; so two drivers on the
same jobs file and folder split the jobs, and a job whose driver died is taken over once its
lease expires. Idempotent: a re-run skips finished jobs (their report exists) and resumes
interrupted ones from the run store. One failing job never stops the others.
`batch-state.json` in the output folder records each job's run id and status for people;
reports are written whole (rumination.jobs.outdir): the folder may be local or an fsspec URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Coroutine, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rumination.errors import UsageError
from rumination.events import EventHandler, emit
from rumination.jobs.executors import Executor, JobSetup, LocalExecutor, WorkerLost
from rumination.jobs.files import Job
from rumination.jobs.jobrun import JobResult, Renderer, output_name
from rumination.jobs.outdir import OutDir
from rumination.settings import Settings
from rumination.store.claims import FINISHED, PENDING, RUNNING, JobClaims
from rumination.store.run_store import open_store

__all__ = ["STATE_FILE", "SUMMARY_FILE", "Batch", "JobResult", "Renderer"]

STATE_FILE = "batch-state.json"
SUMMARY_FILE = "summary.json"
WORKER_ATTEMPTS = 3  # a job whose worker died this often is reported failed
# a finished job's figures, kept in the state file so a re-run's summary still has them
_FIGURES = ("citations", "sources_cited", "citation_accuracy", "effective_citations",
            "prompt_tokens", "completion_tokens", "cost", "stopped_by", "seconds")


class _State:
    """The batch's memory of which job ran as which run, saved after every change."""

    def __init__(self, out_dir: OutDir) -> None:
        self.out_dir = out_dir
        try:
            self.data: dict[str, dict[str, Any]] = json.loads(out_dir.read_text(STATE_FILE) or "{}")
        except ValueError:
            where = out_dir.location(STATE_FILE)
            raise UsageError(f"{where} is damaged; delete it to start the batch afresh") from None

    def update(self, key: str, **fields: Any) -> None:
        self.data.setdefault(key, {}).update(fields)
        text = json.dumps(self.data, indent=2, sort_keys=True) + "\n"
        self.out_dir.write_text(STATE_FILE, text)


async def _gather_fail_fast(work: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Run `work` concurrently; the first error cancels the rest (and waits for them to
    stop) before it propagates: a worker that cannot start stops the batch at once."""
    tasks = [asyncio.ensure_future(item) for item in work]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class Batch:
    def __init__(
        self,
        jobs: list[Job],
        out_dir: OutDir | str | Path,
        settings: Settings,
        render: Renderer,
        *,
        concurrency: int = 4,
        executor: Executor | None = None,
        on_event: EventHandler | None = None,
    ) -> None:
        self.jobs = jobs
        self.out_dir = out_dir if isinstance(out_dir, OutDir) else OutDir.open(out_dir)
        self.settings = settings
        self.render = render
        self.executor = executor or LocalExecutor(concurrency)
        self.on_event = on_event
        self.owner = uuid.uuid4().hex[:12]

    async def run(self) -> list[JobResult]:
        self.out_dir.check_writable()  # before any model call
        state = _State(self.out_dir)
        keys = [job.key() for job in self.jobs]
        by_key = dict(zip(keys, self.jobs, strict=True))
        store = open_store(self.settings)
        claims = JobClaims(store, self.out_dir.identity, self.owner, keys)
        finished = {k for k in keys if self.out_dir.exists(output_name(by_key[k], self.settings))}
        claims.register(finished, {k: v["run_id"] for k, v in state.data.items()
                                   if k in by_key and v.get("run_id")})  # fmt: skip
        before = claims.results()
        setup = JobSetup(self.settings, self.render, self.out_dir.target,
                         self.out_dir.identity, self.owner)  # fmt: skip
        lease = self.settings.job_lease_s
        mine: dict[str, asyncio.Task[JobResult]] = {}
        lost: set[str] = set()
        changed = asyncio.Event()

        async def attempt(key: str, run_id: str | None) -> JobResult:
            for tries in range(1, WORKER_ATTEMPTS + 1):
                try:
                    return await self.executor.run(by_key[key], run_id)
                except WorkerLost as exc:
                    run_id = claims.run_id(key) or run_id  # resume what the worker committed
                    error = f"the worker running this job died {tries} times ({exc})"
                    if tries < WORKER_ATTEMPTS:
                        message = f"worker lost ({exc}); attempt {tries + 1} of {WORKER_ATTEMPTS}"
                        await emit(self.on_event, "warning", job=key, message=message)
            return JobResult(job=key, status="failed", run_id=run_id, error=error)

        async def slot() -> None:
            while True:
                claim = claims.claim_next(lease)
                if claim is None:
                    counts = claims.counts()
                    if not counts.get(PENDING) and not counts.get(RUNNING):
                        return
                    changed.clear()  # others still hold jobs: wait for them, or their lease
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait(), min(1.0, lease / 4))
                    continue
                state.update(claim.job, status="running", run_id=claim.run_id)
                mine[claim.job] = asyncio.ensure_future(attempt(claim.job, claim.run_id))
                try:
                    result = await mine[claim.job]
                except asyncio.CancelledError:
                    if claim.job in lost:
                        lost.discard(claim.job)
                        continue  # another driver has it now
                    raise
                finally:
                    del mine[claim.job]
                if claims.finish(claim.job, result.status, asdict(result)):
                    figures = {f: getattr(result, f) for f in _FIGURES}
                    state.update(claim.job, status=result.status, run_id=result.run_id,
                                 output=result.output, error=result.error, figures=figures)
                changed.set()

        async def heartbeat() -> None:
            while True:
                await asyncio.sleep(lease / 3)
                held = claims.renew(lease)
                for key, task in list(mine.items()):
                    if key not in held:  # this driver stalled past its lease: let go
                        lost.add(key)
                        task.cancel()

        beat = asyncio.ensure_future(heartbeat())
        try:
            await self.executor.start(setup, self.on_event)
            await _gather_fail_fast(slot() for _ in range(min(self.executor.slots, len(keys))))
        finally:
            beat.cancel()
            claims.release()  # on an error or Ctrl-C: jobs held here are free again at once
            await self.executor.aclose()
            results = claims.results()
            store.close()
        summary = [self._summary_entry(by_key[k], before.get(k), results.get(k), state)
                   for k in keys]  # fmt: skip
        text = json.dumps([asdict(r) for r in summary], indent=2) + "\n"
        self.out_dir.write_text(SUMMARY_FILE, text)
        return summary

    def _summary_entry(
        self, job: Job, before: tuple[str, str | None, Any] | None,
        after: tuple[str, str | None, Any] | None, state: _State,
    ) -> JobResult:
        """A job's line in the summary: its recorded result, `skipped` (with the figures of
        the run that made it) if it was finished before this batch started."""
        status, run_id, result = after or (PENDING, None, None)
        if result is None:  # known only from an older batch-state.json
            figures = state.data.get(job.key(), {}).get("figures", {})
            result = {"job": job.key(), "status": status, "run_id": run_id,
                      **{k: v for k, v in figures.items() if k in _FIGURES}}  # fmt: skip
        entry = JobResult(**result)
        if before is not None and before[0] == FINISHED:
            entry.status = "skipped"
            entry.output = entry.output or self.out_dir.location(output_name(job, self.settings))
        return entry
