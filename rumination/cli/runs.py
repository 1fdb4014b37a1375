"""`runs list|show|export|resume`: what the run store holds."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rumination.errors import RuminationError, UsageError
from rumination.wording import plural

if TYPE_CHECKING:  # the framework is imported inside each command: `--help` stays fast
    from rumination.models import Turn
from rumination.cli.app import app
from rumination.cli.common import (
    checked_format,
    deliver,
    figures_line,
    guarded,
    llm_urls,
    open_run_store,
    progress_handler,
    resume_hint,
    write_stdout,
)
from rumination.cli.options import FormatOpt, OutOpt, StoreOpt

runs_app = typer.Typer(help="Inspect, export and resume stored runs.", no_args_is_help=True,
                       rich_markup_mode=None)
app.add_typer(runs_app, name="runs")


@runs_app.command("list")
def runs_list(
    limit: Annotated[int, typer.Option(help="most recent N runs")] = 20, store: StoreOpt = None
) -> None:
    """List stored runs, newest first."""

    def body() -> None:
        for r in open_run_store(url=store, read_only=True).list_runs(limit):
            typer.echo(f"{r.run_id}\t{r.status}\t{plural(r.turns, 'turn')}\t{r.created_at}"
                       f"\t{r.question}")

    guarded(body)


def _turn_lines(turn: Turn, full: bool) -> list[str]:
    """A stored turn: its tool call and the size of what it returned; `full` adds what the
    model wrote and the observation it got back, whole."""
    call = turn.tool_call.model_dump_json() if turn.tool_call else turn.protocol_error or "answer"
    lines = [f"  turn {turn.index + 1}: {call} -> {plural(len(turn.observation or ''), 'char')}"]
    if full:
        for label, text in (("model", turn.assistant_text), ("observation", turn.observation)):
            lines.append(f"    {label}:")
            lines.append(textwrap.indent(text, "      ") if text else "      (none)")
    return lines


@runs_app.command("show")
def runs_show(
    run_id: str,
    store: StoreOpt = None,
    full: Annotated[bool, typer.Option("--full", help="also print what the model wrote and "
                                       "what each tool returned, whole")] = False,
) -> None:
    """Show a run's turns: each tool call and the size of what it returned (--full: the text)."""

    def body() -> None:
        runs = open_run_store(url=store, read_only=True)
        r = runs.get_run(run_id)
        typer.echo(f"run {r.run_id} ({r.status}), model {r.model}, backend {r.backend}")
        typer.echo(f"question: {r.question}")
        for t in runs.turns(run_id):
            typer.echo("\n".join(_turn_lines(t, full)))
        typer.echo(f"sources: {len(runs.sources(run_id))}")
        report = runs.report(run_id)
        if report is not None and report.figures is not None:
            typer.echo(figures_line(report.figures))

    guarded(body)


@runs_app.command("export")
def runs_export(
    run_id: str,
    out: Annotated[
        Path | None, typer.Option("--out", help="write the export to this file [default: stdout]")
    ] = None,
    report_fmt: Annotated[
        str | None,
        typer.Option("--report", help="md, html, json, pdf or docx: export only the run's report, "
                     "in this format (a finished run)"),
    ] = None,
    store: StoreOpt = None,
) -> None:
    """Write everything stored for a run as one JSON document: settings (no API key), every
    turn with its raw text and observation, sources and the report if it finished. With
    --report, only the report, rendered as a file `rumination research --out` would write."""

    def body() -> None:
        from rumination.jobs.output import write_atomic
        from rumination.store.exports import export_report, export_run

        runs = open_run_store(url=store, read_only=True)
        if report_fmt is not None:
            text = export_report(runs, run_id, checked_format(out, report_fmt, report_fmt))
        else:
            if out is not None:
                checked_format(out, None, "json")  # checks the place only
                kind = out.suffix.lower().lstrip(".")
                if kind and kind != "json":
                    raise UsageError(f"--out {out}: a run's export is JSON; for its report as "
                                     f"{kind}, add --report {kind}")
            text = export_run(runs, run_id)
        if out is None:
            write_stdout(text)
        else:
            write_atomic(out, text)

    guarded(body)


@runs_app.command("diff")
def runs_diff(
    run_a: Annotated[str, typer.Argument(metavar="RUN_A", help="the earlier run")],
    run_b: Annotated[str, typer.Argument(metavar="RUN_B", help="the later run")],
    as_json: Annotated[bool, typer.Option("--json", help="the `changes` JSON object")] = False,
    store: StoreOpt = None,
) -> None:
    """What changed from RUN_A's report to RUN_B's: sources cited now and not then and the
    reverse, statements new or gone, citation accuracy and sources cited before and after."""

    def body() -> None:
        from rumination.reports.labels import changes_lines
        from rumination.support.changes import compare_reports, stored_report

        runs = open_run_store(url=store, read_only=True)
        before, since = stored_report(runs, run_a)
        after, _ = stored_report(runs, run_b)
        changes = compare_reports(before, after, since)
        if as_json:
            typer.echo(changes.model_dump_json(indent=2))
            return
        typer.echo(f"changes from run {run_a} ({since}) to run {run_b}")
        for line in changes_lines(changes):
            typer.echo(line)
        for label, sources in (("+ source", changes.new_sources),
                               ("- source", changes.dropped_sources)):
            for source in sources:
                typer.echo(f"{label}  {source.title}  {source.url}")
        for label, statements in (("+ statement", changes.new_statements),
                                  ("- statement", changes.removed_statements)):
            for statement in statements:
                typer.echo(f"{label}  {statement}")

    guarded(body)


@runs_app.command("resume")
def runs_resume(
    run_id: str,
    out: OutOpt = None,
    fmt: FormatOpt = None,
    llm_url: Annotated[
        list[str] | None,
        typer.Option("--llm-url", metavar="URL",
                     help="the server to continue on [default: the stored one]"),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="served model name [default: the stored one]")
    ] = None,
    store: StoreOpt = None,
) -> None:
    """Continue an interrupted run from its last committed turn (on another server with
    --llm-url / --model)."""

    def body() -> None:
        import asyncio

        from rumination.agent.researcher import Researcher
        from rumination.settings import Settings

        runs = open_run_store(url=store)
        record = runs.get_run(run_id)
        saved = Settings.load_saved(record.settings_json)
        given = {"llm_url": llm_urls(llm_url), "model": model}
        settings = Settings.load_over(saved, {k: v for k, v in given.items() if v is not None})
        fmt_ = checked_format(out, fmt, settings.format)
        researcher = Researcher(settings, store=runs)
        try:
            report = asyncio.run(researcher.resume(run_id, on_event=progress_handler()))
        except (RuminationError, KeyboardInterrupt, asyncio.CancelledError):  # see signals.py
            resume_hint(settings, run_id)
            raise
        deliver(report, out, fmt_, settings)

    guarded(body)
