"""One batch job, start to finish, wherever it runs: start or resume its run, render the
report, write it whole to the output folder. The same code runs in the driver (local
executor) and in a Ray worker (rumination.jobs.executors)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from rumination.agent.researcher import Researcher
from rumination.agent.writer import run_write
from rumination.errors import RuminationError
from rumination.events import Event, EventHandler
from rumination.jobs.files import Job
from rumination.jobs.outdir import OutDir
from rumination.jobs.output import write_failure
from rumination.llm.endpoints import EndpointPool
from rumination.models import Report
from rumination.settings import Settings
from rumination.store.run_store import RunStore
from rumination.support.changes import with_changes
from rumination.support.figures import report_counts, uncited_reason


class Renderer(Protocol):
    """reports.report_bytes (every format), or reports.render_report (the text formats)."""

    def __call__(self, report: Report, fmt: str, *, citation_style: str) -> str | bytes: ...


@dataclass
class JobResult:
    job: str
    status: str  # finished | failed | skipped
    run_id: str | None = None
    output: str | None = None
    citations: int = 0  # citation marks in the report's text
    sources_cited: int = 0  # the distinct sources they cite
    citation_accuracy: float | None = None
    effective_citations: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None  # at the configured prices; None when unpriced
    stopped_by: str | None = None  # the budget that ended research, if one did
    uncited: str | None = None  # why a finished report is no cited answer, if it is not
    seconds: float = 0.0
    error: str | None = None


@dataclass
class JobContext:
    """What every job of a batch shares in one process."""

    settings: Settings
    render: Renderer
    out_dir: OutDir
    store: RunStore
    pool: EndpointPool
    on_run_started: Callable[[str, str], None]  # (job key, run id): recorded for a takeover
    on_event: EventHandler | None = None


def output_name(job: Job, settings: Settings) -> str:
    return f"{job.key()}.{Settings.load_over(settings, job.overrides()).format}"


async def run_job(job: Job, run_id: str | None, ctx: JobContext) -> JobResult:
    """Run `job` (resuming `run_id` if an earlier attempt started it); failures become a
    failed result, never an exception."""
    key = job.key()
    settings = Settings.load_over(ctx.settings, job.overrides())
    name = f"{key}.{settings.format}"
    started = time.monotonic()
    seen: list[str] = [run_id] if run_id else []

    async def on_event(event: Event) -> None:
        if event.kind == "run_started" and not seen:
            seen.append(event.data["run_id"])
            ctx.on_run_started(key, event.data["run_id"])
        if ctx.on_event is not None:
            result = ctx.on_event(Event(event.kind, {"job": key, **event.data}))
            if result is not None:
                await result

    own_server = {"llm_url", "model"} & set(job.overrides())
    researcher = Researcher(settings, store=ctx.store, pool=None if own_server else ctx.pool)
    try:
        if settings.mode == "write":  # one writing call: nothing to resume
            report = await run_write(job.question, settings, on_event=on_event, store=ctx.store)
        elif run_id:
            report = await researcher.resume(run_id, on_event=on_event)
        else:
            report = await researcher.run(job.question, on_event=on_event)
        ctx.store.set_job(report.run_id, key)
        if settings.changes:
            report = with_changes(ctx.store, report)
        rendered = ctx.render(report, settings.format, citation_style=settings.citation_style)
        try:
            ctx.out_dir.write_bytes(
                name, rendered.encode("utf-8") if isinstance(rendered, str) else rendered)
        except OSError as exc:
            raise write_failure(ctx.out_dir.location(name), exc, report.run_id, True) from None
    except RuminationError as exc:
        return JobResult(job=key, status="failed", run_id=seen[0] if seen else None,
                         seconds=round(time.monotonic() - started, 3), error=str(exc))  # fmt: skip
    counts = report_counts(report)
    return JobResult(
        job=key, status="finished", run_id=report.run_id, output=ctx.out_dir.location(name),
        citations=counts["citations"], sources_cited=counts["sources_cited"],
        prompt_tokens=report.usage.prompt_tokens,
        citation_accuracy=report.figures.citation_accuracy if report.figures else None,
        effective_citations=report.figures.effective_citations if report.figures else 0,
        completion_tokens=report.usage.completion_tokens,
        cost=report.cost, stopped_by=report.stopped_by, uncited=uncited_reason(report),
        seconds=round(time.monotonic() - started, 3),
    )  # fmt: skip
