"""SIGTERM stops research, batch, schedule and api mid-run with exit 4 and the run kept
`interrupted` and resumable, also when SIGINT was inherited as ignored (`cmd &` in a shell
script, nohup, some supervisors), which then stays ignored. And as before with SIGINT at its
default (a terminal, systemd)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi")

from conftest import wait_for_turns  # noqa: E402
from servicekit import SIM_MODEL, Gate, simulator  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from rumination.cli import app  # noqa: E402
from rumination.store.run_store import RunStore  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

QUESTION = "How do otters help kelp?"
IGNORED = "SIGINT ignored"  # as `cmd &` in a script starts a process
SIGINT_AS = [IGNORED, "SIGINT default"]


def ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def default_sigint() -> None:
    """SIGINT at its default in the command, also when pytest itself was started with `&`
    (which would hand the command an ignored SIGINT)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def sigint_ignored(pid: int) -> bool:
    """From the kernel: is SIGINT's disposition SIG_IGN in process `pid`?"""
    status = Path(f"/proc/{pid}/status").read_text()
    (mask,) = [line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:")]
    return bool(int(mask, 16) & 1 << (signal.SIGINT - 1))


@pytest.fixture
def gate() -> Gate:
    """Holds every model request after the first turn until opened: a SIGTERM always finds
    the run in the middle."""
    return Gate(free=1)


@pytest.fixture
def env(tmp_path: Path, corpus_db: Path, gate: Gate,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The environment of the command under test (and of `runs resume` in this process),
    with the held simulator as its model."""
    with simulator(gate) as server:
        settings = {"RUN_STORE": str(tmp_path / "runs.db"), "LLM_URL": server.url,
                    "MODEL": SIM_MODEL, "CORPUS": str(corpus_db), "RETRIES": "0",
                    "API_EVENTS_DIR": str(tmp_path / "events")}
        for name, value in settings.items():
            monkeypatch.setenv(f"RUMINATION_{name}", value)
        try:
            yield dict(os.environ)
        finally:
            gate.open()


def start(args: list[str], env: dict[str, str], sigint: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "rumination", *args], env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        preexec_fn=ignore_sigint if sigint == IGNORED else default_sigint,
    )


def sigterm_mid_run(proc: subprocess.Popen[str], env: dict[str, str], sigint: str,
                    check_sigint: bool = True) -> str:
    """SIGTERM once a turn is committed (the next one is held); the command's stderr."""
    try:
        wait_for_turns(env["RUMINATION_RUN_STORE"], 1, proc, limit_s=30)
        if check_sigint:  # the command left the inherited disposition alone
            assert sigint_ignored(proc.pid) == (sigint == IGNORED)
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 4, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: interrupted"] and "Traceback" not in stderr, stderr
    return stderr


def resumes_to_the_end(env: dict[str, str], gate: Gate) -> str:
    """The one stored run is interrupted, and `runs resume` finishes it; its id."""
    store = RunStore(env["RUMINATION_RUN_STORE"])
    (run,) = store.list_runs()
    assert (run.status, run.turns) == ("interrupted", 1)
    gate.open()
    resumed = CliRunner().invoke(app, ["runs", "resume", run.run_id])
    assert resumed.exit_code == 0, resumed.stderr
    assert store.get_run(run.run_id).status == "finished"
    return run.run_id


@pytest.mark.parametrize("sigint", SIGINT_AS)
def test_research_stops_on_sigterm_and_resumes(
    env: dict[str, str], gate: Gate, sigint: str
) -> None:
    stderr = sigterm_mid_run(start(["research", QUESTION], env, sigint), env, sigint)
    run_id = resumes_to_the_end(env, gate)
    assert f"rumination runs resume {run_id}" in stderr


@pytest.mark.parametrize("sigint", SIGINT_AS)
def test_batch_stops_on_sigterm_and_resumes(
    tmp_path: Path, env: dict[str, str], gate: Gate, sigint: str
) -> None:
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(f"jobs:\n  - question: {QUESTION}\n    name: otters\n")
    proc = start(["batch", str(jobs), "--out-dir", str(tmp_path / "out")], env, sigint)
    sigterm_mid_run(proc, env, sigint)
    assert not (tmp_path / "out" / "otters.md").exists()
    resumes_to_the_end(env, gate)


@pytest.mark.parametrize("sigint", SIGINT_AS)
def test_schedule_stops_on_sigterm_and_resumes(
    tmp_path: Path, env: dict[str, str], gate: Gate, sigint: str
) -> None:
    (tmp_path / "jobs.yaml").write_text(f"jobs:\n  - question: {QUESTION}\n    name: otters\n")
    schedules = tmp_path / "schedules.yaml"
    schedules.write_text("schedules:\n  - name: every-second\n    cron: '* * * * * *'\n"
                         "    jobs: jobs.yaml\n    out_dir: out\n")
    sigterm_mid_run(start(["schedule", str(schedules)], env, sigint), env, sigint)
    resumes_to_the_end(env, gate)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def post_run_when_up(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, f"the API server ended: {proc.communicate()[1]}"
        try:
            started = httpx.post(f"{url}/runs", json={"question": QUESTION}, timeout=5)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the API server did not come up"
            time.sleep(0.05)
    assert started.status_code == 202, started.text


@pytest.mark.parametrize("sigint", SIGINT_AS)
def test_api_stops_on_sigterm_and_its_queue_finishes_after_a_restart(
    env: dict[str, str], gate: Gate, sigint: str
) -> None:
    """Three runs posted at concurrency 1, SIGTERM while the first is mid-run: all three
    stay queued in the store, and the next start finishes them, the first resumed."""
    env = {**env, "RUMINATION_API_CONCURRENCY": "1"}
    port = free_port()
    proc = start(["api", "--port", str(port)], env, sigint)
    post_run_when_up(f"http://127.0.0.1:{port}", proc)
    for n in (2, 3):
        reply = httpx.post(f"http://127.0.0.1:{port}/runs",
                           json={"question": f"{QUESTION} ({n})"}, timeout=5)
        assert reply.status_code == 202, reply.text
    # uvicorn takes SIGINT over while it serves: only SIGTERM's outcome is checked
    sigterm_mid_run(proc, env, sigint, check_sigint=False)
    store = RunStore(env["RUMINATION_RUN_STORE"])
    first, *others = reversed(store.list_runs())  # oldest first
    assert (first.status, first.turns) == ("queued", 1)
    assert [(r.status, r.turns) for r in others] == [("queued", 0), ("queued", 0)]
    gate.open()
    again = start(["api", "--port", str(free_port())], env, sigint)
    try:
        deadline = time.monotonic() + 60
        while {r.status for r in store.list_runs()} != {"finished"}:
            assert again.poll() is None, again.communicate()[1]
            assert time.monotonic() < deadline, [r.status for r in store.list_runs()]
            time.sleep(0.1)
    finally:
        again.terminate()
        again.communicate(timeout=30)
    events = Path(env["RUMINATION_API_EVENTS_DIR"], f"{first.run_id}.jsonl").read_text()
    starts = [json.loads(line) for line in events.splitlines() if '"run_started"' in line]
    assert [start["resumed_at_turn"] for start in starts] == [0, 1]
