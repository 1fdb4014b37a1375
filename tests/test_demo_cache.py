"""The user's cache folder: each install gets its own demo index (its links are its own files,
and a deleted install's index goes), and a cache folder that cannot be written costs a
warning, not the run."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import pytest

from rumination import Settings
from rumination.reading.httpcache import HttpCache
from rumination.search_backends.corpus import Corpus
from rumination.search_backends.local import index_demo_corpus

BUNDLED = Path(str(files("rumination.search_backends") / "demo_corpus"))
QUERIES = ("cold climate performance", "refrigerant", "noise", "grid peak demand", "history")


def install_copy(root: Path) -> Path:
    """A copy of the bundled demo corpus where another install would keep it."""
    folder = root / "site-packages" / "rumination" / "search_backends" / "demo_corpus"
    shutil.copytree(BUNDLED, folder)
    return folder


def cited_urls(db_path: Path) -> set[str]:
    corpus = Corpus(db_path)
    try:
        return {hit.url for query in QUERIES for hit in corpus.search(query)}
    finally:
        corpus.close()


def test_two_installs_get_their_own_index_and_a_deleted_one_goes(tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "rumination"
    cache.mkdir(parents=True)
    first, second = install_copy(tmp_path / "venv1"), install_copy(tmp_path / "venv2")
    shared = Corpus(cache / "demo-corpus.db", create=True)  # what older versions left behind
    shared.index_folder(first)
    shared.close()

    first_index = index_demo_corpus(first, cache)
    second_index = index_demo_corpus(second, cache)

    assert first_index != second_index
    assert not (cache / "demo-corpus.db").exists()
    urls = cited_urls(second_index)
    assert len(urls) >= len(QUERIES)
    assert all(url.startswith(second.as_uri() + "/") for url in urls), urls
    assert all(url.startswith(first.as_uri() + "/") for url in cited_urls(first_index))

    shutil.rmtree(tmp_path / "venv1")
    assert index_demo_corpus(second, cache) == second_index
    assert sorted(p.name for p in cache.iterdir()) == [second_index.name]


def test_an_install_changed_in_place_is_reindexed(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    folder = install_copy(tmp_path)
    index_demo_corpus(folder, cache)
    (folder / "noise-and-siting.md").unlink()
    article = folder / "history-of-the-heat-pump.md"
    article.write_text("---\ntitle: Heat pump chronicle\n---\nA rewritten history of heat pumps, "
                       "from Kelvin to now.\n", encoding="utf-8")  # fmt: skip

    corpus = Corpus(index_demo_corpus(folder, cache))
    try:
        assert not [hit for hit in corpus.search("noise siting") if "noise-and-siting" in hit.url]
        assert corpus.search("chronicle Kelvin")[0].title == "Heat pump chronicle"
        assert not corpus.search("Perkins")  # the old history is gone
    finally:
        corpus.close()


def test_demo_with_an_unwritable_cache_folder_warns_and_runs(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": "/proc/x", "XDG_DATA_HOME": str(tmp_path / "data")}
    command = [sys.executable, "-m", "rumination", "demo", "--out", "r.md"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, done.stderr
    assert warnings[0].startswith("warning: cannot write the cache folder /proc/x/rumination (")
    stand_in = warnings[0].split("; using ")[1].split(" ")[0]
    assert not Path(stand_in).exists()  # removed on exit
    report = (tmp_path / "r.md").read_text(encoding="utf-8")
    assert BUNDLED.resolve().as_uri() in report  # its sources link to the bundled files


def test_http_cache_in_an_unwritable_cache_folder_uses_a_stand_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("not a folder", encoding="utf-8")
    monkeypatch.setenv("XDG_CACHE_HOME", str(in_the_way))
    caches = []
    with caplog.at_level(logging.WARNING, logger="rumination.reading.cachedir"):
        for _ in range(2):
            cache = HttpCache.from_settings(Settings(http_cache=True))
            assert cache is not None
            caches.append(cache.path)
            cache.close()
    assert caches[0] == caches[1] and caches[0].name == "http-cache.db"
    assert caches[0].parent.name.startswith("rumination-cache-") and caches[0].exists()
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
        f"warning: cannot write the cache folder {in_the_way}/rumination"
    ]  # once per process
