"""Real model servers started on 127.0.0.1 for tests and benches: llama.cpp's llama-server and
llama-cpp-python's server, each a subprocess serving a GGUF file, stopped on exit.

    with llama_server("/usr/local/bin/llama-server", "model.gguf", ctx=8192, slots=2) as s:
        LLMClient(s.url, s.model)...
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from rumination.llm.engines import template_path

READY_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    url: str  # base URL ending in /v1
    model: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def root(self) -> str:
        return self.url.removesuffix("/v1")


@contextlib.contextmanager
def started(command: list[str], port: int, model: str, log: Path) -> Iterator[RunningServer]:
    """Run `command` until its /v1/models answers; terminate it on exit."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)  # fmt: skip
    server = RunningServer(f"http://127.0.0.1:{port}/v1", model, process, log)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited {process.returncode}: "
                                   f"{log.read_text(errors='replace')[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{server.url}/models", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command[0]} not ready after {READY_TIMEOUT_S:.0f} s")
            time.sleep(0.25)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def llama_server_command(binary: str, gguf: Path, port: int, *, ctx: int, slots: int,
                         template: bool = True) -> list[str]:
    """llama-server as `rumination serve --engine llama.cpp` starts it (no YaRN: the small
    test models are not GLM); `template`: the model's real template by --chat-template-file."""
    command = [binary, "--model", str(gguf), "--alias", "smollm2", "--host", "127.0.0.1",
               "--port", str(port), "--ctx-size", str(ctx), "--parallel", str(slots),
               "--threads", "2", "--reasoning-format", "none"]  # fmt: skip
    if template:
        command += ["--jinja", "--chat-template-file", template_path()]
    return command


@contextlib.contextmanager
def llama_server(binary: str, gguf: Path, log: Path, *, ctx: int, slots: int,
                 template: bool = True) -> Iterator[RunningServer]:
    port = free_port()
    command = llama_server_command(binary, gguf, port, ctx=ctx, slots=slots, template=template)
    with started(command, port, "smollm2", log) as server:
        yield server


@contextlib.contextmanager
def llama_cpp_python_server(gguf: Path, log: Path, *, ctx: int) -> Iterator[RunningServer]:
    port = free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host",
               "127.0.0.1", "--port", str(port), "--n_ctx", str(ctx), "--n_threads", "2"]
    with started(command, port, str(gguf), log) as server:
        yield server
