"""`rumination serve`: the vLLM command for both flag generations, the health wait, the CLI."""

from __future__ import annotations

import json
import shlex
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rumination.cli import app
from rumination.errors import LLMUnavailable, RuminationError
from rumination.llm import serve as serve_mod
from rumination.llm.serve import (
    ServeOptions,
    build_command,
    research_line,
    uses_hf_overrides,
    version_tuple,
    wait_for_health,
)
from rumination.settings import Settings
from rumination.testing import SimulatorServer

# DESIGN.md section 1, verbatim.
HF_OVERRIDES = (
    '{"rope_parameters": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings":'
    ' 32768, "rope_theta": 10000.0}, "max_position_embeddings": 131072}'
)
ROPE_SCALING = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}


def flag(command: list[str], name: str) -> str:
    assert command.count(name) == 1, command
    return command[command.index(name) + 1]


@pytest.mark.parametrize("version", ["0.11.1", "0.11.2", "0.12.0", "1.0.0", None])
def test_current_vllm_gets_hf_overrides(version: str | None) -> None:
    command = build_command(ServeOptions(), version)
    assert command[:3] == ["vllm", "serve", "THUDM/GLM-Z1-Rumination-32B-0414"]
    assert flag(command, "--hf-overrides") == HF_OVERRIDES
    assert flag(command, "--max-model-len") == "131072"
    assert "--rope-scaling" not in command


@pytest.mark.parametrize("version", ["0.8.4", "0.10.1.1", "0.11.0", "0.11.0+cu128"])
def test_older_vllm_gets_rope_scaling(version: str) -> None:
    command = build_command(ServeOptions(), version)
    assert json.loads(flag(command, "--rope-scaling")) == ROPE_SCALING
    assert flag(command, "--max-model-len") == "131072"
    assert "--hf-overrides" not in command


def test_command_carries_every_option_and_no_parsers() -> None:
    options = ServeOptions(
        model_path="/models/glm-z1", served_model_name="glm", host="0.0.0.0", port=8123,
        tensor_parallel_size=4, gpu_memory_utilization=0.85, extra_args=["--dtype", "bfloat16"],
    )  # fmt: skip
    command = build_command(options, "0.12.0")
    assert command[2] == "/models/glm-z1"
    assert flag(command, "--served-model-name") == "glm"
    assert flag(command, "--host") == "0.0.0.0"
    assert flag(command, "--port") == "8123"
    assert flag(command, "--tensor-parallel-size") == "4"
    assert flag(command, "--gpu-memory-utilization") == "0.85"
    assert "--enable-prefix-caching" in command
    assert "--enable-prompt-tokens-details" in command  # usage reports cached prompt tokens
    assert command[-2:] == ["--dtype", "bfloat16"]
    assert not any("parser" in part or "auto-tool" in part for part in command)
    assert research_line(options) == (
        "rumination research QUESTION --llm-url http://127.0.0.1:8123/v1 --model glm"
    )


def test_no_yarn_serves_the_native_window() -> None:
    command = build_command(ServeOptions(yarn=False), None)
    assert flag(command, "--max-model-len") == "32768"
    assert "--hf-overrides" not in command and "--rope-scaling" not in command


def test_version_parsing() -> None:
    assert version_tuple("0.11.1rc2.dev5+gabc") == (0, 11, 1)
    assert version_tuple("v0.9.2") == (0, 9, 2)
    assert uses_hf_overrides("0.11.1rc1") and not uses_hf_overrides("0.11.0.post1")


def test_default_served_name_is_what_research_asks_for() -> None:
    assert ServeOptions().served_model_name == Settings().model


def test_dry_run_prints_the_exact_shell_quoted_command(monkeypatch: pytest.MonkeyPatch) -> None:
    for version in ("0.10.2", None):
        monkeypatch.setattr(serve_mod, "installed_vllm_version", lambda v=version: v)
        result = CliRunner().invoke(app, ["serve", "--dry-run", "--port", "8111"])
        assert result.exit_code == 0, result.output
        printed = shlex.split(result.stdout.strip())
        assert printed == build_command(ServeOptions(port=8111), version)


def test_serve_without_vllm_is_a_one_line_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serve_mod, "installed_vllm_version", lambda: None)
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert "serve" in result.stderr and "rumination[serve]" in result.stderr


def test_vllm_own_parser_accepts_the_command() -> None:
    pytest.importorskip("vllm")
    from vllm.entrypoints.openai.cli_args import make_arg_parser

    try:
        from vllm.utils.argparse_utils import FlexibleArgumentParser
    except ImportError:  # older vLLM
        from vllm.utils import FlexibleArgumentParser  # type: ignore[no-redef]

    command = build_command(ServeOptions(), serve_mod.installed_vllm_version())
    args = make_arg_parser(FlexibleArgumentParser()).parse_args(command[2:])
    assert args.model_tag == "THUDM/GLM-Z1-Rumination-32B-0414"
    assert args.max_model_len == 131072 and args.enable_prefix_caching is True
    assert args.tensor_parallel_size == 1 and args.port == 8000


# -- waiting for /health ---------------------------------------------------------------------


class FakeProcess:
    def __init__(self, code: int | None = None) -> None:
        self.code = code

    def poll(self) -> int | None:
        return self.code


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_health_wait_returns_once_the_server_answers() -> None:
    port = free_port()
    started: list[SimulatorServer] = []

    def start_late() -> None:  # the "model" finishes loading after a while
        time.sleep(0.4)
        started.append(SimulatorServer(lambda m: "", port=port).start())

    thread = threading.Thread(target=start_late)
    thread.start()
    progress: list[float] = []
    try:
        took = wait_for_health(f"http://127.0.0.1:{port}/health", FakeProcess(), timeout_s=10,
                               interval_s=0.05, on_progress=progress.append,
                               progress_every_s=0.1)  # fmt: skip
    finally:
        thread.join()
        for server in started:
            server.stop()
    assert 0.3 < took < 10
    assert progress and progress == sorted(progress)


def test_health_wait_times_out_and_notices_a_dead_process() -> None:
    url = f"http://127.0.0.1:{free_port()}/health"
    with pytest.raises(LLMUnavailable, match="not healthy"):
        wait_for_health(url, FakeProcess(), timeout_s=0.3, interval_s=0.05)
    with pytest.raises(RuminationError, match="exited with code 1"):
        wait_for_health(url, FakeProcess(code=1), timeout_s=5, interval_s=0.05)


FAKE_VLLM = """\
import sys, time
from rumination.testing import SimulatorServer
port = int(sys.argv[sys.argv.index("--port") + 1])
assert sys.argv[1] == "serve" and "--hf-overrides" in sys.argv
server = SimulatorServer(lambda m: "", port=port).start()
time.sleep(1.5)
server.stop()
"""


def test_serve_starts_waits_and_prints_the_research_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "vllm"
    script.write_text(f"#!{sys.executable}\n{FAKE_VLLM}", encoding="utf-8")
    script.chmod(0o755)
    monkeypatch.setattr(serve_mod, "installed_vllm_version", lambda: "0.12.0")
    monkeypatch.setattr(serve_mod, "vllm_executable", lambda: str(script))
    lines: list[str] = []
    options = ServeOptions(port=free_port(), served_model_name="glm")
    code = serve_mod.serve(options, health_timeout_s=20, health_interval_s=0.1, echo=lines.append)
    assert code == 0
    assert lines[0].startswith(f"starting vLLM 0.12.0: {script} serve ")
    assert lines[-1] == research_line(options)
    assert f"--llm-url http://127.0.0.1:{options.port}/v1 --model glm" in lines[-1]


def test_ctrl_c_is_forwarded_to_vllm_once() -> None:
    code = textwrap.dedent("""\
        import sys, time
        try:
            print("ready", flush=True)
            time.sleep(30)
        except KeyboardInterrupt:
            sys.exit(0)
    """)
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                               start_new_session=True)  # fmt: skip
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    started = time.monotonic()
    assert serve_mod._stop(process) == 0
    assert time.monotonic() - started < 10
    process.stdout.close()


def test_stop_escalates_when_sigint_is_ignored() -> None:
    code = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); " \
           "print('ready', flush=True); time.sleep(30)"  # fmt: skip
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    assert serve_mod._stop(process, grace_s=0.3) == -signal.SIGTERM
    process.stdout.close()
