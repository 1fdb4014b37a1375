"""Started the way scripts, nohup and supervisors start it: `cmd &` in a non-interactive
shell, which leaves SIGINT ignored. SIGTERM must still stop a run cleanly: exit 4, the run
kept `interrupted`, and `runs resume` finishes it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from .installkit import SIMULATOR_MODEL, Install, Simulator, wait_for_turns

# bash runs a background job of a non-interactive shell with SIGINT ignored (POSIX)
DETACHED = 'rumination "$@" & echo $! > pid; wait $!; echo $? > exit-code'


def _start_detached(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["bash", "-c", DETACHED, "rumination", *args], cwd=cwd, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _sigterm_after_turns(shell: subprocess.Popen[bytes], cwd: Path, store: Path) -> int:
    """SIGTERM the backgrounded command once it has committed two turns; its exit code."""
    try:
        wait_for_turns(store, 2, shell)
        os.kill(int((cwd / "pid").read_text()), signal.SIGTERM)
        shell.wait(timeout=60)
    finally:
        if shell.poll() is None:
            shell.kill()
    return int((cwd / "exit-code").read_text())


def _store(env: dict[str, str]) -> Path:
    return Path(env["XDG_DATA_HOME"]) / "rumination" / "runs.db"


def test_research_under_a_shell_ampersand_stops_on_sigterm_and_resumes(
    install: Install, user_env: dict[str, str], empty_dir: Path, slow_simulator: Simulator
) -> None:
    shell = _start_detached(
        ["research", "How do sea otters help kelp forests?", "--llm-url", slow_simulator.url,
         "--model", SIMULATOR_MODEL, "--out", "report.json"], empty_dir, user_env)
    assert _sigterm_after_turns(shell, empty_dir, _store(user_env)) == 4
    assert not (empty_dir / "report.json").exists()

    listed = install.run(["rumination", "runs", "list"], cwd=empty_dir, env=user_env)
    run_id, status = listed.stdout.split("\t")[:2]
    assert status == "interrupted", listed.stdout
    done = install.run(["rumination", "runs", "resume", run_id, "--out", "report.json"],
                       cwd=empty_dir, env=user_env)
    assert done.returncode == 0, done.stderr
    assert json.loads((empty_dir / "report.json").read_text())["run_id"] == run_id


def test_batch_under_a_shell_ampersand_stops_on_sigterm_and_reruns(
    install: Install, user_env: dict[str, str], empty_dir: Path, slow_simulator: Simulator
) -> None:
    jobs = empty_dir / "jobs.jsonl"
    jobs.write_text(json.dumps({"name": "otters", "question": "Why do otters matter?"}) + "\n")
    args = ["batch", str(jobs), "--out-dir", "out", "--llm-url", slow_simulator.url,
            "--model", SIMULATOR_MODEL]
    shell = _start_detached(args, empty_dir, user_env)
    assert _sigterm_after_turns(shell, empty_dir, _store(user_env)) == 4
    assert not (empty_dir / "out" / "otters.md").exists()

    listed = install.run(["rumination", "runs", "list"], cwd=empty_dir, env=user_env)
    assert listed.stdout.split("\t")[1] == "interrupted", listed.stdout
    done = install.run(["rumination", *args], cwd=empty_dir, env=user_env)
    assert done.returncode == 0, done.stderr
    assert "SIMULATED" in (empty_dir / "out" / "otters.md").read_text()
