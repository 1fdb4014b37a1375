"""Two installs for one user (two virtual environments, one home): each demo cites its own
bundled files, once each, and a deleted install leaves no dead links behind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

from .installkit import Install, make_install


def _demo_source_files(install: Install, env: dict[str, str], cwd: Path) -> list[Path]:
    out = cwd / "demo.json"
    done = install.run(["rumination", "demo", "--out", str(out)], cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr
    urls = [source["url"] for source in json.loads(out.read_text())["sources"]]
    assert urls and all(url.startswith("file://") for url in urls), urls
    return [Path(unquote(urlparse(url).path)) for url in urls]


def test_two_installs_share_one_user_without_mixing_their_demo_corpora(
    install: Install, wheel: Path, user_env: dict[str, str], empty_dir: Path, tmp_path: Path
) -> None:
    second = make_install(wheel, tmp_path / "second-venv")

    first_files = _demo_source_files(install, user_env, empty_dir)
    second_files = _demo_source_files(second, user_env, empty_dir)
    for files, owner in ((first_files, install), (second_files, second)):
        assert len(set(files)) == len(files), "a bundled article is cited twice"
        assert all(owner.venv in f.parents and f.exists() for f in files), files

    shutil.rmtree(second.venv)
    again = _demo_source_files(install, user_env, empty_dir)
    assert all(install.venv in f.parents and f.exists() for f in again), again
