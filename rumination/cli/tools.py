"""`index`, `doctor`, `serve`, `extract`, `backends`: corpora, servers and pages,
without a research run."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rumination.errors import RuminationError, UsageError
from rumination.llm.serve import DEFAULT_MODEL_PATH, ServeOptions
from rumination.wording import plural

if TYPE_CHECKING:  # the framework is imported inside each command: `--help` stays fast
    from rumination.search_backends.corpus import FileEvent
from rumination.cli.app import app
from rumination.cli.common import guarded
from rumination.cli.options import BrowserOpt, ModelOpt


@app.command()
def index(
    path: Annotated[Path, typer.Argument(help="folder of .md, .txt, .html and .pdf files")],
    db: Annotated[Path, typer.Option("--db", help="corpus database to create or update")],
) -> None:
    """Build or update a local corpus from a folder: each file is split into passages; only
    changed files are re-read. PDFs need pypdf (rumination[pdf])."""

    def body() -> None:
        from rumination.reading.documents import SUPPORTED_SUFFIXES
        from rumination.search_backends.corpus import Corpus

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

    guarded(body)


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

        from rumination.llm.doctor import diagnose, render_text
        from rumination.settings import Settings

        settings = Settings.load(llm_url=llm_url)
        diagnosis = diagnose(settings.llm_urls[0], model, api_key=settings.api_key,
                             turn_tokens=turn_tokens, skip_turn=skip_turn,
                             temperature=settings.temperature, top_p=settings.top_p)
        typer.echo(json.dumps(diagnosis.as_json(), indent=2) if as_json else render_text(diagnosis))
        if diagnosis.failed:
            raise typer.Exit(1)

    guarded(body)


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
        from rumination.llm.serve import build_command, installed_vllm_version, shell_line
        from rumination.llm.serve import serve as run_vllm

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

    guarded(body)


@app.command()
def extract(
    target: Annotated[
        str,
        typer.Argument(metavar="FILE_OR_URL", help="a .md, .markdown, .txt, .html, .htm, "
                       ".xhtml, .json or .pdf file (PDFs need rumination[pdf]), or an "
                       "http(s) URL"),
    ],
    full: Annotated[bool, typer.Option("--full", help="the whole text, not one window")] = False,
    browser: BrowserOpt = None,
) -> None:
    """Print a page's text exactly as the model would see it: the first window with its
    header (page_window_chars), or all of it with --full. Files are read as `rumination
    index` reads them (same title, same refusals); URLs follow the fetch rules."""

    def body() -> None:
        import asyncio

        from rumination.agent.preview import preview
        from rumination.settings import Settings

        settings = Settings.load(browser=browser)
        sys.stdout.write(asyncio.run(preview(target, settings, full=full)) + "\n")

    guarded(body)


@app.command()
def backends() -> None:
    """List the installed search backends and what each needs."""
    from rumination.agent.backends import available_backends

    for name, lines in available_backends().items():
        typer.echo(f"{name}\t{lines[0]}")
        for line in lines[1:]:
            typer.echo(f"    {line}")
