"""Run many research jobs concurrently, each to its own report file.

Idempotent: `batch-state.json` in the output folder records each job's run id as soon as
the run starts; a re-run skips finished jobs and resumes interrupted ones from the run
store. One failing job never stops the others. Reports are written whole (rumination.outdir):
the output folder may be a local path or an fsspec URL.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from .agent import Researcher
from .endpoints import EndpointPool
from .errors import RuminationError, UsageError
from .events import Event, EventHandler
from .jobs import Job
from .models import Report
from .outdir import LocalDir, OutDir
from .output import check_writable_folder, write_failure
from .settings import Settings
from .store import RunStore, open_store
from .writer import run_write

STATE_FILE = "batch-state.json"
SUMMARY_FILE = "summary.json"
# a finished job's figures, kept in the state file so a re-run's summary still has them
_FIGURES = ("citations", "prompt_tokens", "completion_tokens", "seconds")


class Renderer(Protocol):
    def __call__(self, report: Report, fmt: str, *, citation_style: str) -> str: ...


@dataclass
class JobResult:
    job: str
    status: str  # finished | failed | skipped
    run_id: str | None = None
    output: str | None = None
    citations: int = 0
    citation_accuracy: float | None = None
    effective_citations: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    error: str | None = None


class _State:
    """The batch's memory of which job ran as which run, saved after every change."""

    def __init__(self, out_dir: OutDir) -> None:
        self.out_dir = out_dir if isinstance(out_dir, OutDir) else OutDir.open(out_dir)
        try:
            self.data: dict[str, dict[str, Any]] = json.loads(out_dir.read_text(STATE_FILE) or "{}")
        except ValueError:
            where = out_dir.location(STATE_FILE)
            raise UsageError(f"{where} is damaged; delete it to start the batch afresh") from None

    def update(self, key: str, **fields: Any) -> None:
        self.data.setdefault(key, {}).update(fields)
        text = json.dumps(self.data, indent=2, sort_keys=True) + "\n"
        self.out_dir.write_text(STATE_FILE, text)


class Batch:
    def __init__(
        self,
        jobs: list[Job],
        out_dir: OutDir | str | Path,
        settings: Settings,
        render: Renderer,
        *,
        concurrency: int = 4,
        on_event: EventHandler | None = None,
    ) -> None:
        if concurrency < 1:
            raise UsageError("concurrency must be at least 1")
        self.jobs = jobs
        self.out_dir = out_dir if isinstance(out_dir, OutDir) else OutDir.open(out_dir)
        self.settings = settings
        self.render = render
        self.concurrency = concurrency
        self.on_event = on_event

    async def run(self) -> list[JobResult]:
        if isinstance(self.out_dir, LocalDir):  # checked before any model call
            check_writable_folder(self.out_dir.path, "--out-dir")
        state = _State(self.out_dir)
        store = open_store(self.settings)
        pool = EndpointPool.from_settings(self.settings)  # shared: spreads runs over endpoints
        limit = asyncio.Semaphore(self.concurrency)

        async def guarded(job: Job) -> JobResult:
            async with limit:
                return await self._run_job(job, state, store, pool)

        try:
            results = await asyncio.gather(*(guarded(job) for job in self.jobs))
        finally:
            store.close()
            await pool.aclose()
        summary = [asdict(r) for r in results]
        self.out_dir.write_text(SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
        return list(results)

    async def _run_job(
        self, job: Job, state: _State, store: RunStore, pool: EndpointPool
    ) -> JobResult:
        key = job.key()
        settings = Settings.load_over(self.settings, job.overrides())
        name = f"{key}.{settings.format}"
        output = self.out_dir.location(name)
        known = state.data.get(key, {})
        if known.get("status") == "finished" and self.out_dir.exists(name):
            figures = {k: v for k, v in known.get("figures", {}).items() if k in _FIGURES}
            return JobResult(job=key, status="skipped", run_id=known.get("run_id"),
                             output=output, **figures)
        started = time.monotonic()

        async def on_event(event: Event) -> None:
            if event.kind == "run_started":
                state.update(key, run_id=event.data["run_id"], status="running")
            if self.on_event is not None:
                result = self.on_event(Event(event.kind, {"job": key, **event.data}))
                if result is not None:
                    await result

        own_server = {"llm_url", "model"} & set(job.overrides())
        researcher = Researcher(settings, store=store, pool=None if own_server else pool)
        try:
            if settings.mode == "write":  # one writing call: nothing to resume
                report = await run_write(job.question, settings, on_event=on_event,
                                         store=store)
            elif known.get("run_id") and known.get("status") != "finished":
                report = await researcher.resume(known["run_id"], on_event=on_event)
            else:
                report = await researcher.run(job.question, on_event=on_event)
            text = self.render(report, settings.format, citation_style=settings.citation_style)
            try:
                self.out_dir.write_text(name, text)
            except OSError as exc:
                raise write_failure(output, exc, report.run_id, stored=True) from None
        except RuminationError as exc:
            state.update(key, status="failed", error=str(exc))
            return JobResult(job=key, status="failed", run_id=state.data[key].get("run_id"),
                             seconds=round(time.monotonic() - started, 3), error=str(exc))
        result = JobResult(
            job=key, status="finished", run_id=report.run_id, output=output,
            citations=len(report.citations), prompt_tokens=report.usage.prompt_tokens,
            citation_accuracy=report.figures.citation_accuracy if report.figures else None,
            effective_citations=report.figures.effective_citations if report.figures else 0,
            completion_tokens=report.usage.completion_tokens,
            seconds=round(time.monotonic() - started, 3),
        )
        figures = {figure: getattr(result, figure) for figure in _FIGURES}
        state.update(key, status="finished", run_id=report.run_id, output=output,
                     figures=figures)
        return result
