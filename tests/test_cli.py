from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rumination.cli import app

runner = CliRunner()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_llm_exits_3_with_one_line_naming_the_url(
    corpus_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUMINATION_RETRIES", "0")
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = runner.invoke(app, ["research", "kelp?", "--llm-url", url, "--corpus", str(corpus_db)])
    assert result.exit_code == 3
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and url in lines[0]
    assert "Traceback" not in result.output + result.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["research", "q", "--corpus", "/nonexistent/x.db"], "corpus not found"),
        (["research", "q", "--format", "odt"], "format"),
        (["research", "q", "--max-turns", "0"], "max_turns"),
        (["research", "q", "--mode", "nope"], "mode"),
        (["research", "   ", "--llm-url", "http://127.0.0.1:9/v1"], "question is empty"),
        (["index", "/nonexistent/folder", "--db", "x.db"], "not found: /nonexistent/folder"),
        (["demo", "--format", "xml"], "format"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], needle: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_option_is_a_usage_error() -> None:
    assert runner.invoke(app, ["research", "q", "--no-such-flag"]).exit_code == 2


def test_index_builds_and_updates_incrementally(tmp_path: Path, corpus_dir: Path) -> None:
    db = tmp_path / "c.db"
    first = runner.invoke(app, ["index", str(corpus_dir), "--db", str(db)])
    assert first.exit_code == 0
    assert "3 documents (3 added, 0 updated, 0 unchanged, 0 removed)" in first.stdout
    (corpus_dir / "otters.txt").write_text("Otters changed.", encoding="utf-8")
    second = runner.invoke(app, ["index", str(corpus_dir), "--db", str(db)])
    assert "(0 added, 1 updated, 2 unchanged, 0 removed)" in second.stdout


def test_backends_lists_local() -> None:
    result = runner.invoke(app, ["backends"])
    assert result.exit_code == 0
    assert any(line.startswith("local\t") for line in result.stdout.splitlines())


def test_demo_writes_a_json_report_with_cited_sources(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["demo", "--format", "json", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    assert "SIMULATOR" in result.stderr
    report = json.loads(out.read_text(encoding="utf-8"))
    assert len({c["source_id"] for c in report["citations"]}) >= 5
    assert report["warnings"][0].startswith("SIMULATED")


def test_console_entry_point_runs_the_demo_in_a_subprocess(tmp_path: Path) -> None:
    out = tmp_path / "report.md"
    env_home = tmp_path / "home"
    proc = subprocess.run(
        [sys.executable, "-m", "rumination", "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(env_home), "XDG_CACHE_HOME": str(env_home)},
    )
    assert proc.returncode == 0, proc.stderr
    text = out.read_text(encoding="utf-8")
    assert "## Sources\n\n1. [" in text
    assert '"event": "finished"' in proc.stderr  # not a TTY: JSON lines progress


def test_trace_file_gets_every_event_as_json_lines(tmp_path: Path, corpus_db: Path) -> None:
    from rumination.testing import SimulatorConfig, SimulatorServer, simulate

    trace = tmp_path / "trace.jsonl"
    with SimulatorServer(simulate, SimulatorConfig(model="sim")) as server:
        result = runner.invoke(app, ["research", "How do otters help kelp?", "--llm-url",
                                     server.url, "--model", "sim", "--corpus", str(corpus_db),
                                     "--out", str(tmp_path / "r.md"), "--trace", str(trace)])
    assert result.exit_code == 0, result.stderr
    events = [json.loads(line) for line in trace.read_text(encoding="utf-8").splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "finished"
    calls = [e for e in events if e["event"] == "tool_called"]
    assert calls[0]["name"] == "search" and all("t" in e for e in events)
    assert events[-1]["citations"] >= 2


def test_report_files_get_ordinary_permissions(tmp_path: Path) -> None:
    import os

    from rumination.jobs.output import write_atomic

    old = os.umask(0o022)
    try:
        write_atomic(tmp_path / "r.md", "text")
    finally:
        os.umask(old)
    assert (tmp_path / "r.md").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["r.md"]  # no temporary file left
