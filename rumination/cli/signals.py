"""SIGTERM handled like Ctrl-C, so that a service manager's stop leaves a resumable run.

Also when SIGINT is ignored, as `cmd &` in a shell script, `nohup` and some supervisors
start a process: SIGINT then stays ignored (the caller's choice) and SIGTERM still stops
the command with exit 4, its run interrupted and resumable."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class _Termination:
    """The SIGTERM handler; it remembers that it fired."""

    def __init__(self) -> None:
        self.received = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        first = not self.received
        self.received = True
        if callable(signal.getsignal(signal.SIGINT)):
            # Ctrl-C's own path: asyncio.run turns SIGINT into a clean cancellation of its
            # task (the run is marked interrupted), then KeyboardInterrupt
            signal.raise_signal(signal.SIGINT)
        elif first:  # SIGINT is ignored, so asyncio.run did not take it over
            _cancel_event_loop()


def _cancel_event_loop() -> None:
    """Cancel every task of the event loop running here, as asyncio.run does on its way out
    (the run is marked interrupted); with no loop running, KeyboardInterrupt as Ctrl-C."""
    asyncio = sys.modules.get("asyncio")  # not imported yet: no loop can be running
    try:
        loop = asyncio.get_running_loop() if asyncio else None
    except RuntimeError:
        loop = None
    if asyncio is None or loop is None:
        raise KeyboardInterrupt
    for task in asyncio.all_tasks(loop):
        task.cancel()
    loop.call_soon_threadsafe(lambda: None)  # wakes the loop if it waits in select()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM does what Ctrl-C does (only the main thread can set handlers):
    the block ends with KeyboardInterrupt, also where SIGTERM cancelled an event loop or
    came as it was closing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    termination = _Termination()
    previous = signal.signal(signal.SIGTERM, termination)
    try:
        yield
    except BaseException as exc:
        if termination.received and _is_cancellation(exc):
            raise KeyboardInterrupt from None
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    if termination.received:
        raise KeyboardInterrupt


def _is_cancellation(exc: BaseException) -> bool:
    """An asyncio.CancelledError (without importing asyncio)."""
    asyncio = sys.modules.get("asyncio")
    return asyncio is not None and isinstance(exc, asyncio.CancelledError)
