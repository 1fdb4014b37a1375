"""Batch outputs to fsspec URLs: the same layout and idempotency as a local folder."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import fsspec
import pytest
from typer.testing import CliRunner

from rumination import UsageError
from rumination.cli import app
from rumination.jobs.outdir import LocalDir, OutDir, RemoteDir
from rumination.testing import SimulatorConfig, SimulatorServer, simulate

runner = CliRunner()
QUESTIONS = ["How do otters help kelp?", "What are urchin barrens?"]


def batch_args(jobs: Path, out: str, url: str) -> list[str]:
    return ["batch", str(jobs), "--out-dir", out, "--llm-url", url, "--model", "sim",
            "--format", "json"]  # fmt: skip


def write_jobs(path: Path, corpus_db: Path) -> Path:
    lines = [json.dumps({"question": q, "corpus": str(corpus_db)}) for q in QUESTIONS]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_batch_to_memory_url_has_the_local_layout_and_reruns_idempotently(
    tmp_path: Path, corpus_db: Path
) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", corpus_db)
    url = f"memory://reports-{uuid.uuid4().hex[:6]}/nightly"
    local = tmp_path / "local"
    with SimulatorServer(simulate, SimulatorConfig(model="sim")) as server:
        first = runner.invoke(app, batch_args(jobs, url, server.url))
        assert first.exit_code == 0, first.stderr
        runner.invoke(app, batch_args(jobs, str(local), server.url))
        served = len(server.requests)
        second = runner.invoke(app, batch_args(jobs, url, server.url))
    assert second.exit_code == 0, second.stderr
    assert len(server.requests) == served  # nothing asked of the model again
    fs, root = fsspec.core.url_to_fs(url)
    names = sorted(Path(p).name for p in fs.ls(root, detail=False))
    assert names == sorted(p.name for p in local.iterdir())  # the same layout
    summary = json.loads(fs.cat_file(f"{root}/summary.json"))
    assert [r["status"] for r in summary] == ["skipped", "skipped"]
    state = json.loads(fs.cat_file(f"{root}/batch-state.json"))
    for record in state.values():
        assert record["output"].startswith(url + "/")
        report = json.loads(fs.cat_file(record["output"].removeprefix("memory://")))
        assert report["run_id"] == record["run_id"] and report["citations"]


def test_file_urls_are_local_folders(tmp_path: Path) -> None:
    out = OutDir.open(f"file://{tmp_path}/out")
    assert isinstance(out, LocalDir)
    out.write_text("a.md", "hello")
    assert (tmp_path / "out" / "a.md").read_text(encoding="utf-8") == "hello"
    assert out.exists("a.md") and out.read_text("b.md") is None
    assert out.child("2026").location("x.md") == str(tmp_path / "out" / "2026" / "x.md")


def test_a_failed_move_leaves_neither_a_partial_report_nor_a_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = OutDir.open(f"local://{tmp_path}/out")  # fsspec's local filesystem: no atomic PUT
    assert isinstance(out, RemoteDir) and not out.whole_object
    out.write_text("r.md", "first version")

    def broken_move(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(out.fs, "mv", broken_move)
    with pytest.raises(OSError):
        out.write_text("r.md", "second version")
    assert out.read_text("r.md") == "first version"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["r.md"]


def test_memory_writes_are_whole_objects() -> None:
    out = OutDir.open(f"memory://whole-{uuid.uuid4().hex[:6]}")
    assert isinstance(out, RemoteDir) and out.whole_object
    out.child("sub").write_text("r.md", "ü" * 10)
    assert out.child("sub").read_text("r.md") == "ü" * 10


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("s3://key:secret@bucket/reports", "credentials in the environment"),
        ("nosuchfs://bucket/reports", "nosuchfs"),
    ],
)
def test_bad_out_dir_urls_are_one_line_and_exit_2(
    tmp_path: Path, corpus_db: Path, url: str, needle: str
) -> None:
    with pytest.raises(UsageError, match=needle):
        OutDir.open(url)
    jobs = write_jobs(tmp_path / "jobs.jsonl", corpus_db)
    result = runner.invoke(app, ["batch", str(jobs), "--out-dir", url])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and needle in result.stderr
    assert "secret" not in result.stderr
