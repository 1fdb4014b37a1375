"""`rumination serve`: start vLLM for GLM-Z1-Rumination with YaRN for a 128K window.

The command has no `--tool-call-parser` and no `--reasoning-parser` (rumination parses the
model's `<think>…</think>` + JSON call itself), turns prefix caching on (every turn re-sends
the previous prompt) and prompt token details on (so usage reports cached prompt tokens).

YaRN: the model is trained for 32K positions; its card enables YaRN with factor 4 for 128K.
vLLM before 0.11.1 takes that as `--rope-scaling`; from 0.11.1 (transformers v5) only
`--hf-overrides` with `rope_parameters`, and a `max_position_embeddings` override, because
current vLLM no longer multiplies the window by the YaRN factor itself.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from rumination.errors import LLMUnavailable, RuminationError, UsageError

DEFAULT_MODEL_PATH = "THUDM/GLM-Z1-Rumination-32B-0414"
NATIVE_WINDOW = 32768
YARN_FACTOR = 4.0
YARN_WINDOW = 131072
ROPE_THETA = 10000.0
HF_OVERRIDES_SINCE = (0, 11, 1)  # --rope-scaling is gone from this release on


@dataclass
class ServeOptions:
    model_path: str = DEFAULT_MODEL_PATH
    served_model_name: str = "GLM-Z1-Rumination-32B-0414"
    host: str = "127.0.0.1"
    port: int = 8000
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.90
    yarn: bool = True
    extra_args: list[str] = field(default_factory=list)

    @property
    def max_model_len(self) -> int:
        return YARN_WINDOW if self.yarn else NATIVE_WINDOW

    @property
    def client_host(self) -> str:
        """Where a client on this machine reaches the server."""
        return "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host

    @property
    def base_url(self) -> str:
        host = f"[{self.client_host}]" if ":" in self.client_host else self.client_host
        return f"http://{host}:{self.port}"


def installed_vllm_version() -> str | None:
    from importlib import metadata  # here: `rumination --help` must not pay for it

    try:
        return metadata.version("vllm")
    except metadata.PackageNotFoundError:
        return None


def version_tuple(version: str) -> tuple[int, ...]:
    """Leading release numbers: '0.11.1rc2.dev5+gabc' -> (0, 11, 1)."""
    match = re.match(r"\d+(?:\.\d+)*", version.strip().lstrip("v"))
    return tuple(int(p) for p in match.group().split(".")) if match else ()


def uses_hf_overrides(vllm_version: str | None) -> bool:
    """True from vLLM 0.11.1 on, and when the version is unknown (assume current vLLM)."""
    return vllm_version is None or version_tuple(vllm_version) >= HF_OVERRIDES_SINCE


def rope_args(vllm_version: str | None) -> list[str]:
    if uses_hf_overrides(vllm_version):
        overrides = {
            "rope_parameters": {
                "rope_type": "yarn",
                "factor": YARN_FACTOR,
                "original_max_position_embeddings": NATIVE_WINDOW,
                "rope_theta": ROPE_THETA,
            },
            "max_position_embeddings": YARN_WINDOW,
        }
        return ["--hf-overrides", json.dumps(overrides)]
    scaling = {
        "rope_type": "yarn",
        "factor": YARN_FACTOR,
        "original_max_position_embeddings": NATIVE_WINDOW,
    }
    return ["--rope-scaling", json.dumps(scaling)]


def build_command(options: ServeOptions, vllm_version: str | None) -> list[str]:
    """The `vllm serve …` argument list (argv[0] is `vllm`)."""
    command = [
        "vllm", "serve", options.model_path,
        "--served-model-name", options.served_model_name,
        "--host", options.host,
        "--port", str(options.port),
        "--tensor-parallel-size", str(options.tensor_parallel_size),
        "--gpu-memory-utilization", str(options.gpu_memory_utilization),
        "--max-model-len", str(options.max_model_len),
        "--enable-prefix-caching",
        "--enable-prompt-tokens-details",
    ]  # fmt: skip
    if options.yarn:
        command += rope_args(vllm_version)
    return command + list(options.extra_args)


def shell_line(command: list[str]) -> str:
    return shlex.join(command)


def research_line(options: ServeOptions) -> str:
    return shell_line([
        "rumination", "research", "QUESTION",
        "--llm-url", f"{options.base_url}/v1", "--model", options.served_model_name,
    ])  # fmt: skip


class ProcessLike(Protocol):
    def poll(self) -> int | None: ...


def wait_for_health(
    url: str,
    process: ProcessLike,
    *,
    timeout_s: float = 1800.0,
    interval_s: float = 1.0,
    on_progress: Callable[[float], None] | None = None,
    progress_every_s: float = 15.0,
) -> float:
    """Poll `url` (…/health) until it answers 200; return the seconds it took.

    Raises RuminationError if the process exits first, LLMUnavailable after `timeout_s`."""
    import httpx  # here, not at the top: `rumination --help` must not load it

    start = time.monotonic()
    next_report = progress_every_s
    with httpx.Client(timeout=httpx.Timeout(5.0, connect=2.0)) as client:
        while True:
            code = process.poll()
            if code is not None:
                raise RuminationError(f"vLLM exited with code {code} before it was ready")
            try:
                if client.get(url).status_code == 200:
                    return time.monotonic() - start
            except httpx.TransportError:
                pass
            elapsed = time.monotonic() - start
            if elapsed >= timeout_s:
                raise LLMUnavailable(url, f"not healthy after {timeout_s:.0f} s")
            if on_progress is not None and elapsed >= next_report:
                on_progress(elapsed)
                next_report += progress_every_s
            time.sleep(min(interval_s, max(0.0, timeout_s - elapsed)))


def vllm_executable() -> str:
    beside_python = Path(sys.executable).with_name("vllm")
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("vllm")
    if found is None:
        raise UsageError("the vllm command is not on PATH (pip install 'rumination[serve]')")
    return found


def serve(
    options: ServeOptions,
    *,
    health_timeout_s: float = 1800.0,
    health_interval_s: float = 1.0,
    echo: Callable[[str], None] = print,
) -> int:
    """Start vLLM, wait until healthy, print the research line, serve until Ctrl-C.

    Returns vLLM's exit code (0 after a Ctrl-C that vLLM answered by shutting down)."""
    version = installed_vllm_version()
    if version is None:
        raise UsageError("vllm is not installed; install the serve extra: "
                         "pip install 'rumination[serve]'")  # fmt: skip
    command = build_command(options, version)
    command[0] = vllm_executable()
    echo(f"starting vLLM {version}: {shell_line(command)}")
    # Its own session: a terminal Ctrl-C reaches only us, and we forward it exactly once.
    process = subprocess.Popen(command, start_new_session=True)
    try:
        took = wait_for_health(
            f"{options.base_url}/health", process, timeout_s=health_timeout_s,
            interval_s=health_interval_s,
            on_progress=lambda s: echo(f"waiting for vLLM to load the model ({s:.0f} s)…"),
        )  # fmt: skip
        echo(f"vLLM is ready after {took:.0f} s at {options.base_url}/v1 "
             f"(window {options.max_model_len} tokens). Research with:")  # fmt: skip
        echo(research_line(options))
        return process.wait()
    except KeyboardInterrupt:
        echo("stopping vLLM…")
        return _stop(process)
    except BaseException:
        _stop(process)
        raise


def _stop(process: subprocess.Popen[bytes], grace_s: float = 30.0) -> int:
    if process.poll() is not None:
        return process.returncode
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=grace_s)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
    code = process.wait()
    return 0 if code in (0, -signal.SIGINT, 128 + signal.SIGINT) else code
