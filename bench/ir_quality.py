"""Retrieval quality of the local backend's corpus (SQLite FTS5 bm25) beside plain bm25s.

Reads BEIR-format collections (corpus.jsonl, queries.jsonl, qrels/<split>.tsv), writes each
document as a file with front matter `url: doc://<id>`, indexes the folder with rumination's
Corpus and runs every judged query at limit 100 (passage hits `doc://<id>#...` count as their
document, at its first place). The same data goes through bm25s (its own tokenizer, English
stopwords). Prints, per collection and side by side in one run: nDCG@10 (graded gains, log2
discount), recall@100 (share of the positively judged documents in the first 100), the number
of queries, index time, queries per second and median query latency.

No collection ships with rumination (none may be committed here). By default the SciFact and
Cranfield folders of `../shared/data/ir/` (beside the repository) are read; `--data` (repeatable)
names others. bm25s is optional (`pip install bm25s`); without it its row is skipped with a note.

    python bench/ir_quality.py [--data PATH/TO/scifact ...] [--split test]
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

from rumination.search_backends.corpus import Corpus

K = 10
DEPTH = 100  # recall@DEPTH; every query asks for this many documents
DOC_SCHEME = "doc://"
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


def doc_id(url: str) -> str:
    """The BEIR id behind a hit URL: `doc://<id>` or a passage of it, `doc://<id>#...`."""
    return url.removeprefix(DOC_SCHEME).split("#", 1)[0]


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


def write_documents(docs: Mapping[str, tuple[str, str]], folder: Path) -> None:
    """One Markdown file per document; front matter gives its title and `doc://<id>` URL."""
    for n, (did, (title, text)) in enumerate(docs.items()):
        title_line = f"title: {' '.join(title.split())}\n" if title.strip() else ""
        front = f"---\n{title_line}url: {DOC_SCHEME}{did}\n---\n"
        (folder / f"{n:07d}.md").write_text(front + text + "\n", encoding="utf-8")


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


def run_local(collection: Collection, workdir: Path) -> Result:
    """rumination's Corpus (what the `local` backend searches) over one file per document."""
    folder = workdir / "docs"
    folder.mkdir()
    write_documents(collection.docs, folder)
    started = time.perf_counter()
    corpus = Corpus(workdir / "corpus.db", create=True)
    try:
        corpus.index_folder(folder)
        index_s = time.perf_counter() - started

        def search(query: str) -> list[str]:
            return [doc_id(hit.url) for hit in corpus.search(query, DEPTH)]

        return evaluate("local (FTS5)", search, collection, index_s)
    finally:
        corpus.close()


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
    print(f"{'system':<14} {'nDCG@10':>8} {'R@100':>6} {'queries':>8} {'index s':>8} "
          f"{'queries/s':>10} {'ms p50':>7}")
    for r in results:
        print(f"{r.system:<14} {r.ndcg:>8.4f} {r.recall:>6.3f} {r.queries:>8} {r.index_s:>8.2f} "
              f"{r.queries_per_s:>10.1f} {r.query_ms_p50:>7.2f}")


def default_data() -> list[Path]:
    shared = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ir"
    return [shared / "scifact", shared / "cranfield"]


def run_collection(folder: Path, split: str) -> None:
    collection = load_beir(folder, split)
    print(f"{folder}: {len(collection.docs)} documents, {len(collection.queries)} judged "
          f"queries ({split})")
    with tempfile.TemporaryDirectory() as tmp:
        results = [run_local(collection, Path(tmp))]
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
    args = parser.parse_args(argv)
    folders: list[Path] = args.data or default_data()
    for folder in folders:
        problem = missing_data(folder, args.split)
        if problem:
            print(f"ir_quality: {problem}", file=sys.stderr)
            return 2
    for number, folder in enumerate(folders):
        if number:
            print()
        run_collection(folder, args.split)
    return 0


if __name__ == "__main__":
    sys.exit(main())
