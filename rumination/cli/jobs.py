"""`batch`, `schedule` and `eval`: many questions from a file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rumination.cli.app import app
from rumination.cli.common import guarded, progress_handler, run_settings
from rumination.cli.options import (
    BackendOpt,
    BackendOptsOpt,
    BrowserOpt,
    ChangesOpt,
    CorpusOpt,
    CostBudgetOpt,
    ExecutorOpt,
    FormatOpt,
    LlmUrl,
    ModelOpt,
    ModeOpt,
    RayAddressOpt,
    StoreOpt,
    TokenBudgetOpt,
    TraceOpt,
    TurnsOpt,
    WorkersOpt,
)
from rumination.wording import cited, plural, spent

if TYPE_CHECKING:  # the framework is imported inside each command: `--help` stays fast
    from rumination.jobs.files import Job
    from rumination.jobs.jobrun import JobResult
    from rumination.settings import Settings


def batch_spent(results: list[JobResult]) -> str:
    """The batch's tokens and (where priced) cost, jobs skipped as finished before included."""
    costs = [r.cost for r in results if r.cost is not None]
    tokens = sum(r.prompt_tokens + r.completion_tokens for r in results)
    return spent(tokens, sum(costs) if costs else None)


def check_formats(settings: Settings, jobs: list[Job]) -> None:
    """Every format the jobs will write can be written here (a missing extra is reported
    now, not after the first run)."""
    from rumination.reports.render import check_format

    for chosen in {settings.format} | {job.format for job in jobs if job.format}:
        check_format(chosen)


@app.command()
def batch(
    jobs_file: Annotated[
        Path, typer.Argument(help="jobs file: YAML (a list, or a `jobs:` list) or JSONL")
    ],
    out_dir: Annotated[
        str, typer.Option("--out-dir", help="folder or fsspec URL (s3://bucket/reports) for "
                          "reports and summary")
    ],
    concurrency: Annotated[
        int, typer.Option(help="jobs running at once (per Ray worker with --executor ray)")
    ] = 4,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
    workers: WorkersOpt = 2,
    llm_url: LlmUrl = None,
    model: ModelOpt = None,
    backend: BackendOpt = None,
    backend_opt: BackendOptsOpt = None,
    corpus: CorpusOpt = None,
    fmt: FormatOpt = None,
    max_turns: TurnsOpt = None,
    max_total_tokens: TokenBudgetOpt = None,
    max_cost: CostBudgetOpt = None,
    mode: ModeOpt = None,
    store: StoreOpt = None,
    trace: TraceOpt = None,
    browser: BrowserOpt = None,
    changes: ChangesOpt = False,
) -> None:
    """Run every job in JOBS_FILE; re-running skips finished jobs and resumes interrupted ones.
    The options are defaults for every job (and override what a resumed run stored); a job's
    own fields override them."""

    def body() -> None:
        import asyncio

        from rumination.jobs.batch import SUMMARY_FILE, Batch
        from rumination.jobs.executors import make_executor
        from rumination.jobs.files import load_jobs
        from rumination.jobs.outdir import OutDir
        from rumination.reports.render import report_bytes

        jobs = load_jobs(jobs_file)
        settings = run_settings(
            llm_url, model, backend, corpus, fmt, max_turns, mode, backend_opt, store,
            browser=browser, changes=changes or None, max_total_tokens=max_total_tokens,
            max_cost=max_cost,
        )
        check_formats(settings, jobs)
        destination = OutDir.open(out_dir)
        runner = Batch(jobs, destination, settings, report_bytes,
                       executor=make_executor(executor, concurrency, workers, ray_address),
                       on_event=progress_handler(trace))  # fmt: skip
        results = asyncio.run(runner.run())
        for r in results:
            accuracy = "" if r.citation_accuracy is None else (
                f", citation accuracy {r.citation_accuracy:.0%}"
            )
            counts = cited(r.citations, r.sources_cited)
            stopped = f", stopped by {r.stopped_by}" if r.stopped_by else ""
            uncited = f", no cited answer ({r.uncited})" if r.uncited else ""
            detail = r.error or f"{counts}{accuracy}{stopped}{uncited}, {r.seconds:.1f} s"
            typer.echo(f"{r.status:9} {r.job}  {detail}")
        failed = sum(r.status == "failed" for r in results)
        uncited_jobs = sum(1 for r in results if r.status == "finished" and r.uncited)
        apart = f" ({uncited_jobs} without a cited answer)" if uncited_jobs else ""
        typer.echo(f"{len(results) - failed} of {plural(len(results), 'job')} done{apart}, "
                   f"{batch_spent(results)}; summary in {destination.location(SUMMARY_FILE)}",
                   err=True)
        if failed or uncited_jobs:
            raise typer.Exit(1)

    guarded(body)


@app.command()
def schedule(
    schedules_file: Annotated[Path, typer.Argument(help="YAML file with a `schedules:` list")],
    llm_url: LlmUrl = None,
    model: ModelOpt = None,
    backend: BackendOpt = None,
    backend_opt: BackendOptsOpt = None,
    corpus: CorpusOpt = None,
    fmt: FormatOpt = None,
    max_turns: TurnsOpt = None,
    max_total_tokens: TokenBudgetOpt = None,
    max_cost: CostBudgetOpt = None,
    mode: ModeOpt = None,
    store: StoreOpt = None,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
    workers: WorkersOpt = 2,
    changes: Annotated[
        bool | None, typer.Option("--changes/--no-changes", help="open each report with what "
                                  "changed since the job's last run [default: on when runs "
                                  "are kept]")
    ] = None,
) -> None:
    """Run batch jobs on cron schedules until stopped (Ctrl-C). The options are defaults
    for every job."""

    def body() -> None:
        import asyncio

        from rumination.jobs.batch import Batch
        from rumination.jobs.executors import make_executor
        from rumination.jobs.files import load_jobs
        from rumination.jobs.outdir import OutDir
        from rumination.jobs.schedule import Schedule, Scheduler, load_schedules
        from rumination.reports.render import report_bytes
        from rumination.settings import Settings

        make_executor(executor, 1, workers, ray_address)  # a bad choice is reported now
        schedules = load_schedules(schedules_file)
        for item in schedules:
            load_jobs(item.jobs)  # a bad jobs file is reported now, not at 6 a.m. on Monday
        settings = run_settings(
            llm_url, model, backend, corpus, fmt, max_turns, mode, backend_opt, store,
            changes=changes, max_total_tokens=max_total_tokens, max_cost=max_cost,
        )
        if changes is None:  # on by default: a schedule's readers read every week's report
            settings = Settings.load_over(settings, {"changes": settings.keep_runs})
        for item in schedules:
            check_formats(settings, load_jobs(item.jobs))
        progress = progress_handler()

        async def run_batch(item: Schedule, out_dir: OutDir) -> list[JobResult]:
            batch = Batch(load_jobs(item.jobs), out_dir, settings, report_bytes,
                          executor=make_executor(executor, item.concurrency, workers,
                                                 ray_address),
                          on_event=progress)  # fmt: skip
            return await batch.run()

        scheduler = Scheduler(schedules, run_batch, on_event=progress)
        for item in schedules:
            typer.echo(f"{item.name}: '{item.cron}' -> {item.out_dir}", err=True)
        asyncio.run(scheduler.run_forever())

    guarded(body)


@app.command("eval")
def eval_suite(
    suite: Annotated[Path, typer.Argument(help="JSONL or YAML of {id, question, answer?}")],
    out_dir: Annotated[Path, typer.Option("--out-dir", help="folder for reports and results")],
    compare: Annotated[
        Path | None, typer.Option("--compare", help="a previous eval folder or its summary.json")
    ] = None,
    concurrency: Annotated[int, typer.Option(help="questions running at once")] = 4,
    llm_url: LlmUrl = None,
    model: ModelOpt = None,
    backend: BackendOpt = None,
    backend_opt: BackendOptsOpt = None,
    corpus: CorpusOpt = None,
    max_turns: TurnsOpt = None,
    max_total_tokens: TokenBudgetOpt = None,
    max_cost: CostBudgetOpt = None,
    mode: ModeOpt = None,
    judge: Annotated[
        str | None, typer.Option(help="lexical, or llm (also grades answers SimpleQA-style)")
    ] = None,
    judge_url: Annotated[str | None, typer.Option("--judge-url", help="llm judge URL")] = None,
    judge_model: Annotated[
        str | None, typer.Option("--judge-model", help="llm judge model")
    ] = None,
    trace: TraceOpt = None,
) -> None:
    """Run every question of SUITE (resumable, like batch) and score the reports: exact match
    and token F1 against `answer`, citation accuracy, sources, turns, tokens, time."""

    def body() -> None:
        import asyncio

        from rumination.jobs.evaluation import load_previous, load_suite, run_eval, summary_table
        from rumination.reports.render import report_bytes
        from rumination.settings import Settings

        items = load_suite(suite)
        previous = load_previous(compare) if compare is not None else None
        settings = run_settings(llm_url, model, backend, corpus, None, max_turns, mode,
                                 backend_opt, max_total_tokens=max_total_tokens,
                                 max_cost=max_cost)
        judging = {"judge": judge, "judge_url": judge_url, "judge_model": judge_model}
        settings = Settings.load_over(settings, {k: v for k, v in judging.items() if v})
        results, summary = asyncio.run(run_eval(
            items, out_dir, settings, report_bytes, concurrency=concurrency,
            previous=previous, on_event=progress_handler(trace),
        ))
        typer.echo(summary_table(summary, previous))
        typer.echo(f"results in {out_dir / 'results.jsonl'}, summary in "
                   f"{out_dir / 'summary.md'} and summary.json", err=True)
        if summary["failed"]:
            raise typer.Exit(1)

    guarded(body)
