"""Records' texts made plain in worker processes while the import goes on.

Turning wikitext into plain text takes two thirds of a Wikipedia import done in one process
(docs/benchmarks.md). `converted_ahead` reads records a window ahead of the import and hands
the texts of the new and changed ones to a pool of processes, so that the conversion of the
next records runs beside the indexing of this one. The import still takes the records in
their order and decides again for each whether it is unchanged; a conversion done ahead for
a record it then finds unchanged is only wasted work. Records at or before the place a
resumed import starts from are never converted.

A converter must be picklable (a module-level function): others, and machines with one CPU,
convert in the importing process as before.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Converter = Callable[[str], str]

WINDOW_PER_WORKER = 32  # records read ahead per worker process


def conversion_workers() -> int:
    """Worker processes for conversion: one per CPU, since the importing process waits on
    them much of the time (on 2 CPUs, 2 workers imported 1.84-1.95x as fast as none, 1
    worker 1.4-1.6x: docs/benchmarks.md); none on a single CPU."""
    cpus = os.cpu_count() or 1
    return cpus if cpus > 1 else 0


def converted_ahead(
    items: Iterator[Item], conversion: Callable[[int, Item], tuple[Converter, str] | None],
    workers: int,
) -> Generator[tuple[Item, Future[str] | None], None, None]:
    """`items` in order, each with its plain text under way when `conversion(position,
    item)` gave a converter and a text (positions count from 1) and the converter can go to
    a process."""
    pool: ProcessPoolExecutor | None = None
    window: deque[tuple[Item, Future[str] | None]] = deque()
    picklable: dict[Converter, bool] = {}
    try:
        for position, item in enumerate(items, 1):
            future = None
            work = conversion(position, item) if workers else None
            if work is not None and _picklable(work[0], picklable):
                # spawned, not forked: the importing process runs Tantivy's writer threads
                pool = pool or ProcessPoolExecutor(
                    workers, mp_context=multiprocessing.get_context("spawn"))
                convert, text = work
                future = pool.submit(convert, text)
            window.append((item, future))
            converting = sum(f is not None for _, f in window)
            # read ahead only while something converts: without conversions, an import is
            # never ahead of the records it has taken
            while window and (not converting or len(window) > WINDOW_PER_WORKER * workers):
                converting -= window[0][1] is not None
                yield window.popleft()
        while window:
            yield window.popleft()
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def _picklable(function: Converter, known: dict[Converter, bool]) -> bool:
    if function not in known:
        try:
            pickle.dumps(function)
            known[function] = True
        except (pickle.PicklingError, AttributeError, TypeError):
            known[function] = False
    return known[function]
