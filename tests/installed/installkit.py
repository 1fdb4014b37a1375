"""Helpers of the installed-product suite: installs, a user's environment, the simulator."""

from __future__ import annotations

import importlib.util
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SIMULATOR_MODEL = "glm-z1-rumination-simulator"
TIMEOUT_S = 180


@dataclass(frozen=True)
class Install:
    """One virtual environment with the wheel installed in it."""

    venv: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    @property
    def python(self) -> str:
        return str(self.bin / "python")

    @property
    def has_ray(self) -> bool:
        return any((self.venv / "lib").glob("python3*/site-packages/ray/__init__.py"))

    def run(
        self, args: Sequence[str], *, cwd: Path, env: dict[str, str], timeout: float = TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        """`args[0]` is a command of this install (`rumination`, `python`)."""
        command = [str(self.bin / args[0]), *args[1:]]
        return subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
            stdin=subprocess.DEVNULL,
        )


def _pip(python: str, *args: str) -> None:
    done = subprocess.run(
        [python, "-m", "pip", "--disable-pip-version-check", "-q", *args],
        capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]


def build_wheel(folder: Path) -> Path:
    """The wheel of this checkout, built the way `pip install .` builds it."""
    _pip(sys.executable, "wheel", "--no-deps", "-w", str(folder), str(ROOT))
    (built,) = folder.glob("rumination-*.whl")
    return built


def make_install(wheel: Path, folder: Path) -> Install:
    """A fresh venv with the wheel and the extras the user paths need (Ray where the test
    environment has it, so CI, which installs it, exercises the Ray executor too)."""
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, timeout=300)
    install = Install(folder)
    _pip(install.python, "install", f"{wheel}[api,mcp]")
    if importlib.util.find_spec("ray") is not None:
        _pip(install.python, "install", "ray>=2.9")
    return install


class Simulator:
    """`python -m rumination.testing serve` of the install, on a free loopback port."""

    def __init__(self, install: Install, env: dict[str, str], *extra: str) -> None:
        self.proc = subprocess.Popen(
            [install.python, "-m", "rumination.testing", "serve", "--port", "0", *extra],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            stdin=subprocess.DEVNULL,
        )
        assert self.proc.stderr is not None
        first = self.proc.stderr.readline()
        found = re.search(r"at (http://\S+/v1)", first)
        assert found, f"the simulator said: {first!r}"
        self.url = found.group(1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def wait_for_turns(store: Path, turns: int, proc: subprocess.Popen[bytes], limit_s: float = 60,
                   ) -> None:
    """Until `turns` turns are committed to the SQLite run store (failing if `proc` ends)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the command ended before it could be interrupted"
        try:
            with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
                if db.execute("SELECT count(*) FROM turns").fetchone()[0] >= turns:
                    return
        except sqlite3.OperationalError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"no {turns} turns committed to {store} in {limit_s} s")


def one_line_error(stderr: str) -> str:
    """The command's error: one `error:` line and no traceback."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]
