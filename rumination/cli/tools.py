"""`index`, `doctor`, `serve`, `extract`, `backends`: corpora, servers and pages,
without a research run."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from rumination.cli.app import app
from rumination.cli.common import guarded
from rumination.cli.index_progress import ImportProgressDisplay, _IndexProgress
from rumination.cli.options import BrowserOpt, ModelOpt, WireOpt
from rumination.errors import RuminationError, UsageError
from rumination.llm.serve import DEFAULT_MODEL_PATH, ServeOptions
from rumination.wording import plural


@app.command()
def index(
    source: Annotated[Path, typer.Argument(
        metavar="SOURCE", help="a folder of .md, .txt, .html and .pdf files, a JSONL collection "
        "(.jsonl[.gz|.bz2]) or a Wikipedia XML dump (.xml, .xml.bz2)")],
    db: Annotated[Path, typer.Option(
        "--db", help="corpus to create or update: a SQLite file, or a folder for tantivy")],
    engine: Annotated[str | None, typer.Option(
        "--engine", metavar="ENGINE", help="sqlite or tantivy (rumination[tantivy]) "
        "[default: the corpus's own; sqlite for a new one]")] = None,
) -> None:
    """Build or update a local corpus: files are split into passages, and only changed files
    (or records) are read again. An interrupted import resumes where it stopped. PDFs need
    pypdf (rumination[pdf]), dumps mwparserfromhell (rumination[wikidump])."""

    def body() -> None:
        from rumination.reading.documents import SUPPORTED_SUFFIXES
        from rumination.search_backends.engines.open import engine_advice, open_corpus

        if not source.is_dir():
            _import_collection(source, db, engine)
            return
        new_corpus = not db.exists()
        corpus = open_corpus(db, engine=engine, create=True)
        try:
            with _IndexProgress() as show:
                stats = corpus.index_folder(source, on_file=show)
            documents = len(corpus)
            line = stats.summary(documents, corpus.passage_count())
            hint = engine_advice(corpus)
        finally:
            corpus.close()
        if not documents:
            if new_corpus:  # an empty corpus this run made would only hide the mistake
                _discard(db)
            found = stats.skipped + sum(stats.unsupported.values())
            raise UsageError(f"{source}: nothing to index: {plural(found, 'file')} found, "
                             f"{stats.skipped} unreadable, {stats.unsupported_line()}; "
                             f"index reads {', '.join(sorted(SUPPORTED_SUFFIXES))}")
        typer.echo(f"{db}: {line}")
        if hint:
            typer.echo(hint, err=True)

    guarded(body)


def _import_collection(source: Path, db: Path, engine: str | None) -> None:
    """`rumination index` of a JSONL file or a Wikipedia dump."""
    from rumination.search_backends.engines.open import engine_advice, open_corpus
    from rumination.search_backends.importers.records import import_records
    from rumination.search_backends.importers.sources import source_for

    collection = source_for(source)
    new_corpus = not db.exists()
    corpus = open_corpus(db, engine=engine, create=True)
    documents, problem, hint = 0, None, None
    try:
        with ImportProgressDisplay() as show:
            stats = import_records(corpus, collection, on_progress=show)
        documents = len(corpus)
        line = stats.summary(documents, corpus.passage_count())
        hint = engine_advice(corpus)
    except UsageError as exc:  # the file is not what its name says
        problem = exc
    finally:
        corpus.close()
    if not documents and new_corpus:  # an interrupted import keeps what it committed
        _discard(db)
    if problem is not None:
        raise problem
    if not documents:
        raise UsageError(f"{source}: no document to index ({stats.skipped} records skipped)")
    typer.echo(f"{db}: {line}")
    if hint:
        typer.echo(hint, err=True)


def _discard(db: Path) -> None:
    """Delete a corpus this run created and left empty: a SQLite file or a tantivy folder."""
    import shutil

    if db.is_dir():
        shutil.rmtree(db, ignore_errors=True)
    else:
        db.unlink(missing_ok=True)


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
    wire: WireOpt = None,
) -> None:
    """Check a live server before the first research run: model names, window (YaRN), chat
    template, prefix caching, streaming and one real turn. Exit 1 when a check fails."""
    def body() -> None:
        import json

        from rumination.llm.doctor import diagnose, render_text
        from rumination.settings import Settings

        settings = Settings.load(llm_url=llm_url, wire=wire)
        diagnosis = diagnose(settings.llm_urls[0], model, api_key=settings.api_key,
                             turn_tokens=turn_tokens, skip_turn=skip_turn,
                             temperature=settings.temperature, top_p=settings.top_p,
                             wire=settings.wire)
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
    engine: Annotated[
        str, typer.Option("--engine", help="vllm (started here), or sglang, llama.cpp, ollama "
                          "(with --dry-run: the launch line, for Ollama a Modelfile)")
    ] = "vllm",
    parallel: Annotated[
        int, typer.Option("--parallel", min=1, help="llama.cpp: slots (-np), each with the "
                          "whole window")
    ] = 1,
) -> None:
    """Start vLLM for the model with YaRN for a 128K window and print the research line;
    with --engine, the launch line for SGLang, llama.cpp or Ollama."""

    def body() -> None:
        from rumination.llm.serve import build_command, installed_vllm_version, shell_line
        from rumination.llm.serve import serve as run_vllm

        if engine != "vllm":
            typer.echo(engine_launch(engine, model_path, served_model_name, host, port,
                                     yarn, tensor_parallel_size, parallel, dry_run))
            return

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


def engine_launch(engine: str, model_path: str, name: str, host: str, port: int, yarn: bool,
                  tensor_parallel_size: int, parallel: int, dry_run: bool) -> str:
    """The launch line (or Modelfile) of a non-vLLM engine; only printed, never started."""
    from rumination.llm.engines import (
        ENGINES,
        EngineLaunch,
        llama_server_command,
        ollama_modelfile,
        sglang_command,
    )
    from rumination.llm.serve import shell_line

    if engine not in ENGINES:
        raise UsageError(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if not dry_run:
        raise UsageError(f"rumination starts only vLLM itself; for {engine}, print the launch "
                         "line with --dry-run and run it")
    launch = EngineLaunch(model_path, name, host, port, yarn, tensor_parallel_size, parallel)
    if engine == "ollama":
        return ollama_modelfile(launch).rstrip("\n")
    command = sglang_command(launch) if engine == "sglang" else llama_server_command(launch)
    return shell_line(command)


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
