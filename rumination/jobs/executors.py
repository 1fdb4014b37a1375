"""Where a batch's jobs run: in the driver's own event loop (local), or on a Ray cluster.

Ray runs a few long-lived worker actors, each an asyncio actor running up to `concurrency`
jobs at once. Actors rather than one Ray task per job because a research job is a long
chain of awaits on a model server, not CPU work: one process holds dozens of runs, and it
keeps its HTTP connections, endpoint pool and store connection from job to job. A worker
that dies takes its jobs with it; the driver sees `WorkerLost` and sends each job again to
a (restarted) worker, which resumes the job's run from its last committed turn. A worker that
cannot be built (its process cannot import rumination, say) would fail every job the same way:
that is `WorkerStartFailed`, a usage error that stops the batch, never a retry.

Progress: workers put their runs' events (all but the answer's text deltas) on a Ray queue
the driver drains into its own event handler, so a Ray batch shows the same progress lines
and traces as a local one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from rumination.errors import UsageError
from rumination.events import Event, EventHandler, emit
from rumination.jobs.files import Job
from rumination.jobs.jobrun import JobContext, JobResult, Renderer, run_job
from rumination.jobs.outdir import OutDir
from rumination.llm.endpoints import EndpointPool
from rumination.settings import Settings
from rumination.store.run_store import open_store
from rumination.telemetry.tracing import flush as flush_traces


class WorkerLost(Exception):
    """The process running a job died; the job may be sent again."""


class WorkerStartFailed(UsageError):
    """A worker's constructor raised: a configuration error, the same for every job."""


@dataclass(frozen=True)
class JobSetup:
    """What a process needs to run a batch's jobs; small and picklable (sent to workers)."""

    settings: Settings
    render: Renderer
    out_dir: str
    batch: str
    owner: str


class JobProcess:
    """One process's share of a batch: its store connection and endpoint pool."""

    def __init__(self, setup: JobSetup, on_event: EventHandler | None = None) -> None:
        from rumination.store.claims import (
            JobClaims,  # claims import the store; keep this module light
        )

        store = open_store(setup.settings)
        claims = JobClaims(store, setup.batch, setup.owner)
        self.context = JobContext(
            settings=setup.settings, render=setup.render, out_dir=OutDir.open(setup.out_dir),
            store=store, pool=EndpointPool.from_settings(setup.settings),
            on_run_started=claims.set_run, on_event=on_event,
        )  # fmt: skip

    async def run(self, job: Job, run_id: str | None) -> JobResult:
        return await run_job(job, run_id, self.context)

    async def aclose(self) -> None:
        await self.context.pool.aclose()
        self.context.store.close()


class Executor(ABC):
    slots: int  # jobs that may run at once

    @abstractmethod
    async def start(self, setup: JobSetup, on_event: EventHandler | None) -> None: ...

    @abstractmethod
    async def run(self, job: Job, run_id: str | None) -> JobResult:
        """Run one job; WorkerLost if the process running it died."""

    @abstractmethod
    async def aclose(self) -> None: ...


class LocalExecutor(Executor):
    def __init__(self, concurrency: int = 4) -> None:
        if concurrency < 1:
            raise UsageError("concurrency must be at least 1")
        self.slots = concurrency
        self._process: JobProcess | None = None

    async def start(self, setup: JobSetup, on_event: EventHandler | None) -> None:
        self._process = JobProcess(setup, on_event)

    async def run(self, job: Job, run_id: str | None) -> JobResult:
        assert self._process is not None, "start() first"
        return await self._process.run(job, run_id)

    async def aclose(self) -> None:
        if self._process is not None:
            await self._process.aclose()


# not sent to the driver: one per generated piece of text, and no progress line shows them
UNSENT_EVENTS = frozenset({"answer_delta"})


class RayWorker:
    """A Ray actor (made one by RayExecutor): runs jobs in its own event loop, sending their
    events to `progress` (a ray.util.queue.Queue) when given."""

    def __init__(self, setup: JobSetup, progress: Any = None) -> None:
        self.setup = setup
        self.progress = progress
        self.process: JobProcess | None = None

    async def run(self, job_json: str, run_id: str | None) -> JobResult:
        if self.process is None:  # built here, inside the actor's event loop
            sending = self._send if self.progress is not None else None
            self.process = JobProcess(self.setup, sending)
        return await self.process.run(Job.model_validate_json(job_json), run_id)

    async def _send(self, event: Event) -> None:
        if event.kind not in UNSENT_EVENTS:
            await self.progress.put_async((event.kind, event.data))

    def pid(self) -> int:
        return os.getpid()

    async def close(self) -> None:
        if self.process is not None:
            await self.process.aclose()
        flush_traces()  # the driver kills this actor next: no exit handler runs


class RayExecutor(Executor):
    def __init__(self, workers: int = 2, concurrency: int = 4, address: str | None = None,
                 init_options: dict[str, Any] | None = None) -> None:  # fmt: skip
        if workers < 1 or concurrency < 1:
            raise UsageError("workers and concurrency must be at least 1")
        try:
            import ray
        except ImportError:
            raise UsageError(
                "--executor ray needs Ray: pip install 'rumination[ray]'"
            ) from None
        self.ray = ray
        self.workers_wanted, self.concurrency = workers, concurrency
        self.slots = workers * concurrency
        self.address = address
        self.init_options = init_options or {}
        self.workers: list[Any] = []
        self.in_flight: dict[int, int] = {}  # jobs sent to each worker and not yet back
        self._order = itertools.count()
        self._progress: Any = None  # the workers' event queue, when the driver listens
        self._relay: asyncio.Task[None] | None = None

    async def start(self, setup: JobSetup, on_event: EventHandler | None) -> None:
        ray = self.ray
        if not ray.is_initialized():
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                         **self.init_options)  # fmt: skip
            except ConnectionError as exc:
                raise UsageError(f"cannot reach the Ray cluster at {self.address}: {exc}") from None
        actor = ray.remote(RayWorker).options(  # +1: pid() and close() never wait for a job
            max_concurrency=self.concurrency + 1, max_restarts=-1, num_cpus=0
        )
        if on_event is not None:
            from ray.util.queue import Queue

            self._progress = Queue(actor_options={"num_cpus": 0})
            self._relay = asyncio.create_task(self._relay_events(on_event))
        self.workers = [actor.remote(setup, self._progress) for _ in range(self.workers_wanted)]
        self.in_flight = dict.fromkeys(range(len(self.workers)), 0)
        try:  # wait until every worker is built, so a constructor error stops the batch here
            await asyncio.gather(*(worker.pid.remote() for worker in self.workers))
        except self.ray.exceptions.RayActorError as exc:
            raise self._lost(exc) from None

    async def run(self, job: Job, run_id: str | None) -> JobResult:
        index = min(self.in_flight, key=lambda i: (self.in_flight[i], next(self._order)))
        self.in_flight[index] += 1
        pending = self.workers[index].run.remote(job.model_dump_json(), run_id)
        try:
            result: JobResult = await pending
            return result
        except self.ray.exceptions.RayActorError as exc:
            raise self._lost(exc) from None
        except asyncio.CancelledError:  # the driver let the job go: stop it on the worker too
            self.ray.cancel(pending)
            raise
        finally:
            self.in_flight[index] -= 1

    @staticmethod
    def _lost(exc: Exception) -> WorkerLost | WorkerStartFailed:
        """What a dead actor means: a worker whose constructor raised (restarting it would
        only raise again), or one that died while it ran."""
        if getattr(exc, "actor_init_failed", False):
            return WorkerStartFailed(f"a Ray worker could not start: {raised_in(str(exc))}")
        return WorkerLost(str(exc).splitlines()[0])

    async def _relay_events(self, on_event: EventHandler) -> None:
        """The workers' events, in the order each worker sent them, to the driver's handler."""
        while True:
            kind, data = await self._progress.get_async()
            await emit(on_event, kind, **data)

    async def worker_pids(self) -> list[int]:
        return [await worker.pid.remote() for worker in self.workers]

    async def aclose(self) -> None:
        for worker in self.workers:
            with contextlib.suppress(self.ray.exceptions.RayError):
                await worker.close.remote()
            self.ray.kill(worker)
        self.workers = []
        if self._relay is not None:
            await self._drain()
            self._relay.cancel()
            await asyncio.gather(self._relay, return_exceptions=True)
            self._progress.shutdown()
            self._relay = self._progress = None

    async def _drain(self, wait_s: float = 2.0) -> None:
        """Give the relay the events still queued (the last jobs' `finished`: a worker's
        events are all queued before its job's result comes back), for a while."""
        deadline = asyncio.get_running_loop().time() + wait_s
        while asyncio.get_running_loop().time() < deadline:
            with contextlib.suppress(self.ray.exceptions.RayError):
                if await asyncio.to_thread(self._progress.qsize) == 0:
                    return
            await asyncio.sleep(0.02)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RAISED = re.compile(r"[A-Za-z_][\w.]*: \S")  # `ModuleNotFoundError: No module named 'x'`


def raised_in(traceback_text: str) -> str:
    """The exception (`Type: message`) that ends a traceback as Ray reports it: Ray wraps
    the worker's own error (an import error in a RuntimeError, say), whose line comes last."""
    lines = [line for line in _ANSI.sub("", traceback_text).splitlines() if line.strip()]
    raised = [line for line in lines if _RAISED.match(line)]
    return (raised or lines or ["unknown error"])[-1].strip()


def make_executor(kind: str, concurrency: int, workers: int = 2, address: str | None = None
                  ) -> Executor:  # fmt: skip
    """The executor the CLI's --executor names."""
    if kind == "local":
        return LocalExecutor(concurrency)
    if kind == "ray":
        return RayExecutor(workers, concurrency, address)
    raise UsageError(f"--executor must be local or ray, not {kind!r}")
