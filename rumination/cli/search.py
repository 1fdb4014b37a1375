"""`search`: try a corpus or any backend without a model, one query or a file of them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rumination.cli.app import app
from rumination.cli.common import guarded, run_settings
from rumination.cli.options import BackendOpt, BackendOptsOpt, CorpusOpt
from rumination.errors import UsageError

if TYPE_CHECKING:  # the framework is imported inside each command: `--help` stays fast
    from rumination.agent.backends import SearchBackend


@app.command()
def search(
    query: Annotated[str | None, typer.Argument(help="what to search for")] = None,
    corpus: CorpusOpt = None,
    backend: BackendOpt = None,
    backend_opt: BackendOptsOpt = None,
    limit: Annotated[int, typer.Option("-n", "--limit", min=1, help="hits per query")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="hits as JSON")] = False,
    queries: Annotated[Path | None, typer.Option(
        "--queries", metavar="FILE",
        help="TSV `id<TAB>query` or JSONL (id, text) queries instead of QUERY")] = None,
    trec: Annotated[bool, typer.Option(
        "--trec", help="with --queries: a TREC run, `qid Q0 docid rank score tag`")] = False,
    tag: Annotated[str, typer.Option("--tag", help="the TREC run's tag")] = "rumination",
    out: Annotated[Path | None, typer.Option(
        "--out", metavar="FILE", help="write the results here [default: stdout]")] = None,
) -> None:
    """Search a corpus (or any backend) the way the model would, without a model: the hits of
    one QUERY, or of every query in --queries (as JSON lines, or a TREC run with --trec)."""

    def body() -> None:
        import asyncio

        from rumination.agent.backends import create_backend
        from rumination.search_backends.trec import read_queries

        if (query is None) == (queries is None):
            raise UsageError("give one QUERY or --queries FILE")
        if trec and queries is None:
            raise UsageError("--trec writes a run for --queries FILE")
        asked = read_queries(queries) if queries else [("1", query or "")]
        settings = run_settings(None, None, backend, corpus, None, None, None, backend_opt)
        chosen = create_backend(settings)
        lines = asyncio.run(_answer(chosen, asked, limit, as_json, trec, tag, queries is None))
        text = "\n".join(lines) + ("\n" if lines else "")
        if out is None:
            sys.stdout.write(text)
        else:
            out.write_text(text, encoding="utf-8")

    guarded(body)


async def _answer(
    backend: SearchBackend, asked: list[tuple[str, str]], limit: int, as_json: bool, trec: bool,
    tag: str, single: bool,
) -> list[str]:
    import json

    from rumination.search_backends.trec import hit_json, ranked_search, trec_lines

    lines: list[str] = []
    try:
        for qid, text in asked:
            hits = await ranked_search(backend, text, limit)
            if trec:
                lines += trec_lines(qid, hits, tag)
            elif single and as_json:
                lines.append(json.dumps([hit_json(n, h) for n, h in enumerate(hits, 1)],
                                        ensure_ascii=False, indent=2))
            elif single:
                lines += [f"{n}. {h.hit.title}\n   {h.hit.url}\n   {h.hit.snippet}"
                          for n, h in enumerate(hits, 1)] or ["no hits"]
            else:
                lines.append(json.dumps({"query_id": qid, "query": text, "hits": [
                    hit_json(n, h) for n, h in enumerate(hits, 1)]}, ensure_ascii=False))
    finally:
        await backend.aclose()
    return lines
