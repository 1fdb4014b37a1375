"""Search runs without a model: queries from a file, answers as a TREC run.

Query files are TSV (`id<TAB>query` per line; a first line `query-id<TAB>…` or `id<TAB>…` is
a header) or JSONL (`_id` or `id`, and `text` or `query`), as BEIR and Pyserini ship them.
A TREC run line is `qid Q0 docid rank score tag`: the docid of a local corpus's hit is the
document's id in its collection (the imported record's id, or the file's path relative to
the indexed folder); other backends have no such id, so their docid is the hit's URL and
the score counts down from the number of hits (trec_eval ranks by score).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path

from rumination.agent.backends import SearchBackend
from rumination.errors import UsageError
from rumination.search_backends.engines.protocol import RankedHit

_HEADER_IDS = {"query-id", "query_id", "qid", "id", "_id"}


def read_queries(path: Path) -> list[tuple[str, str]]:
    """(query id, text) pairs of a TSV or JSONL query file, in file order."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the queries {path} ({exc})") from None
    queries = _jsonl(path, text) if text.lstrip().startswith("{") else _tsv(path, text)
    if not queries:
        raise UsageError(f"{path}: no queries (TSV `id<TAB>query` or JSONL with id and text)")
    return queries


def _tsv(path: Path, text: str) -> list[tuple[str, str]]:
    queries = []
    for number, row in enumerate(csv.reader(text.splitlines(), delimiter="\t",
                                            quoting=csv.QUOTE_NONE), 1):
        if not row or not "".join(row).strip():
            continue
        if len(row) < 2:
            raise UsageError(f"{path} line {number}: expected `id<TAB>query`")
        if number == 1 and row[0].strip().lower() in _HEADER_IDS:
            continue
        queries.append((row[0].strip(), "\t".join(row[1:]).strip()))
    return queries


def _jsonl(path: Path, text: str) -> list[tuple[str, str]]:
    queries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise UsageError(f"{path} line {number}: not JSON ({exc})") from None
        qid = row.get("_id", row.get("id")) if isinstance(row, dict) else None
        query = row.get("text", row.get("query")) if isinstance(row, dict) else None
        if qid is None or not isinstance(query, str):
            raise UsageError(f'{path} line {number}: needs "_id" or "id", and "text" or "query"')
        queries.append((str(qid), query))
    return queries


async def ranked_search(backend: SearchBackend, query: str, limit: int) -> list[RankedHit]:
    """The backend's hits with collection ids and scores: its own where it has them (the
    local backend), else the URL and a score counting down."""
    ranked = getattr(backend, "ranked", None)
    if ranked is not None:
        return list(await ranked(query, limit=limit))
    hits = await backend.search(query, limit=limit)
    return [RankedHit(doc_id=hit.url, score=float(len(hits) - n), hit=hit)
            for n, hit in enumerate(hits)]


def trec_lines(qid: str, hits: Iterable[RankedHit], tag: str) -> list[str]:
    """One TREC run line per hit; spaces in ids would break the format, so they are `_`."""
    return [f"{_token(qid)} Q0 {_token(hit.doc_id)} {rank} {hit.score:.6f} {_token(tag)}"
            for rank, hit in enumerate(hits, 1)]


def hit_json(rank: int, hit: RankedHit) -> dict[str, object]:
    return {"rank": rank, "doc_id": hit.doc_id, "score": round(hit.score, 6),
            "title": hit.hit.title, "url": hit.hit.url, "snippet": hit.hit.snippet}


def _token(value: str) -> str:
    return "_".join(value.split()) or "_"
