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
`search` call beside them, and last a cold pass without the random-read advice that
`engines.random_reads` gives the doc store. Each pass opens the corpus anew; a cold one drops
its files from the page cache first.

    python bench/search_profile.py DIR/jsonl-10000000-seed7 [--queries N] [--no-cold]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from rumination.search_backends.corpus import (
    PASSAGES_PER_HIT,
    best_of_each_document,
    fts_terms,
)
from rumination.search_backends.engines.tantivy_corpus import SNIPPET_CHARS, TantivyCorpus

PHASES = ("terms", "top", "stored", "catalog", "snippets")
Search = Callable[[TantivyCorpus, str, "Clock"], None]


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


def profiled_search(corpus: Any, query: str, clock: Clock, limit: int = 10) -> None:
    """The steps of `TantivyCorpus.ranked` for `query`, each timed; the hits found."""
    import tantivy

    for name in PHASES:  # every phase has a time, 0 when a query ends before it
        with clock.phase(name):
            pass
    with clock.phase("terms"):
        terms = fts_terms(query)
        match = corpus._match(corpus._rarer(terms)) if terms else None
    if match is None:
        return
    with clock.phase("top"):
        best = best_of_each_document(corpus._best_passages(match, limit * PASSAGES_PER_HIT),
                                     limit)
    searcher = match.searcher
    with clock.phase("stored"):
        stored = [searcher.doc(cast(tuple[float, Any], p.detail)[1]) for p in best]
    with clock.phase("catalog"):
        rows = [corpus._catalog_row(passage.document_row, doc["number"][0])
                for passage, doc in zip(best, stored, strict=True)]
    with clock.phase("snippets"):
        generator = tantivy.SnippetGenerator.create(searcher, match.query, corpus._schema_t,
                                                    "body")
        generator.set_max_num_chars(SNIPPET_CHARS)
        for doc in stored:
            generator.snippet_from_doc(doc)
    assert all(row is not None for row in rows)


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


def run(folder: Path, queries: list[str], search: Search, *, cold: bool) -> Clock:
    """`queries` searched on the corpus in `folder`, opened for this pass alone; with `cold`,
    its files dropped from the page cache first (while no process maps them: the kernel keeps
    the pages of a mapped file)."""
    if cold:
        gc.collect()  # the last pass's index objects, and with them their maps
        dropped = drop_from_page_cache(folder)
        print(f"\ndropped {dropped / 2**30:.1f} GiB from the page cache", end="")
    corpus = TantivyCorpus(folder)
    clock = Clock()
    try:
        for query in queries:
            search(corpus, query, clock)
            clock.end_query()
    finally:
        corpus.close()
    return clock


def whole_search(corpus: TantivyCorpus, query: str, clock: Clock) -> None:
    with clock.phase("search"):
        corpus.search(query, 10)


def whole_search_without_advice(corpus: TantivyCorpus, query: str, clock: Clock) -> None:
    """`whole_search` as if `random_reads` were not there: the doc store is read with the
    kernel's read-ahead."""
    # noted as advised, never advised
    corpus._advised_segments = corpus._segments(corpus._index.searcher())
    whole_search(corpus, query, clock)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path, help="a folder kept by bench/index.py --keep")
    parser.add_argument("--queries", type=int, default=None, help="the first N queries only")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold passes")
    args = parser.parse_args()
    queries = json.loads((args.folder / "queries.json").read_text(encoding="utf-8"))
    queries = queries[: args.queries] if args.queries else queries
    corpus_folder = args.folder / "work-tantivy" / "corpus-tantivy"
    corpus = TantivyCorpus(corpus_folder)
    searcher = corpus._index.searcher()
    print(f"{corpus_folder}: {searcher.num_docs:,} passages in {searcher.num_segments} "
          f"segments, {corpus.index_size() / 2**30:.1f} GiB; {len(queries)} queries; "
          f"load average {os.getloadavg()[0]:.1f}")
    corpus.close()
    del corpus, searcher
    for cold in ((True, False) if not args.no_cold else (False,)):
        label = "cold" if cold else "warm"
        report(f"{label}, by phase", run(corpus_folder, queries, profiled_search, cold=cold))
        report(f"{label}, whole search", run(corpus_folder, queries, whole_search, cold=cold))
    if not args.no_cold:
        report("cold, whole search, no random-read advice on the doc store",
               run(corpus_folder, queries, whole_search_without_advice, cold=True))


if __name__ == "__main__":
    main()
