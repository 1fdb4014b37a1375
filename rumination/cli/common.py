"""What the commands share: one-line errors, settings from every layer, report
delivery, progress, the run store."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from rumination.cli.signals import sigterm_as_interrupt
from rumination.errors import RuminationError, UsageError
from rumination.wording import cited, counts_phrase, plural

if TYPE_CHECKING:  # the framework is imported inside each command: `--help` stays fast
    from rumination.events import Event
    from rumination.models import Report, ReportFigures
    from rumination.settings import Settings
    from rumination.store.run_store import RunStore
from rumination.cli.app import T


def llm_urls(llm_url: list[str] | None) -> str | list[str] | None:
    """One --llm-url stays a string; several become a list (Settings joins them)."""
    if not llm_url:
        return None
    return llm_url[0] if len(llm_url) == 1 else list(llm_url)


def fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def guarded(action: Callable[[], T]) -> T:
    """Run a command body: known errors become one line and an exit code, never a traceback.
    SIGTERM counts as Ctrl-C: exit 4, and a run in progress is kept resumable."""
    try:
        with sigterm_as_interrupt():
            return action()
    except RuminationError as exc:
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 4)
    raise AssertionError("unreachable")


def figures_line(figures: ReportFigures) -> str:
    f = figures
    return (
        f"figures: {cited(f.citations, f.distinct_sources_cited)}, "
        f"{plural(f.sources_not_cited, 'source')} seen but not cited, "
        f"{plural(f.invalid_ids, 'invalid id')} ({plural(f.citations_removed, 'citation')} "
        f"removed), {f.cited_paragraph_share:.0%} of paragraphs cited, "
        f"{plural(f.words, 'word')} (~{plural(f.tokens_estimate, 'token')})"
    ) + (
        "" if f.citation_accuracy is None else
        f"; citation_accuracy {f.citation_accuracy:.1%} ({f.statements_supported} of "
        f"{f.statements_checked} statements supported, {f.statements_unsupported} unsupported, "
        f"{f.statements_unsure} unsure), effective_citations {f.effective_citations}"
    )


def run_settings(
    llm_url: list[str] | None, model: str | None, backend: str | None, corpus: str | None,
    fmt: str | None, max_turns: int | None, mode: str | None, backend_opt: list[str] | None,
    store: str | None = None, browser: str | None = None, changes: bool | None = None, *,
    max_total_tokens: int | None = None, max_cost: float | None = None, wire: str | None = None,
) -> Settings:
    """Settings from every layer, with the model, backend and budget options shared by
    research, batch, schedule and eval on top."""
    from rumination.settings import Settings

    settings = Settings.load(
        llm_url=llm_urls(llm_url), model=model, backend=backend, corpus=corpus, format=fmt,
        max_turns=max_turns, mode=mode, store_url=store, browser=browser, changes=changes,
        max_total_tokens=max_total_tokens, max_cost=max_cost, wire=wire,
    )
    if settings.changes and not settings.keep_runs:
        raise UsageError("--changes compares a report with the stored runs before it: it "
                         "needs the run store (keep_runs = true)")
    if not backend_opt:
        return settings
    chosen = {**settings.backends.get(settings.backend, {}), **option_pairs(backend_opt)}
    return Settings.load_over(settings, {"backends": {**settings.backends,
                                                      settings.backend: chosen}})


def option_pairs(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        option, sep, value = pair.partition("=")
        if not sep or not option.strip():
            raise UsageError(f"--backend-opt takes OPTION=VALUE, not {pair!r}")
        options[option.strip()] = value
    return options


def trace_handler(path: Path | None) -> Callable[[Event], None] | None:
    """JSONL events appended to `path`, line-buffered so a crash loses nothing written."""
    if path is None:
        return None
    from rumination.progress import JsonlProgress

    try:
        stream = path.open("a", encoding="utf-8", buffering=1)
    except OSError as exc:
        raise UsageError(f"cannot write trace file {path}: {exc.strerror}") from None
    return JsonlProgress(stream)


def checked_format(out: Path | None, fmt: str | None, configured: str) -> str:
    """The format to write, checked, and the --out place checked before any work is done."""
    from rumination.jobs.output import check_writable_file, report_format
    from rumination.reports.render import FILE_FORMATS, check_format

    chosen = check_format(report_format(out, fmt, configured))
    if out is not None:
        check_writable_file(out, "--out")
    elif chosen in FILE_FORMATS and sys.stdout.isatty():
        raise UsageError(f"a {chosen} report is a file, not text for the terminal: give "
                         f"--out FILE.{chosen} (or redirect stdout to a file)")
    return chosen


def write_stdout(content: str | bytes) -> None:
    if isinstance(content, bytes):
        sys.stdout.flush()
        sys.stdout.buffer.write(content)
        sys.stdout.buffer.flush()
    else:
        sys.stdout.write(content)


def deliver(report: Report, out: Path | None, fmt: str, settings: Settings) -> None:
    from rumination.jobs import output
    from rumination.reports.render import FILE_FORMATS, render_report, report_bytes
    from rumination.support.figures import report_counts

    content: str | bytes = (
        report_bytes(report, fmt) if fmt in FILE_FORMATS
        else render_report(report, fmt, citation_style=settings.citation_style)
    )
    if out is None:
        write_stdout(content)
    else:
        try:
            output.write_atomic(out, content)
        except OSError as exc:
            if not settings.keep_runs and isinstance(content, str):
                sys.stdout.write(content)
            raise output.write_failure(out, exc, report.run_id, settings.keep_runs,
                                       printed=isinstance(content, str)) from None
        typer.echo(f"report written to {out}: {counts_phrase(report_counts(report))}", err=True)
    if report.figures is not None:
        typer.echo(figures_line(report.figures), err=True)


def exit_if_uncited(report: Report) -> None:
    """Exit 1, after the report is written, when it is not a cited answer."""
    from rumination.support.figures import uncited_reason

    reason = uncited_reason(report)
    if reason is not None:
        typer.echo(f"warning: no cited answer ({reason}); the report is written, exit 1",
                   err=True)
        raise typer.Exit(1)


def progress_handler(trace: Path | None = None) -> Callable[[Event], None]:
    from rumination.progress import progress_for, tee

    return tee(progress_for(), trace_handler(trace))


def resume_hint(settings: Settings, run_id: str) -> None:
    """After a failed or interrupted run: the resume line, if the store holds it resumable."""
    if not settings.keep_runs:
        return
    try:
        resumable = open_run_store(settings).is_resumable(run_id)
    except RuminationError:
        return
    if resumable:
        typer.echo(f"run {run_id} is saved; continue it with "
                   f"`rumination runs resume {run_id}`", err=True)


def open_run_store(
    settings: Settings | None = None, url: str | None = None, read_only: bool = False
) -> RunStore:
    """The run store of `settings`, else of the configuration with `--store` on top;
    `read_only`: an existing one, opened for reading (a missing store is a UsageError)."""
    from rumination.settings import Settings
    from rumination.store.run_store import open_store

    return open_store(settings or Settings.load(store_url=url), read_only)
