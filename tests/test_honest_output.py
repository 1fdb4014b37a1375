"""Honest labels and consistent numbers: the report format follows --out, batch progress
names its job, unknown backend options are refused for every backend, counts in words."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from rumination.agent.backends import create_backend
from rumination.cli import app
from rumination.errors import ConfigError
from rumination.events import Event
from rumination.progress import ConsoleProgress
from rumination.settings import Settings
from rumination.wording import plural

runner = CliRunner()


@pytest.mark.parametrize(("name", "check"), [
    ("r.html", lambda t: t.startswith("<!DOCTYPE html>")),
    ("r.json", lambda t: json.loads(t)["simulated"] is True),
    ("r.md", lambda t: "## Sources" in t),
])  # fmt: skip
def test_the_out_file_name_sets_the_format(tmp_path: Path, name: str, check: object) -> None:
    out = tmp_path / name
    result = runner.invoke(app, ["demo", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    assert callable(check) and check(out.read_text(encoding="utf-8"))


def test_a_format_that_contradicts_the_file_name_is_bad_input(tmp_path: Path) -> None:
    result = runner.invoke(app, ["research", "q?", "--out", str(tmp_path / "r.html"),
                                 "--format", "md", "--llm-url", "http://127.0.0.1:9/v1"])
    assert result.exit_code == 2
    assert "--format md contradicts --out" in result.stderr
    assert not (tmp_path / "r.html").exists()


def test_batch_progress_lines_name_their_job() -> None:
    stream = io.StringIO()
    progress = ConsoleProgress(Console(file=stream, width=200, highlight=False))
    for job in ("otters", "urchins"):
        progress(Event("run_started", {"job": job, "run_id": "r1", "model": "m",
                                       "backend": "local", "question": "q"}))
        progress(Event("tool_called", {"job": job, "index": 0, "name": "search",
                                       "arguments": {"query": "kelp [pdf]"}}))
        progress(Event("source_added", {"job": job, "source_id": 0}))
        progress(Event("answer_started", {"job": job}))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 6
    assert all(("otters" in line) != ("urchins" in line) for line in lines)
    assert lines[2].split("s ", 1)[1].startswith("otters writing the answer (1 source seen)")
    assert lines[1].endswith("turn 1: search(query='kelp [pdf]')")  # the model's text, as is


def test_unknown_options_are_refused_for_a_backend_without_options(corpus_db: Path) -> None:
    settings = Settings(corpus=str(corpus_db), backends={"local": {"foo": "bar"}})
    with pytest.raises(ConfigError, match="backend local takes no options .got foo."):
        create_backend(settings)
    result = runner.invoke(app, ["research", "q?", "--backend-opt", "foo=bar",
                                 "--corpus", str(corpus_db), "--llm-url", "http://127.0.0.1:9/v1"])
    assert result.exit_code == 2 and "takes no options" in result.stderr


def test_counts_are_written_in_the_right_number() -> None:
    assert [plural(n, "warning") for n in (0, 1, 2)] == ["0 warnings", "1 warning", "2 warnings"]


def test_the_report_line_says_1_warning_and_1_source(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "r.md")])
    assert result.exit_code == 0
    line = next(x for x in result.stderr.splitlines() if x.startswith("report written"))
    assert line.endswith(", 1 warning")  # the SIMULATED label
    assert "1 warnings" not in result.stderr and "1 sources" not in result.stderr
