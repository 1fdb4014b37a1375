"""The protocol simulator in a process of its own, so that its CPU is not billed to the
harness being measured. It records, for every chat request, when it arrived and when its
response was fully written (time.monotonic(), the same clock in every process here)."""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rumination.testing import SimulatorConfig, SimulatorServer
from rumination.testing.server import Responder


@dataclass(frozen=True)
class ChatTiming:
    arrived: float
    done: float


class TimedSimulator(SimulatorServer):
    def __init__(self, responder: Responder, config: SimulatorConfig) -> None:
        super().__init__(responder, config)
        self.timings: list[ChatTiming] = []

    def chat(self, body: dict[str, Any]) -> Generator[dict[str, Any] | str, None, None]:
        arrived = time.monotonic()
        yield from super().chat(body)
        self.timings.append(ChatTiming(arrived, time.monotonic()))


def fixed(responder: Responder) -> Responder:
    """The factory for a module-level responder: `simulator_process(fixed, (simulate,), …)`."""
    return responder


def _serve(conn: multiprocessing.connection.Connection, factory: Callable[..., Responder],
           args: tuple[Any, ...], config: SimulatorConfig) -> None:
    server = TimedSimulator(factory(*args), config).start()
    conn.send(server.url)
    conn.recv()  # "stop"
    server.stop()
    conn.send(sorted(server.timings, key=lambda t: t.arrived))


class RemoteSimulator:
    def __init__(self, url: str, conn: multiprocessing.connection.Connection) -> None:
        self.url = url
        self._conn = conn
        self.timings: list[ChatTiming] = []
        self.stopped = False

    def stop(self) -> list[ChatTiming]:
        """Stops the server; returns its chat timings, in order of arrival."""
        if not self.stopped:
            self.stopped = True
            self._conn.send("stop")
            self.timings = self._conn.recv()
        return self.timings


@contextmanager
def simulator_process(factory: Callable[..., Responder], args: tuple[Any, ...],
                      config: SimulatorConfig) -> Iterator[RemoteSimulator]:
    """A simulator serving `factory(*args)` in a spawned process (both must pickle: pass a
    module-level function and its arguments, not a closure)."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_serve, args=(child, factory, args, config), daemon=True)
    process.start()
    while not parent.poll(0.1):
        if not process.is_alive():
            raise RuntimeError(f"the simulator process ended (exit code {process.exitcode})")
    remote = RemoteSimulator(parent.recv(), parent)
    try:
        yield remote
    finally:
        remote.stop()
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
