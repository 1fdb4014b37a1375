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
import signal
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Converter = Callable[[str], str]

WINDOW_PER_WORKER = 32  # records read ahead per worker process
MAX_WORKERS = 32  # a many-CPU host need not read thousands of records ahead


def conversion_workers() -> int:
    """Worker processes for conversion: one per CPU this process may use, since the
    importing process waits on them much of the time (on 2 CPUs, 2 workers imported
    1.84-1.95x as fast as none, 1 worker 1.4-1.6x: docs/benchmarks.md); none on a single
    CPU, and at most MAX_WORKERS."""
    # the CPUs this process may run on (a container's share), where the system says
    on_linux = hasattr(os, "sched_getaffinity")
    cpus = len(os.sched_getaffinity(0)) if on_linux else os.cpu_count() or 1
    return min(cpus, MAX_WORKERS) if cpus > 1 else 0


def converted_ahead(
    items: Iterator[Item], conversion: Callable[[int, Item], tuple[Converter, str] | None],
    workers: int,
) -> Generator[tuple[Item, Future[str] | None], None, None]:
    """`items` in order, each with its plain text under way when `conversion(position,
    item)` gave a converter and a text (positions count from 1) and the converter can go to
    a process."""
    pool: ProcessPoolExecutor | None = None
    failure: list[Exception] = []
    window: deque[tuple[Item, Future[str] | None]] = deque()
    picklable: dict[Converter, bool] = {}
    try:
        for position, item in _until_failure(items, failure):
            future = None
            work = conversion(position, item) if workers else None
            if work is not None and _picklable(work[0], picklable):
                # spawned, not forked: the importing process runs Tantivy's writer threads;
                # Ctrl-C reaches the workers too, and the import stops them itself
                pool = pool or ProcessPoolExecutor(
                    workers, mp_context=multiprocessing.get_context("spawn"),
                    initializer=signal.signal, initargs=(signal.SIGINT, signal.SIG_IGN))
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
        if failure:  # a read failed: the records before it were imported first, as without
            raise failure[0]  # read-ahead, so the batches they complete are committed
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def _until_failure(items: Iterator[Item], failure: list[Exception]
                   ) -> Iterator[tuple[int, Item]]:
    """`items` with their positions, ending at the first error in reading them, which goes
    into `failure` (an interruption, a KeyboardInterrupt, is not held back)."""
    position = 0
    while True:
        try:
            item = next(items)
        except StopIteration:
            return
        except Exception as exc:
            failure.append(exc)
            return
        position += 1
        yield position, item


def _picklable(function: Converter, known: dict[Converter, bool]) -> bool:
    if function not in known:
        try:
            pickle.dumps(function)
            known[function] = True
        except (pickle.PicklingError, AttributeError, TypeError):
            known[function] = False
    return known[function]
