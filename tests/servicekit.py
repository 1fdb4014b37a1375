"""Shared by the service tests: the API under uvicorn on 127.0.0.1 (a free port) in a thread,
researching with the protocol simulator on the bundled demo corpus."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from rumination.service.app import create_app
from rumination.settings import Settings
from rumination.testing import SimulatorConfig, SimulatorServer, simulate

SIM_MODEL = "rumination-simulator"


class Gate:
    """A simulator responder that holds every request after the first `free` turns until
    `open()`: a run that can be caught in the middle."""

    def __init__(self, free: int) -> None:
        self.free = free
        self.opened = threading.Event()

    def open(self) -> None:
        self.opened.set()

    def __call__(self, messages: Sequence[dict[str, Any]]) -> str:
        if sum(m.get("role") == "assistant" for m in messages) >= self.free:
            self.opened.wait(20)
        return simulate(messages)


def service_settings(tmp: Path, llm_url: str, **extra: Any) -> Settings:
    return Settings(llm_url=llm_url, model=SIM_MODEL, backend="local", corpus=None,
                    run_store=str(tmp / "runs.db"), api_events_dir=str(tmp / "events"),
                    prefetch=0, **extra)


@contextmanager
def simulator(responder: Any = simulate) -> Iterator[SimulatorServer]:
    with SimulatorServer(responder, SimulatorConfig(model=SIM_MODEL)) as server:
        yield server


def running_api(settings: Settings) -> AbstractContextManager[str]:
    """The API's base URL while uvicorn serves it from a thread."""
    return running_app(create_app(settings))


@contextmanager
def running_app(app: Any) -> Iterator[str]:
    """An ASGI app's base URL while uvicorn serves it from a thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning",
                                           timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()


def read_events(client: httpx.Client, run_id: str, **headers: str) -> list[tuple[str, dict]]:
    """Every Server-Sent Event of a run until the stream ends: (event, data)."""
    events: list[tuple[str, dict]] = []
    kind, data = "message", ""
    with client.stream("GET", f"/runs/{run_id}/events", headers=headers, timeout=30) as reply:
        assert reply.status_code == 200, reply.read()
        assert reply.headers["content-type"].startswith("text/event-stream")
        for line in reply.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "" and data:
                events.append((kind, json.loads(data)))
                kind, data = "message", ""
    return events


def wait_status(client: httpx.Client, run_id: str, wanted: set[str], timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        run: dict = client.get(f"/runs/{run_id}").json()
        if run["status"] in wanted:
            return run
        assert time.monotonic() < deadline, f"run {run_id} stayed {run['status']}"
        time.sleep(0.02)
