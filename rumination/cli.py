"""The `rumination` command. Thin: every command calls the Python API."""

from __future__ import annotations

import asyncio
import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from rumination.reports.render import check_format, render_report

from .agent import Researcher
from .backends import available_backends
from .batch import SUMMARY_FILE, Batch
from .demo import DEMO_QUESTION, run_demo
from .errors import RuminationError, UsageError
from .events import Event
from .jobs import load_jobs
from .models import Report, ReportFigures
from .outdir import OutDir
from .output import write_atomic
from .preview import preview
from .progress import JsonlProgress, progress_for, tee
from .schedule import Schedule, Scheduler, load_schedules
from .serve import (
    DEFAULT_MODEL_PATH,
    ServeOptions,
    build_command,
    installed_vllm_version,
    shell_line,
)
from .serve import serve as run_vllm
from .settings import Settings
from .store import RunStore, default_store_path
from .writer import run_write

if TYPE_CHECKING:
    from rumination.search_backends.corpus import FileEvent

app = typer.Typer(
    help="Deep research with GLM-Z1-Rumination: a tool loop, search backends, cited reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
T = TypeVar("T")

LlmUrl = Annotated[
    list[str] | None,
    typer.Option("--llm-url", help="OpenAI-compatible base URL (…/v1); repeat for several"),
]
ModelOpt = Annotated[str | None, typer.Option("--model", help="served model name")]
BackendOpt = Annotated[str | None, typer.Option("--backend", help="search backend name")]
BackendOptsOpt = Annotated[
    list[str] | None,
    typer.Option("--backend-opt", help="OPTION=VALUE for the chosen backend; repeatable"),
]
CorpusOpt = Annotated[str | None, typer.Option("--corpus", help="local corpus database file")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="write the report here")]
FormatOpt = Annotated[str | None, typer.Option("--format", help="md, html or json")]
TurnsOpt = Annotated[int | None, typer.Option("--max-turns", help="tool-call turn budget")]
TraceOpt = Annotated[Path | None, typer.Option("--trace", help="write JSONL events here")]
ModeOpt = Annotated[
    str | None, typer.Option("--mode", help="rumination (the model researches) or write")
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
    """Run a command body: known errors become one line and an exit code, never a traceback."""
    try:
        return action()
    except RuminationError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", 4)
    raise AssertionError("unreachable")


def _check_format(fmt: str) -> str:
    return check_format(fmt)


def figures_line(figures: ReportFigures) -> str:
    f = figures
    return (
        f"figures: {f.citations} citations of {f.distinct_sources_cited} sources, "
        f"{f.sources_not_cited} sources seen but not cited, {f.invalid_ids} invalid ids "
        f"({f.citations_removed} citations removed), {f.cited_paragraph_share:.0%} of paragraphs "
        f"cited, {f.words} words (~{f.tokens_estimate} tokens)"
    )


def _run_settings(
    llm_url: list[str] | None, model: str | None, backend: str | None, corpus: str | None,
    fmt: str | None, max_turns: int | None, mode: str | None, backend_opt: list[str] | None,
) -> Settings:
    """Settings from every layer, with the model and backend options shared by research,
    batch and schedule on top."""
    settings = Settings.load(
        llm_url=_urls(llm_url), model=model, backend=backend, corpus=corpus, format=fmt,
        max_turns=max_turns, mode=mode,
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


def _trace_handler(path: Path | None) -> JsonlProgress | None:
    """JSONL events appended to `path`, line-buffered so a crash loses nothing written."""
    if path is None:
        return None
    try:
        stream = path.open("a", encoding="utf-8", buffering=1)
    except OSError as exc:
        raise UsageError(f"cannot write trace file {path}: {exc.strerror}") from None
    return JsonlProgress(stream)


def _deliver(report: Report, out: Path | None, fmt: str, citation_style: str = "numbered") -> None:
    text = render_report(report, fmt, citation_style=citation_style)
    if out is None:
        sys.stdout.write(text)
    else:
        write_atomic(out, text)
        typer.echo(
            f"report written to {out} ({len(report.citations)} citations, "
            f"{len(report.sources)} sources seen, {len(report.warnings)} warnings)",
            err=True,
        )
    if report.figures is not None:
        typer.echo(figures_line(report.figures), err=True)


@app.command()
def research(
    question: Annotated[str, typer.Argument(help="the research question")],
    llm_url: LlmUrl = None,
    model: ModelOpt = None,
    backend: BackendOpt = None,
    backend_opt: BackendOptsOpt = None,
    corpus: CorpusOpt = None,
    out: OutOpt = None,
    fmt: FormatOpt = None,
    max_turns: TurnsOpt = None,
    mode: ModeOpt = None,
    trace: TraceOpt = None,
) -> None:
    """Research QUESTION with the model and write a cited report."""

    def body() -> None:
        settings = _run_settings(
            llm_url, model, backend, corpus, fmt, max_turns, mode, backend_opt
        )
        if settings.corpus and not Path(settings.corpus).is_file():
            raise UsageError(f"corpus not found: {settings.corpus}")
        fmt_ = _check_format(settings.format)
        progress = tee(progress_for(), _trace_handler(trace))
        started: list[str] = []

        def on_event(event: Event) -> None:
            if event.kind == "run_started":
                started.append(str(event.data["run_id"]))
            progress(event)

        try:
            if settings.mode == "write":
                report = asyncio.run(run_write(question, settings, on_event=on_event))
            else:
                report = asyncio.run(Researcher(settings).run(question, on_event=on_event))
        except (RuminationError, KeyboardInterrupt):
            if started and settings.keep_runs and settings.mode == "rumination":
                typer.echo(f"run {started[0]} is saved; continue it with "
                           f"`rumination runs resume {started[0]}`", err=True)
            raise
        _deliver(report, out, fmt_, settings.citation_style)

    _guarded(body)


@app.command()
def demo(
    question: Annotated[str, typer.Option(help="question to research")] = DEMO_QUESTION,
    out: Annotated[Path, typer.Option("--out", help="report file")] = Path("demo-report.md"),
    fmt: Annotated[str, typer.Option("--format", help="md, html or json")] = "md",
    mode: Annotated[str, typer.Option("--mode", help="rumination or write")] = "rumination",
) -> None:
    """Run a complete job on the bundled corpus with the protocol SIMULATOR (not the model)."""

    def body() -> None:
        fmt_ = _check_format(fmt)
        settings = Settings.load(mode=mode)
        typer.echo(
            "demo: the model is played by rumination's built-in protocol SIMULATOR "
            "(no LLM, no GPU); search runs on the bundled demo corpus.",
            err=True,
        )
        report = asyncio.run(run_demo(question, settings, on_event=progress_for()))
        _deliver(report, out, fmt_, settings.citation_style)

    _guarded(body)


@app.command()
def index(
    path: Annotated[Path, typer.Argument(help="folder of .md, .txt, .html and .pdf files")],
    db: Annotated[Path, typer.Option("--db", help="corpus database to create or update")],
) -> None:
    """Build or update a local corpus from a folder: each file is split into passages; only
    changed files are re-read. PDFs need pypdf (rumination[pdf])."""
    from rumination.search_backends.corpus import Corpus

    def body() -> None:
        if not path.is_dir():
            raise UsageError(f"not a folder: {path}")
        corpus = Corpus(db, create=True)
        try:
            with _IndexProgress() as show:
                stats = corpus.index_folder(path, on_file=show)
            line = stats.summary(len(corpus), corpus.passage_count())
        finally:
            corpus.close()
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
    jobs_file: Annotated[Path, typer.Argument(help="jobs file: YAML list or JSONL")],
    out_dir: Annotated[
        str, typer.Option("--out-dir", help="folder or fsspec URL (s3://bucket/reports) for "
                          "reports and summary")
    ],
    concurrency: Annotated[int, typer.Option(help="jobs running at once")] = 4,
    llm_url: LlmUrl = None,
    model: ModelOpt = None,
    backend: BackendOpt = None,
    backend_opt: BackendOptsOpt = None,
    corpus: CorpusOpt = None,
    fmt: FormatOpt = None,
    max_turns: TurnsOpt = None,
    mode: ModeOpt = None,
    trace: TraceOpt = None,
) -> None:
    """Run every job in JOBS_FILE; re-running skips finished jobs and resumes interrupted ones.
    The options are defaults for every job; a job's own fields override them."""

    def body() -> None:
        jobs = load_jobs(jobs_file)
        settings = _run_settings(
            llm_url, model, backend, corpus, fmt, max_turns, mode, backend_opt
        )
        destination = OutDir.open(out_dir)
        runner = Batch(jobs, destination, settings, render_report, concurrency=concurrency,
                       on_event=tee(progress_for(), _trace_handler(trace)))
        results = asyncio.run(runner.run())
        for r in results:
            detail = r.error or f"{r.citations} citations, {r.seconds:.1f} s"
            typer.echo(f"{r.status:9} {r.job}  {detail}")
        failed = sum(r.status == "failed" for r in results)
        typer.echo(f"{len(results) - failed} of {len(results)} jobs done; summary in "
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
) -> None:
    """Run batch jobs on cron schedules until stopped (Ctrl-C). The options are defaults
    for every job."""

    def body() -> None:
        schedules = load_schedules(schedules_file)
        for item in schedules:
            load_jobs(item.jobs)  # a bad jobs file is reported now, not at 6 a.m. on Monday
        settings = _run_settings(
            llm_url, model, backend, corpus, fmt, max_turns, mode, backend_opt
        )
        progress = progress_for()

        async def run_batch(item: Schedule, out_dir: OutDir) -> None:
            batch = Batch(load_jobs(item.jobs), out_dir, settings, render_report,
                          concurrency=item.concurrency, on_event=progress)
            await batch.run()

        scheduler = Scheduler(schedules, run_batch, on_event=progress)
        for item in schedules:
            typer.echo(f"{item.name}: '{item.cron}' -> {item.out_dir}", err=True)
        asyncio.run(scheduler.run_forever())

    _guarded(body)


runs_app = typer.Typer(help="Inspect and resume stored runs.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")


def _store() -> RunStore:
    settings = Settings.load()
    return RunStore(settings.run_store or default_store_path())


@runs_app.command("list")
def runs_list(limit: Annotated[int, typer.Option(help="most recent N runs")] = 20) -> None:
    """List stored runs, newest first."""

    def body() -> None:
        for r in _store().list_runs(limit):
            typer.echo(f"{r.run_id}\t{r.status}\t{r.turns} turns\t{r.created_at}\t{r.question}")

    _guarded(body)


@runs_app.command("show")
def runs_show(run_id: str) -> None:
    """Show a run's turns: each tool call and the size of what it returned."""

    def body() -> None:
        store = _store()
        r = store.get_run(run_id)
        typer.echo(f"run {r.run_id} ({r.status}), model {r.model}, backend {r.backend}")
        typer.echo(f"question: {r.question}")
        for t in store.turns(run_id):
            call = t.tool_call.model_dump_json() if t.tool_call else t.protocol_error or "answer"
            size = len(t.observation or "")
            typer.echo(f"  turn {t.index + 1}: {call} -> {size} chars")
        typer.echo(f"sources: {len(store.sources(run_id))}")

    _guarded(body)


@runs_app.command("export")
def runs_export(run_id: str, out: OutOpt = None) -> None:
    """Write everything stored for a run as one JSON document: settings (no API key), every
    turn with its raw text and observation, sources and the report if it finished."""

    def body() -> None:
        store = _store()
        record = store.get_run(run_id)
        report = store.report(run_id)
        document = {
            "run_id": record.run_id, "status": record.status, "question": record.question,
            "model": record.model, "backend": record.backend, "mode": record.mode,
            "created_at": record.created_at, "updated_at": record.updated_at,
            "settings": json.loads(record.settings_json),
            "turns": [t.model_dump(mode="json") for t in store.turns(run_id)],
            "sources": [s.model_dump(mode="json") for s in store.sources(run_id)],
            "report": report.model_dump(mode="json") if report else None,
        }
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        if out is None:
            sys.stdout.write(text)
        else:
            write_atomic(out, text)

    _guarded(body)


@runs_app.command("resume")
def runs_resume(run_id: str, out: OutOpt = None, fmt: FormatOpt = None) -> None:
    """Continue an interrupted run from its last committed turn."""

    def body() -> None:
        store = _store()
        record = store.get_run(run_id)
        settings = Settings.load_saved(record.settings_json)
        fmt_ = _check_format(fmt or settings.format)
        researcher = Researcher(settings, store=store)
        report = asyncio.run(researcher.resume(run_id, on_event=progress_for()))
        _deliver(report, out, fmt_, settings.citation_style)

    _guarded(body)


@app.command()
def doctor(
    llm_url: Annotated[
        str | None, typer.Option("--llm-url", help="the server's base URL (…/v1)")
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
    from .doctor import diagnose, render_text

    def body() -> None:
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
        str, typer.Argument(metavar="FILE_OR_URL", help="an .html, .md or .txt file, or a URL")
    ],
    full: Annotated[bool, typer.Option("--full", help="the whole text, not one window")] = False,
) -> None:
    """Print a page's text exactly as the model would see it: the first window with its
    header (page_window_chars), or all of it with --full. URLs follow the fetch rules."""

    def body() -> None:
        settings = Settings.load()
        sys.stdout.write(asyncio.run(preview(target, settings, full=full)) + "\n")

    _guarded(body)


@app.command()
def backends() -> None:
    """List the installed search backends and what each needs."""
    for name, lines in available_backends().items():
        typer.echo(f"{name}\t{lines[0]}")
        for line in lines[1:]:
            typer.echo(f"    {line}")


def main(argv: list[str] | None = None) -> Any:
    return app(args=argv, prog_name="rumination")


if __name__ == "__main__":
    main()
