"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rumination import defaults

if TYPE_CHECKING:  # the framework is imported inside each command: `--help` stays fast
    pass



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
    typer.Option("--corpus", metavar="PATH",
                 help="local corpus: a SQLite file or a tantivy folder [default: the demo "
                 "corpus]"),
]
OutOpt = Annotated[
    Path | None, typer.Option("--out", metavar="FILE",
                              help="write the report here [default: stdout]")
]
FormatOpt = Annotated[
    str | None,
    typer.Option("--format", metavar="FORMAT",
                 help="md, html, json, pdf or docx [default: from the --out file name, "
                 f"else {defaults.FORMAT}]"),
]
ChangesOpt = Annotated[
    bool, typer.Option("--changes", help="open the report with what changed since the last "
                       "run of the same job (or question)")
]
TurnsOpt = Annotated[
    int | None,
    typer.Option("--max-turns", metavar="N",
                 help=f"tool-call turn budget [default: {defaults.MAX_TURNS}]"),
]
TokenBudgetOpt = Annotated[
    int | None,
    typer.Option("--max-total-tokens", metavar="N",
                 help="prompt + completion tokens of the research before the answer is asked "
                 "for [default: no limit]"),
]
CostBudgetOpt = Annotated[
    float | None,
    typer.Option("--max-cost", metavar="AMOUNT",
                 help="research cost at the price_per_1k_* settings before the answer is asked "
                 "for [default: no limit]"),
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
BrowserOpt = Annotated[
    str | None,
    typer.Option("--browser", metavar="WHEN",
                 help="render pages in headless Chromium: auto (pages that look like a script "
                 "shell), always (every HTML page) or never [default: auto]"),
]
WireOpt = Annotated[
    str | None,
    typer.Option("--wire", metavar="WIRE",
                 help="how requests reach the model: chat, completions (the model's template "
                 "rendered by rumination) or auto (chat where the server renders the model's "
                 "template and takes its roles) [default: auto]"),
]
ModeOpt = Annotated[
    str | None,
    typer.Option("--mode", metavar="MODE", help="rumination (the model researches) or write "
                 f"[default: {defaults.MODE}]"),
]
