"""The product as users get it: a wheel built from this checkout, installed (not editable)
into fresh virtual environments, its commands run as subprocesses from the clone's root and
from an empty folder, each test with XDG folders of its own.

Marked `installed` and left out of the default run (it builds and installs the wheel):
`python -m pytest -m installed` runs it; `.ci/run` does, after the unit tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .installkit import Install, Simulator, build_wheel, make_install


@pytest.hookimpl(tryfirst=True)  # marked before `-m` selects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.installed)


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wheel")
    return build_wheel(folder)


@pytest.fixture(scope="session")
def install(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Install:
    return make_install(wheel, tmp_path_factory.mktemp("install") / "venv")


@pytest.fixture
def user_env(tmp_path: Path, install: Install) -> dict[str, str]:
    """A user's environment: this install's bin first on PATH, a home and XDG folders of
    its own, none of the test run's Python or rumination variables."""
    home = tmp_path / "home"
    env = {
        name: value for name, value in os.environ.items()
        if not name.startswith(("RUMINATION_", "PYTHON", "VIRTUAL_ENV", "XDG_", "RAY_"))
    }
    env.update(
        PATH=f"{install.bin}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_CACHE_HOME=str(home / "cache"),
        XDG_DATA_HOME=str(home / "data"),
    )
    return env


@pytest.fixture
def empty_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "empty"
    folder.mkdir()
    return folder


@pytest.fixture
def simulator(install: Install, user_env: dict[str, str]) -> Iterator[Simulator]:
    sim = Simulator(install, user_env)
    yield sim
    sim.stop()


@pytest.fixture
def slow_simulator(install: Install, user_env: dict[str, str]) -> Iterator[Simulator]:
    """Each turn takes a noticeable time, so a signal can arrive mid-run."""
    sim = Simulator(install, user_env, "--latency-per-token", "0.01")
    yield sim
    sim.stop()


