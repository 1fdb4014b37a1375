"""`research`, `demo` and `verify`: one question, one report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rumination import defaults
from rumination.errors import RuminationError, UsageError
from rumination.jobs.demo import DEMO_QUESTION

if TYPE_CHECKING:  # the framework is imported inside each command: `--help` stays fast
    from rumination.events import Event
from rumination.cli.app import app
from rumination.cli.common import (
    checked_format,
    deliver,
    exit_if_uncited,
    guarded,
    open_run_store,
    progress_handler,
    resume_hint,
    run_settings,
)
from rumination.cli.options import (
    BackendOpt,
    BackendOptsOpt,
    BrowserOpt,
    ChangesOpt,
    CorpusOpt,
    CostBudgetOpt,
    FormatOpt,
    LlmUrl,
    ModelOpt,
    ModeOpt,
    OutOpt,
    StoreOpt,
    TokenBudgetOpt,
    TraceOpt,
    TurnsOpt,
    WireOpt,
)


@app.command()
def research(
    question: Annotated[str, typer.Argument(metavar="QUESTION", help="the research question")],
    llm_url: LlmUrl = None,
    model: ModelOpt = None,
    backend: BackendOpt = None,
    backend_opt: BackendOptsOpt = None,
    corpus: CorpusOpt = None,
    out: OutOpt = None,
    fmt: FormatOpt = None,
    max_turns: TurnsOpt = None,
    max_total_tokens: TokenBudgetOpt = None,
    max_cost: CostBudgetOpt = None,
    mode: ModeOpt = None,
    store: StoreOpt = None,
    trace: TraceOpt = None,
    browser: BrowserOpt = None,
    changes: ChangesOpt = False,
    wire: WireOpt = None,
) -> None:
    """Research QUESTION with the model and write a cited report."""

    def body() -> None:
        from asyncio import CancelledError

        from rumination.agent.sync import research as run_research

        settings = run_settings(
            llm_url, model, backend, corpus, None, max_turns, mode, backend_opt, store,
            browser=browser, changes=changes or None, max_total_tokens=max_total_tokens,
            max_cost=max_cost, wire=wire,
        )
        if settings.corpus and not Path(settings.corpus).is_file():
            raise UsageError(f"corpus not found: {settings.corpus}")
        fmt_ = checked_format(out, fmt, settings.format)
        progress = progress_handler(trace)
        started: list[str] = []

        def on_event(event: Event) -> None:
            if event.kind == "run_started":
                started.append(str(event.data["run_id"]))
            progress(event)

        try:
            report = run_research(question, settings=settings, on_event=on_event)
        except (RuminationError, KeyboardInterrupt, CancelledError):  # see signals.py
            if started:
                resume_hint(settings, started[0])
            raise
        if settings.changes:
            from rumination.support.changes import with_changes

            report = with_changes(open_run_store(settings), report)
        deliver(report, out, fmt_, settings)
        exit_if_uncited(report)

    guarded(body)


@app.command()
def demo(
    question: Annotated[str, typer.Option(help="question to research")] = DEMO_QUESTION,
    out: Annotated[
        Path | None, typer.Option("--out", help="report file [default: demo-report.FORMAT]")
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", metavar="FORMAT",
                     help="md, html, json, pdf or docx [default: from the --out file name]"),
    ] = None,
    mode: Annotated[str, typer.Option("--mode", help="rumination or write")] = "rumination",
) -> None:
    """Run a complete job on the bundled corpus with the protocol SIMULATOR (not the model)."""

    def body() -> None:
        import asyncio

        from rumination.jobs.demo import run_demo
        from rumination.jobs.output import check_writable_file
        from rumination.settings import Settings

        settings = Settings.load(mode=mode)
        fmt_ = checked_format(out, fmt, defaults.FORMAT)
        target = out or Path(f"demo-report.{fmt_}")
        if out is None:
            check_writable_file(target, "--out")
        typer.echo(
            "demo: the model is played by rumination's built-in protocol SIMULATOR "
            "(no LLM, no GPU); search runs on the bundled demo corpus.",
            err=True,
        )
        report = asyncio.run(run_demo(question, settings, on_event=progress_handler()))
        deliver(report, target, fmt_, settings)

    guarded(body)


@app.command()
def verify(
    target: Annotated[str, typer.Argument(help="REPORT.json, or the RUN_ID of a stored run")],
    judge: Annotated[str | None, typer.Option(help="lexical (offline) or llm")] = None,
    judge_url: Annotated[
        str | None, typer.Option("--judge-url", help="the llm judge's base URL (…/v1)")
    ] = None,
    judge_model: Annotated[
        str | None, typer.Option("--judge-model", help="the llm judge's model")
    ] = None,
    unsupported: Annotated[
        str | None,
        typer.Option("--unsupported-citations", help="keep, flag or drop unsupported citations"),
    ] = None,
    out: OutOpt = None,
    fmt: FormatOpt = None,
) -> None:
    """Re-check every citation of a finished report against the source text the model was
    shown, and write the updated report (a REPORT.json is rewritten in place unless --out)."""

    def body() -> None:
        import asyncio

        from rumination.settings import Settings
        from rumination.support.verify import load_report, verify_report

        settings = Settings.load(judge=judge, judge_url=judge_url, judge_model=judge_model,
                                 unsupported_citations=unsupported)
        is_file = Path(target).is_file()
        destination = out if out is not None else (Path(target) if is_file else None)
        fmt_ = checked_format(destination, fmt, settings.format)
        store = open_run_store(settings)
        report = load_report(target, store)
        checked = asyncio.run(verify_report(report, store, settings))
        deliver(checked, destination, fmt_, settings)

    guarded(body)
