"""The `rumination` command. Thin: every command calls the Python API."""

from __future__ import annotations

import importlib
import shlex
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer

from . import __version__, defaults
from .demo import DEMO_QUESTION
from .errors import RuminationError, UsageError
from .serve import DEFAULT_MODEL_PATH, ServeOptions
from .signals import sigterm_as_interrupt
from .wording import cited, counts_phrase, plural

if TYPE_CHECKING:  # the framework is imported inside each command: `--help` stays fast
    from rumination.search_backends.corpus import FileEvent

    from .events import Event
    from .models import Report, ReportFigures, Turn
    from .settings import Settings
    from .store import RunStore

# rich_markup_mode=None: plain help, so `[pdf]` in a help text stays as written and rich is
# not imported for --help
app = typer.Typer(
    help="Deep research with GLM-Z1-Rumination: a tool loop, search backends, cited reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
T = TypeVar("T")


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"rumination {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_show_version, is_eager=True,
                     help="print the version and exit"),
    ] = None,
) -> None:
    """Deep research with GLM-Z1-Rumination: a tool loop, search backends, cited reports."""


LlmUrl = Annotated[
    list[str] | None,
    typer.Option("--llm-url", metavar="URL",
                 help="OpenAI-compatible base URL (…/v1); repeat for several "
                 f"[default: {defaults.LLM_URL}]"),
]
ModelOpt = Annotated[
    str | None, typer.Option("--model", metavar="NAME",
                             help=f"served model name [default: {defaults.MODEL}]")
]
BackendOpt = Annotated[
    str | None,
    typer.Option("--backend", metavar="NAME",
                 help=f"search backend name [default: {defaults.BACKEND}]"),
]
BackendOptsOpt = Annotated[
    list[str] | None,
    typer.Option("--backend-opt", metavar="OPTION=VALUE",
                 help="OPTION=VALUE for the chosen backend; repeatable"),
]
CorpusOpt = Annotated[
    str | None,
    typer.Option("--corpus", metavar="FILE",
                 help="local corpus database file [default: the demo corpus]"),
]
OutOpt = Annotated[
    Path | None, typer.Option("--out", metavar="FILE",
                              help="write the report here [default: stdout]")
]
FormatOpt = Annotated[
    str | None,
    typer.Option("--format", metavar="FORMAT",
                 help="md, html or json [default: from the --out file name, "
                 f"else {defaults.FORMAT}]"),
]
TurnsOpt = Annotated[
    int | None,
    typer.Option("--max-turns", metavar="N",
                 help=f"tool-call turn budget [default: {defaults.MAX_TURNS}]"),
]
TraceOpt = Annotated[Path | None, typer.Option("--trace", metavar="FILE",
                                               help="write JSONL events here")]
ExecutorOpt = Annotated[
    str, typer.Option("--executor", help="where jobs run: local (this process) or ray")
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option("--ray-address", help="Ray cluster to join (ray://HOST:10001 or HOST:6379) "
                 "[default: RAY_ADDRESS, else a Ray started here]"),
]
WorkersOpt = Annotated[
    int, typer.Option("--workers", help="Ray worker processes, each running --concurrency jobs")
]
StoreOpt = Annotated[
    str | None,
    typer.Option("--store", metavar="URL",
                 help="run store: sqlite:///PATH or postgresql://USER@HOST/DB"),
]
ModeOpt = Annotated[
    str | None,
    typer.Option("--mode", metavar="MODE", help="rumination (the model researches) or write "
                 f"[default: {defaults.MODE}]"),
]


def _urls(llm_url: list[str] | None) -> str | list[str] | None:
    """One --llm-url stays a string; several become a list (Settings joins them)."""
    if not llm_url:
        return None
    return llm_url[0] if len(llm_url) == 1 else list(llm_url)


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _guarded(action: Callable[[], T]) -> T:
    """Run a command body: known errors become one line and an exit code, never a traceback.
    SIGTERM counts as Ctrl-C: exit 4, and a run in progress is kept resumable."""
    try:
        with sigterm_as_interrupt():
            return action()
    except RuminationError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", 4)
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


def _run_settings(
    llm_url: list[str] | None, model: str | None, backend: str | None, corpus: str | None,
    fmt: str | None, max_turns: int | None, mode: str | None, backend_opt: list[str] | None,
    store: str | None = None,
) -> Settings:
    """Settings from every layer, with the model and backend options shared by research,
    batch and schedule on top."""
    from .settings import Settings

    settings = Settings.load(
        llm_url=_urls(llm_url), model=model, backend=backend, corpus=corpus, format=fmt,
        max_turns=max_turns, mode=mode, store_url=store,
    )
    if not backend_opt:
        return settings
    chosen = {**settings.backends.get(settings.backend, {}), **_option_pairs(backend_opt)}
    return Settings.load_over(settings, {"backends": {**settings.backends,
                                                      settings.backend: chosen}})


def _option_pairs(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        option, sep, value = pair.partition("=")
        if not sep or not option.strip():
            raise UsageError(f"--backend-opt takes OPTION=VALUE, not {pair!r}")
        options[option.strip()] = value
    return options


def _trace_handler(path: Path | None) -> Callable[[Event], None] | None:
    """JSONL events appended to `path`, line-buffered so a crash loses nothing written."""
    if path is None:
        return None
    from .progress import JsonlProgress

    try:
        stream = path.open("a", encoding="utf-8", buffering=1)
    except OSError as exc:
        raise UsageError(f"cannot write trace file {path}: {exc.strerror}") from None
    return JsonlProgress(stream)


def _report_format(out: Path | None, fmt: str | None, configured: str) -> str:
    """The format to write, checked, and the --out place checked before any work is done."""
    from rumination.reports.render import check_format

    from .output import check_writable_file, report_format

    chosen = check_format(report_format(out, fmt, configured))
    if out is not None:
        check_writable_file(out, "--out")
    return chosen


def _deliver(report: Report, out: Path | None, fmt: str, settings: Settings) -> None:
    from rumination.reports.render import render_report

    from . import output
    from .figures import report_counts

    text = render_report(report, fmt, citation_style=settings.citation_style)
    if out is None:
        sys.stdout.write(text)
    else:
        try:
            output.write_atomic(out, text)
        except OSError as exc:
            if not settings.keep_runs:
                sys.stdout.write(text)
            raise output.write_failure(out, exc, report.run_id, settings.keep_runs) from None
        typer.echo(f"report written to {out}: {counts_phrase(report_counts(report))}", err=True)
    if report.figures is not None:
        typer.echo(figures_line(report.figures), err=True)


def _progress(trace: Path | None = None) -> Callable[[Event], None]:
    from .progress import progress_for, tee

    return tee(progress_for(), _trace_handler(trace))


def _resume_hint(settings: Settings, run_id: str) -> None:
    """After a failed or interrupted run: the resume line, if the store holds it resumable."""
    if not settings.keep_runs:
        return
    try:
        resumable = _store(settings).is_resumable(run_id)
    except RuminationError:
        return
    if resumable:
        typer.echo(f"run {run_id} is saved; continue it with "
                   f"`rumination runs resume {run_id}`", err=True)


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
    mode: ModeOpt = None,
    store: StoreOpt = None,
    trace: TraceOpt = None,
) -> None:
    """Research QUESTION with the model and write a cited report."""

    def body() -> None:
        from asyncio import CancelledError

        from .api import research as run_research

        settings = _run_settings(
            llm_url, model, backend, corpus, None, max_turns, mode, backend_opt, store
        )
        if settings.corpus and not Path(settings.corpus).is_file():
            raise UsageError(f"corpus not found: {settings.corpus}")
        fmt_ = _report_format(out, fmt, settings.format)
        progress = _progress(trace)
        started: list[str] = []

        def on_event(event: Event) -> None:
            if event.kind == "run_started":
                started.append(str(event.data["run_id"]))
            progress(event)

        try:
            report = run_research(question, settings=settings, on_event=on_event)
        except (RuminationError, KeyboardInterrupt, CancelledError):  # see signals.py
            if started:
                _resume_hint(settings, started[0])
            raise
        _deliver(report, out, fmt_, settings)

    _guarded(body)


@app.command()
def demo(
    question: Annotated[str, typer.Option(help="question to research")] = DEMO_QUESTION,
    out: Annotated[
        Path | None, typer.Option("--out", help="report file [default: demo-report.FORMAT]")
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", metavar="FORMAT",
                     help="md, html or json [default: from the --out file name]"),
    ] = None,
    mode: Annotated[str, typer.Option("--mode", help="rumination or write")] = "rumination",
) -> None:
    """Run a complete job on the bundled corpus with the protocol SIMULATOR (not the model)."""

    def body() -> None:
        import asyncio

        from .demo import run_demo
        from .output import check_writable_file
        from .settings import Settings

        settings = Settings.load(mode=mode)
        fmt_ = _report_format(out, fmt, defaults.FORMAT)
        target = out or Path(f"demo-report.{fmt_}")
        if out is None:
            check_writable_file(target, "--out")
        typer.echo(
            "demo: the model is played by rumination's built-in protocol SIMULATOR "
            "(no LLM, no GPU); search runs on the bundled demo corpus.",
            err=True,
        )
        report = asyncio.run(run_demo(question, settings, on_event=_progress()))
        _deliver(report, target, fmt_, settings)

    _guarded(body)


@app.command()
def index(
    path: Annotated[Path, typer.Argument(help="folder of .md, .txt, .html and .pdf files")],
    db: Annotated[Path, typer.Option("--db", help="corpus database to create or update")],
) -> None:
    """Build or update a local corpus from a folder: each file is split into passages; only
    changed files are re-read. PDFs need pypdf (rumination[pdf])."""

    def body() -> None:
        from rumination.search_backends.corpus import Corpus

        from .documents import SUPPORTED_SUFFIXES

        if not path.is_dir():
            raise UsageError(f"not a folder: {path}")
        new_corpus = not db.exists()
        corpus = Corpus(db, create=True)
        try:
            with _IndexProgress() as show:
                stats = corpus.index_folder(path, on_file=show)
            documents = len(corpus)
            line = stats.summary(documents, corpus.passage_count())
        finally:
            corpus.close()
        if not documents:
            if new_corpus:  # an empty corpus this run made would only hide the mistake
                db.unlink(missing_ok=True)
            found = stats.skipped + sum(stats.unsupported.values())
            raise UsageError(f"{path}: nothing to index: {plural(found, 'file')} found, "
                             f"{stats.skipped} unreadable, {stats.unsupported_line()}; "
                             f"index reads {', '.join(sorted(SUPPORTED_SUFFIXES))}")
        typer.echo(f"{db}: {line}")

    _guarded(body)


class _IndexProgress:
    """Index progress on stderr. On a terminal: a bar, with updated, removed and skipped
    files printed above it. Otherwise one plain line per added, updated, removed or skipped
    file (unchanged files are not mentioned)."""

    def __init__(self, force_terminal: bool | None = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.console = Console(stderr=True, highlight=False, force_terminal=force_terminal)
        self.bar = Progress(
            TextColumn("indexing"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.description}", markup=False, style="dim"),  # file names raw
            console=self.console, transient=True,
        ) if self.console.is_terminal else None
        self.task = self.bar.add_task("", total=None) if self.bar else None

    def __enter__(self) -> _IndexProgress:
        if self.bar:
            self.bar.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.bar:
            self.bar.stop()

    def __call__(self, event: FileEvent) -> None:
        if self.bar is None or self.task is None:
            if event.action != "unchanged":
                typer.echo(event.describe(), err=True)
            return
        self.bar.update(self.task, completed=event.position, total=event.total,
                        description=event.path.name)
        if event.action not in ("unchanged", "added"):
            self.console.print(event.describe(), markup=False)


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
    mode: ModeOpt = None,
    store: StoreOpt = None,
    trace: TraceOpt = None,
) -> None:
    """Run every job in JOBS_FILE; re-running skips finished jobs and resumes interrupted ones.
    The options are defaults for every job (and override what a resumed run stored); a job's
    own fields override them."""

    def body() -> None:
        import asyncio

        from rumination.reports.render import render_report

        from .batch import SUMMARY_FILE, Batch
        from .executors import make_executor
        from .jobs import load_jobs
        from .outdir import OutDir

        jobs = load_jobs(jobs_file)
        settings = _run_settings(
            llm_url, model, backend, corpus, fmt, max_turns, mode, backend_opt, store
        )
        destination = OutDir.open(out_dir)
        runner = Batch(jobs, destination, settings, render_report,
                       executor=make_executor(executor, concurrency, workers, ray_address),
                       on_event=_progress(trace))  # fmt: skip
        results = asyncio.run(runner.run())
        for r in results:
            accuracy = "" if r.citation_accuracy is None else (
                f", citation accuracy {r.citation_accuracy:.0%}"
            )
            counts = cited(r.citations, r.sources_cited)
            detail = r.error or f"{counts}{accuracy}, {r.seconds:.1f} s"
            typer.echo(f"{r.status:9} {r.job}  {detail}")
        failed = sum(r.status == "failed" for r in results)
        typer.echo(f"{len(results) - failed} of {plural(len(results), 'job')} done; summary in "
                   f"{destination.location(SUMMARY_FILE)}", err=True)
        if failed:
            raise typer.Exit(1)

    _guarded(body)


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
    mode: ModeOpt = None,
    store: StoreOpt = None,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
    workers: WorkersOpt = 2,
) -> None:
    """Run batch jobs on cron schedules until stopped (Ctrl-C). The options are defaults
    for every job."""

    def body() -> None:
        import asyncio

        from rumination.reports.render import render_report

        from .batch import Batch
        from .executors import make_executor
        from .jobs import load_jobs
        from .outdir import OutDir
        from .schedule import Schedule, Scheduler, load_schedules

        make_executor(executor, 1, workers, ray_address)  # a bad choice is reported now
        schedules = load_schedules(schedules_file)
        for item in schedules:
            load_jobs(item.jobs)  # a bad jobs file is reported now, not at 6 a.m. on Monday
        settings = _run_settings(
            llm_url, model, backend, corpus, fmt, max_turns, mode, backend_opt, store
        )
        progress = _progress()

        async def run_batch(item: Schedule, out_dir: OutDir) -> None:
            batch = Batch(load_jobs(item.jobs), out_dir, settings, render_report,
                          executor=make_executor(executor, item.concurrency, workers,
                                                 ray_address),
                          on_event=progress)  # fmt: skip
            await batch.run()

        scheduler = Scheduler(schedules, run_batch, on_event=progress)
        for item in schedules:
            typer.echo(f"{item.name}: '{item.cron}' -> {item.out_dir}", err=True)
        asyncio.run(scheduler.run_forever())

    _guarded(body)


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

        from rumination.reports.render import render_report

        from .evaluation import load_previous, load_suite, run_eval, summary_table
        from .settings import Settings

        items = load_suite(suite)
        previous = load_previous(compare) if compare is not None else None
        settings = _run_settings(llm_url, model, backend, corpus, None, max_turns, mode,
                                 backend_opt)
        judging = {"judge": judge, "judge_url": judge_url, "judge_model": judge_model}
        settings = Settings.load_over(settings, {k: v for k, v in judging.items() if v})
        results, summary = asyncio.run(run_eval(
            items, out_dir, settings, render_report, concurrency=concurrency,
            previous=previous, on_event=_progress(trace),
        ))
        typer.echo(summary_table(summary, previous))
        typer.echo(f"results in {out_dir / 'results.jsonl'}, summary in "
                   f"{out_dir / 'summary.md'} and summary.json", err=True)
        if summary["failed"]:
            raise typer.Exit(1)

    _guarded(body)


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

        from .settings import Settings
        from .verify import load_report, verify_report

        settings = Settings.load(judge=judge, judge_url=judge_url, judge_model=judge_model,
                                 unsupported_citations=unsupported)
        is_file = Path(target).is_file()
        destination = out if out is not None else (Path(target) if is_file else None)
        fmt_ = _report_format(destination, fmt, settings.format)
        store = _store(settings)
        report = load_report(target, store)
        checked = asyncio.run(verify_report(report, store, settings))
        _deliver(checked, destination, fmt_, settings)

    _guarded(body)


runs_app = typer.Typer(help="Inspect, export and resume stored runs.", no_args_is_help=True,
                       rich_markup_mode=None)
app.add_typer(runs_app, name="runs")


def _store(
    settings: Settings | None = None, url: str | None = None, read_only: bool = False
) -> RunStore:
    """The run store of `settings`, else of the configuration with `--store` on top;
    `read_only`: an existing one, opened for reading (a missing store is a UsageError)."""
    from .settings import Settings
    from .store import open_store

    return open_store(settings or Settings.load(store_url=url), read_only)


@runs_app.command("list")
def runs_list(
    limit: Annotated[int, typer.Option(help="most recent N runs")] = 20, store: StoreOpt = None
) -> None:
    """List stored runs, newest first."""

    def body() -> None:
        for r in _store(url=store, read_only=True).list_runs(limit):
            typer.echo(f"{r.run_id}\t{r.status}\t{plural(r.turns, 'turn')}\t{r.created_at}"
                       f"\t{r.question}")

    _guarded(body)


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
        runs = _store(url=store, read_only=True)
        r = runs.get_run(run_id)
        typer.echo(f"run {r.run_id} ({r.status}), model {r.model}, backend {r.backend}")
        typer.echo(f"question: {r.question}")
        for t in runs.turns(run_id):
            typer.echo("\n".join(_turn_lines(t, full)))
        typer.echo(f"sources: {len(runs.sources(run_id))}")
        report = runs.report(run_id)
        if report is not None and report.figures is not None:
            typer.echo(figures_line(report.figures))

    _guarded(body)


@runs_app.command("export")
def runs_export(
    run_id: str,
    out: Annotated[
        Path | None, typer.Option("--out", help="write the export to this file [default: stdout]")
    ] = None,
    report_fmt: Annotated[
        str | None,
        typer.Option("--report", help="md, html or json: export only the run's report, "
                     "in this format (a finished run)"),
    ] = None,
    store: StoreOpt = None,
) -> None:
    """Write everything stored for a run as one JSON document: settings (no API key), every
    turn with its raw text and observation, sources and the report if it finished. With
    --report, only the report, rendered as a file `rumination research --out` would write."""

    def body() -> None:
        from .output import write_atomic
        from .runs import export_report, export_run

        runs = _store(url=store, read_only=True)
        if report_fmt is not None:
            text = export_report(runs, run_id, _report_format(out, report_fmt, report_fmt))
        else:
            if out is not None:
                _report_format(out, None, "json")  # checks the place only
            text = export_run(runs, run_id)
        if out is None:
            sys.stdout.write(text)
        else:
            write_atomic(out, text)

    _guarded(body)


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

        from .agent import Researcher
        from .settings import Settings

        runs = _store(url=store)
        record = runs.get_run(run_id)
        saved = Settings.load_saved(record.settings_json)
        given = {"llm_url": _urls(llm_url), "model": model}
        settings = Settings.load_over(saved, {k: v for k, v in given.items() if v is not None})
        fmt_ = _report_format(out, fmt, settings.format)
        researcher = Researcher(settings, store=runs)
        try:
            report = asyncio.run(researcher.resume(run_id, on_event=_progress()))
        except (RuminationError, KeyboardInterrupt, asyncio.CancelledError):  # see signals.py
            _resume_hint(settings, run_id)
            raise
        _deliver(report, out, fmt_, settings)

    _guarded(body)


@app.command()
def doctor(
    llm_url: Annotated[
        str | None, typer.Option("--llm-url", metavar="URL", help="the server's base URL (…/v1)")
    ] = None,
    model: ModelOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the checks as JSON")] = False,
    turn_tokens: Annotated[
        int, typer.Option("--turn-tokens", help="new tokens allowed for the one real turn")
    ] = 4096,
    skip_turn: Annotated[
        bool, typer.Option("--skip-turn", help="do not generate a real turn")
    ] = False,
) -> None:
    """Check a live server before the first research run: model names, window (YaRN), chat
    template, prefix caching, streaming and one real turn. Exit 1 when a check fails."""
    def body() -> None:
        import json

        from .doctor import diagnose, render_text
        from .settings import Settings

        settings = Settings.load(llm_url=llm_url)
        diagnosis = diagnose(settings.llm_urls[0], model, api_key=settings.api_key,
                             turn_tokens=turn_tokens, skip_turn=skip_turn,
                             temperature=settings.temperature, top_p=settings.top_p)
        typer.echo(json.dumps(diagnosis.as_json(), indent=2) if as_json else render_text(diagnosis))
        if diagnosis.failed:
            raise typer.Exit(1)

    _guarded(body)


@app.command()
def serve(
    model_path: Annotated[
        str, typer.Option("--model-path", help="Hugging Face id or local folder of the weights")
    ] = DEFAULT_MODEL_PATH,
    served_model_name: Annotated[
        str, typer.Option("--served-model-name", help="name clients pass as --model")
    ] = ServeOptions.served_model_name,
    host: Annotated[str, typer.Option(help="address to listen on")] = ServeOptions.host,
    port: Annotated[int, typer.Option(help="port to listen on")] = ServeOptions.port,
    tensor_parallel_size: Annotated[
        int, typer.Option("--tensor-parallel-size", help="GPUs to split the model over")
    ] = ServeOptions.tensor_parallel_size,
    gpu_memory_utilization: Annotated[
        float, typer.Option("--gpu-memory-utilization", help="share of GPU memory vLLM may use")
    ] = ServeOptions.gpu_memory_utilization,
    yarn: Annotated[
        bool, typer.Option("--yarn/--no-yarn", help="YaRN x4: 131072 tokens (else 32768)")
    ] = True,
    vllm_args: Annotated[
        list[str] | None,
        typer.Option("--vllm-args", help='more vllm arguments, e.g. "--dtype bfloat16"'),
    ] = None,
    health_timeout: Annotated[
        float, typer.Option("--health-timeout", help="seconds to wait for /health")
    ] = 1800.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the command and exit")] = False,
) -> None:
    """Start vLLM for the model with YaRN for a 128K window and print the research line."""

    def body() -> None:
        from .serve import build_command, installed_vllm_version, shell_line
        from .serve import serve as run_vllm

        options = ServeOptions(
            model_path=model_path, served_model_name=served_model_name, host=host, port=port,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization, yarn=yarn,
            extra_args=[a for text in vllm_args or [] for a in shlex.split(text)],
        )  # fmt: skip
        if dry_run:
            typer.echo(shell_line(build_command(options, installed_vllm_version())))
            return
        code = run_vllm(options, health_timeout_s=health_timeout,
                        echo=lambda line: typer.echo(line, err=True))  # fmt: skip
        if code:
            raise RuminationError(f"vLLM exited with code {code}")

    _guarded(body)


@app.command()
def extract(
    target: Annotated[
        str,
        typer.Argument(metavar="FILE_OR_URL", help="a .md, .markdown, .txt, .html, .htm, "
                       ".xhtml, .json or .pdf file (PDFs need rumination[pdf]), or an "
                       "http(s) URL"),
    ],
    full: Annotated[bool, typer.Option("--full", help="the whole text, not one window")] = False,
) -> None:
    """Print a page's text exactly as the model would see it: the first window with its
    header (page_window_chars), or all of it with --full. Files are read as `rumination
    index` reads them (same title, same refusals); URLs follow the fetch rules."""

    def body() -> None:
        import asyncio

        from .preview import preview
        from .settings import Settings

        settings = Settings.load()
        sys.stdout.write(asyncio.run(preview(target, settings, full=full)) + "\n")

    _guarded(body)


@app.command()
def api(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8765,
) -> None:
    """Serve research over HTTP: the API (OpenAPI at /docs) and the web page at /. Beyond
    loopback it needs the api_token setting. Needs rumination[api]."""

    def body() -> None:
        from .service import require
        from .settings import Settings

        require("api", "api")
        from .service.server import serve_api

        serve_api(Settings.load(), host, port)

    _guarded(body)


@app.command()
def mcp(
    transport: Annotated[str, typer.Option(help="stdio, or http (streamable HTTP at /mcp)")]
    = "stdio",
    host: Annotated[str, typer.Option(help="address to listen on (http)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on (http)")] = 8766,
) -> None:
    """Serve research as Model Context Protocol tools: research, search_runs, get_report.
    Over http beyond loopback it needs the api_token setting. Needs rumination[mcp]."""

    def body() -> None:
        from .service import require
        from .settings import Settings

        require("mcp", "mcp")
        if transport not in ("stdio", "http"):
            raise UsageError(f"--transport is stdio or http, not {transport!r}")
        from .service.mcp_server import serve_mcp

        serve_mcp(Settings.load(), transport, host, port)

    _guarded(body)


@app.command()
def backends() -> None:
    """List the installed search backends and what each needs."""
    from .backends import available_backends

    for name, lines in available_backends().items():
        typer.echo(f"{name}\t{lines[0]}")
        for line in lines[1:]:
            typer.echo(f"    {line}")


def main(argv: list[str] | None = None) -> NoReturn:
    sys.exit(_exit_code(argv))


def _exit_code(argv: list[str] | None) -> int:
    """Run the command. Click's own errors (a missing argument, an unknown option, a value of
    the wrong type) become one `error:` line, exit 2, like every other bad input."""
    errors = _click_exceptions()
    try:
        code = app(args=argv, prog_name="rumination", standalone_mode=False)
    except getattr(errors, "NoArgsIsHelpError", ()) as exc:  # `rumination`, `rumination runs`
        exc.show()
        return int(exc.exit_code)
    except errors.ClickException as exc:
        context = getattr(exc, "ctx", None)
        hint = f" (see '{context.command_path} --help')" if context is not None else ""
        typer.echo(f"error: {' '.join(exc.format_message().split())}{hint}", err=True)
        return int(exc.exit_code)
    except typer.Abort:  # end of input at a prompt
        typer.echo("error: aborted", err=True)
        return 1
    return code if isinstance(code, int) else 0


def _click_exceptions() -> ModuleType:
    """The exceptions of the click that typer runs on: its own copy in newer typer."""
    try:
        return importlib.import_module("typer._click.exceptions")
    except ImportError:
        return importlib.import_module("click.exceptions")


if __name__ == "__main__":
    main()
