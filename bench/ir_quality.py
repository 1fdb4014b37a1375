"""Retrieval quality of the local backend's corpus, both engines (SQLite FTS5 and Tantivy),
beside plain bm25s.

Reads BEIR-format collections (corpus.jsonl, queries.jsonl, qrels/<split>.tsv), imports
corpus.jsonl into a corpus of each engine exactly as `rumination index corpus.jsonl --db ...
--engine ...` does, and runs every judged query at limit 100 (a document counts at the place
of its best passage; ids are the records' own, as `rumination search --trec` prints them). The
same data goes through bm25s (its own tokenizer, English stopwords). Prints, per collection
and side by side in one run: nDCG@10 (graded gains, log2 discount), recall@100 (share of the
positively judged documents in the first 100), the number of queries, index time, queries per
second and median query latency.

`--score RUN` instead scores a TREC run file (`rumination search --queries queries.jsonl
--trec -n 100`) against the collection's qrels with the same measures.

No collection ships with rumination (none may be committed here). By default the SciFact and
Cranfield folders of `../shared/data/ir/` (beside the repository) are read; `--data` (repeatable)
names others. bm25s is optional (`pip install bm25s`); without it its row is skipped with a note.

    python bench/ir_quality.py [--data PATH/TO/scifact ...] [--split test] [--engine tantivy]
    python bench/ir_quality.py --data PATH/TO/scifact --score run.trec
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rumination.search_backends.engines.open import ENGINES, open_corpus
from rumination.search_backends.importers.jsonl import JsonlSource
from rumination.search_backends.importers.records import import_records

K = 10
DEPTH = 100  # recall@DEPTH; every query asks for this many documents
BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets"


@dataclass(frozen=True)
class Collection:
    docs: dict[str, tuple[str, str]]  # doc id -> (title, text)
    queries: dict[str, str]  # judged queries only: query id -> text
    qrels: dict[str, dict[str, int]]  # query id -> doc id -> graded relevance


@dataclass(frozen=True)
class Result:
    system: str
    ndcg: float
    recall: float
    queries: int
    index_s: float
    queries_per_s: float
    query_ms_p50: float


Search = Callable[[str], list[str]]  # query text -> doc ids, best first


def ndcg_at_k(ranked: Sequence[str], gains: Mapping[str, int], k: int = K) -> float:
    """nDCG@k of one ranking: sum of gain / log2(rank + 1) over the first k documents (a
    document listed again counts at its first place only), divided by the same sum for the
    ideal ranking of the judged gains. Gains of 0 or less count as 0; 0.0 if none is positive."""
    ranked = first_occurrences(ranked)[:k]
    dcg = sum(max(gains.get(doc, 0), 0) / math.log2(i + 2) for i, doc in enumerate(ranked))
    ideal = sorted((g for g in gains.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at_k(ranked: Sequence[str], gains: Mapping[str, int], k: int = DEPTH) -> float:
    """Share of the positively judged documents found in the first k (0.0 if none is)."""
    relevant = {doc for doc, gain in gains.items() if gain > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(first_occurrences(ranked)[:k])) / len(relevant)


def first_occurrences(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


# ---- data ------------------------------------------------------------------------------------


def missing_data(folder: Path, split: str) -> str | None:
    """A one-line message saying what to download when `folder` holds no BEIR collection."""
    needed = ["corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv"]
    absent = [name for name in needed if not (folder / name).is_file()]
    if not absent:
        return None
    return (
        f"no BEIR collection at {folder} (missing {', '.join(absent)}): download BEIR SciFact, "
        f"{BEIR_URL}/scifact.zip (claims CC BY 4.0, abstracts ODC-By 1.0), or BEIR NFCorpus, "
        f"{BEIR_URL}/nfcorpus.zip (research data, see its homepage's terms), run "
        f"`unzip scifact.zip -d {folder.parent}` and pass the unpacked folder as --data "
        "(keep it out of the repository)"
    )


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def _qrels(path: Path) -> dict[str, dict[str, int]]:
    judged: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as rows:
        for row in csv.reader(rows, delimiter="\t"):
            if len(row) < 3 or row[0] == "query-id":
                continue
            judged.setdefault(row[0], {})[row[1]] = int(row[2])
    return judged


def load_beir(folder: Path, split: str = "test") -> Collection:
    """The collection in `folder`, keeping the queries with at least one positive judgment."""
    rows = _jsonl(folder / "corpus.jsonl")
    docs = {d["_id"]: (d.get("title") or "", d.get("text") or "") for d in rows}
    qrels = _qrels(folder / "qrels" / f"{split}.tsv")
    texts = {q["_id"]: q["text"] for q in _jsonl(folder / "queries.jsonl")}
    queries = {
        qid: texts[qid] for qid, judged in qrels.items()
        if qid in texts and any(g > 0 for g in judged.values())
    }
    return Collection(docs, queries, {qid: qrels[qid] for qid in queries})


# ---- systems ---------------------------------------------------------------------------------


def evaluate(system: str, search: Search, collection: Collection, index_s: float) -> Result:
    """Runs every query once (DEPTH documents), timing each; mean nDCG@10 and recall@DEPTH."""
    ndcgs: list[float] = []
    recalls: list[float] = []
    millis: list[float] = []
    for qid, text in collection.queries.items():
        started = time.perf_counter()
        ranked = search(text)
        millis.append((time.perf_counter() - started) * 1000)
        ndcgs.append(ndcg_at_k(ranked, collection.qrels[qid]))
        recalls.append(recall_at_k(ranked, collection.qrels[qid]))
    if not ndcgs:
        return Result(system, 0.0, 0.0, 0, index_s, 0.0, 0.0)
    return Result(system, statistics.fmean(ndcgs), statistics.fmean(recalls), len(ndcgs),
                  index_s, 1000 * len(millis) / sum(millis), statistics.median(millis))


def run_local(folder: Path, collection: Collection, workdir: Path, engine: str) -> Result:
    """rumination's corpus (what the `local` backend searches), imported from corpus.jsonl."""
    started = time.perf_counter()
    corpus = open_corpus(workdir / f"corpus-{engine}", engine=engine, create=True)
    try:
        import_records(corpus, JsonlSource(folder / "corpus.jsonl"))
        index_s = time.perf_counter() - started

        def search(query: str) -> list[str]:
            return [ranked.doc_id for ranked in corpus.ranked(query, DEPTH)]

        return evaluate(f"local ({engine})", search, collection, index_s)
    finally:
        corpus.close()


def score_run(run: Path, collection: Collection) -> Result:
    """A TREC run file's nDCG@10 and recall@100 over the collection's judged queries (a
    judged query the run does not answer counts as 0)."""
    ranked: dict[str, list[tuple[int, str]]] = {}
    with run.open(encoding="utf-8") as lines:
        for line in lines:
            qid, _, docid, rank, *_ = line.split()
            ranked.setdefault(qid, []).append((int(rank), docid))
    runs = {qid: [doc for _, doc in sorted(rows)] for qid, rows in ranked.items()}
    ndcgs = [ndcg_at_k(runs.get(qid, []), judged) for qid, judged in collection.qrels.items()]
    recalls = [recall_at_k(runs.get(qid, []), judged)
               for qid, judged in collection.qrels.items()]
    return Result(run.name, statistics.fmean(ndcgs), statistics.fmean(recalls), len(ndcgs),
                  0.0, 0.0, 0.0)


def run_bm25s(collection: Collection) -> Result | None:
    """Plain bm25s over title + text; None when bm25s is not installed."""
    try:
        import bm25s
    except ImportError:
        return None
    ids = list(collection.docs)
    texts = [f"{title}\n{text}" for title, text in collection.docs.values()]
    started = time.perf_counter()
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False),
                    show_progress=False)
    index_s = time.perf_counter() - started
    k = min(DEPTH, len(ids))

    def search(query: str) -> list[str]:
        tokens = bm25s.tokenize([query], stopwords="en", show_progress=False)
        found, scores = retriever.retrieve(tokens, k=k, show_progress=False)
        return [ids[i] for i, score in zip(found[0], scores[0], strict=True) if score > 0]

    return evaluate("bm25s", search, collection, index_s)


# ---- report ----------------------------------------------------------------------------------


def print_table(results: Sequence[Result]) -> None:
    print(f"{'system':<16} {'nDCG@10':>8} {'R@100':>6} {'queries':>8} {'index s':>8} "
          f"{'queries/s':>10} {'ms p50':>7}")
    for r in results:
        print(f"{r.system:<16} {r.ndcg:>8.4f} {r.recall:>6.3f} {r.queries:>8} {r.index_s:>8.2f} "
              f"{r.queries_per_s:>10.1f} {r.query_ms_p50:>7.2f}")


def default_data() -> list[Path]:
    shared = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ir"
    return [shared / "scifact", shared / "cranfield"]


def run_collection(folder: Path, split: str, engines: Sequence[str]) -> None:
    collection = load_beir(folder, split)
    print(f"{folder}: {len(collection.docs)} documents, {len(collection.queries)} judged "
          f"queries ({split})")
    with tempfile.TemporaryDirectory() as tmp:
        results = [run_local(folder, collection, Path(tmp), engine) for engine in engines]
    baseline = run_bm25s(collection)
    if baseline is not None:
        results.append(baseline)
    print_table(results)
    if baseline is None:
        print("bm25s: not installed, row skipped (pip install bm25s)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, action="append",
                        help="a BEIR-format folder, repeatable (default: SciFact and Cranfield "
                        "in ../shared/data/ir/ beside the repository)")
    parser.add_argument("--split", default="test", help="qrels split (default: test)")
    parser.add_argument("--engine", action="append", choices=ENGINES,
                        help="engine to measure, repeatable (default: both)")
    parser.add_argument("--score", type=Path, metavar="RUN",
                        help="score this TREC run file against the (one) --data collection")
    args = parser.parse_args(argv)
    folders: list[Path] = args.data or default_data()
    for folder in folders:
        problem = missing_data(folder, args.split)
        if problem:
            print(f"ir_quality: {problem}", file=sys.stderr)
            return 2
    if args.score:
        print_table([score_run(args.score, load_beir(folders[0], args.split))])
        return 0
    for number, folder in enumerate(folders):
        if number:
            print()
        run_collection(folder, args.split, args.engine or ENGINES)
    return 0


if __name__ == "__main__":
    sys.exit(main())
