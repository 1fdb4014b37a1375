"""Where a tantivy corpus's search spends its time: the phases of one search timed apart,
on a corpus kept by `python bench/index.py --source jsonl --engine tantivy --keep DIR`.

Phases, as `TantivyCorpus.ranked` runs them for a query at k = 10:
- terms: the query's terms with the common words left out (their document frequencies);
- top: Tantivy's top passages (reading and scoring the postings) and each one's document
  (a fast field), the best passage of each document kept;
- stored: each shown passage's stored fields (number, body), read from the doc store;
- catalog: each shown passage's URL, title and id from the SQLite catalog;
- snippets: the snippet generator and each shown passage's snippet.
Each phase's wall time and this thread's CPU time are printed (p50, p95, mean per query; wall
well above CPU means waiting on the disk), for the queries read cold (every corpus file
dropped from the page cache first, with posix_fadvise) and then again warm, and the whole
`search` call beside them.

    python bench/search_profile.py DIR/jsonl-10000000-seed7 [--queries N] [--no-cold]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rumination.search_backends.corpus import (
    PASSAGES_PER_HIT,
    best_of_each_document,
    fts_terms,
)
from rumination.search_backends.engines.tantivy_corpus import SNIPPET_CHARS, TantivyCorpus

PHASES = ("terms", "top", "stored", "catalog", "snippets")


class Clock:
    """Wall and thread-CPU milliseconds per phase, per query."""

    def __init__(self) -> None:
        self.wall: dict[str, list[float]] = defaultdict(list)
        self.cpu: dict[str, list[float]] = defaultdict(list)
        self._query: dict[str, tuple[float, float]] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            spent_wall, spent_cpu = self._query.get(name, (0.0, 0.0))
            self._query[name] = (spent_wall + time.perf_counter() - wall,
                                 spent_cpu + time.thread_time() - cpu)

    def end_query(self) -> None:
        for name, (wall, cpu) in self._query.items():
            self.wall[name].append(1000 * wall)
            self.cpu[name].append(1000 * cpu)
        self._query.clear()


def profiled_search(corpus: Any, query: str, clock: Clock, limit: int = 10) -> int:
    """The steps of `TantivyCorpus.ranked` for `query`, each timed; the hits found."""
    import tantivy

    for name in PHASES:  # every phase has a time, 0 when a query ends before it
        with clock.phase(name):
            pass
    with clock.phase("terms"):
        terms = fts_terms(query)
        match = corpus._match(corpus._rarer(terms)) if terms else None
    if match is None:
        return 0
    with clock.phase("top"):
        best = best_of_each_document(corpus._best_passages(match, limit * PASSAGES_PER_HIT),
                                     limit)
    searcher = match.searcher
    with clock.phase("stored"):
        stored = [searcher.doc(passage.detail[1]) for passage in best]
    with clock.phase("catalog"):
        rows = [corpus._db.execute(
            "SELECT p.url, p.title, coalesce(d.doc_id, d.path) FROM passages p"
            " JOIN documents d ON d.id = p.document_id"
            " WHERE p.document_id = ? AND p.number = ?",
            (passage.document_row, doc["number"][0])).fetchone()
            for passage, doc in zip(best, stored, strict=True)]
    with clock.phase("snippets"):
        generator = tantivy.SnippetGenerator.create(searcher, match.query, corpus._schema_t,
                                                    "body")
        generator.set_max_num_chars(SNIPPET_CHARS)
        for doc in stored:
            generator.snippet_from_doc(doc)
    return sum(row is not None for row in rows)


def drop_from_page_cache(folder: Path) -> int:
    """Asks the kernel to drop every file of `folder` from its page cache; the bytes asked."""
    total = 0
    for path in folder.rglob("*"):
        if path.is_file():
            descriptor = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(descriptor)
            total += path.stat().st_size
    return total


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def report(label: str, clock: Clock) -> None:
    print(f"\n{label}: ms per query, wall (thread CPU)")
    print(f"{'phase':<9} {'p50':>15} {'p95':>15} {'mean':>15}")
    for name, wall in clock.wall.items():
        cpu = clock.cpu[name]
        cells = [f"{f(wall):7.2f} ({f(cpu):5.1f})" for f in (
            lambda s: percentile(s, 0.5), lambda s: percentile(s, 0.95), statistics.fmean)]
        print(f"{name:<9} " + " ".join(f"{cell:>15}" for cell in cells))


def run(corpus: TantivyCorpus, queries: list[str], search: Callable[[str, Clock], None]
        ) -> Clock:
    clock = Clock()
    for query in queries:
        search(query, clock)
        clock.end_query()
    return clock


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path, help="a folder kept by bench/index.py --keep")
    parser.add_argument("--queries", type=int, default=None, help="the first N queries only")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold pass")
    args = parser.parse_args()
    queries = json.loads((args.folder / "queries.json").read_text(encoding="utf-8"))
    queries = queries[: args.queries] if args.queries else queries
    corpus_folder = args.folder / "work-tantivy" / "corpus-tantivy"
    corpus = TantivyCorpus(corpus_folder)
    searcher = corpus._index.searcher()
    print(f"{corpus_folder}: {searcher.num_docs:,} passages in {searcher.num_segments} "
          f"segments, {corpus.index_size() / 2**30:.1f} GiB; {len(queries)} queries; "
          f"load average {os.getloadavg()[0]:.1f}")

    def phases(query: str, clock: Clock) -> None:
        profiled_search(corpus, query, clock)

    def whole(query: str, clock: Clock) -> None:
        with clock.phase("search"):
            corpus.search(query, 10)

    try:
        if not args.no_cold:
            dropped = drop_from_page_cache(corpus_folder)
            print(f"dropped {dropped / 2**30:.1f} GiB from the page cache")
            report("cold, by phase", run(corpus, queries, phases))
            drop_from_page_cache(corpus_folder)
            report("cold, whole search", run(corpus, queries, whole))
        report("warm, by phase", run(corpus, queries, phases))
        report("warm, whole search", run(corpus, queries, whole))
    finally:
        corpus.close()


if __name__ == "__main__":
    main()
