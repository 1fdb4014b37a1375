"""The command line's first impression: fast start, honest help texts, --version."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import rumination
from rumination.agent.preview import FILE_TYPES
from rumination.cli import app
from rumination.settings import Settings

runner = CliRunner()
HEAVY = ("httpx", "pydantic", "rich", "trafilatura", "lxml", "jinja2", "sqlite3", "asyncio",
         "rumination.agent.researcher", "rumination.settings", "rumination.models")


@pytest.mark.parametrize("args", [["--help"], ["--version"]])
def test_help_and_version_import_nothing_heavy(args: list[str]) -> None:
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "rumination", *args],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")}
    loaded = sorted(m for m in imported if m.split(".")[0] in HEAVY or m in HEAVY)
    assert loaded == []


def test_version_prints_the_package_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"rumination {rumination.__version__}"


def test_index_help_keeps_square_brackets() -> None:
    result = runner.invoke(app, ["index", "--help"])
    assert "rumination[pdf]" in result.stdout


def test_research_help_shows_the_defaults() -> None:
    text = " ".join(runner.invoke(app, ["research", "--help"]).stdout.split())
    s = Settings()
    for default in (s.llm_url, s.model, s.backend, str(s.max_turns), s.mode, s.format):
        assert f"[default: {default}" in text or f"else {default}]" in text, default


def test_extract_help_lists_every_type_it_takes() -> None:
    text = " ".join(runner.invoke(app, ["extract", "--help"]).stdout.split())
    for suffix in FILE_TYPES:
        assert re.search(rf"{re.escape(suffix)}\b", text), suffix


def test_runs_export_help_says_what_out_writes() -> None:
    text = " ".join(runner.invoke(app, ["runs", "export", "--help"]).stdout.split())
    assert "write the report" not in text
    assert "write the export to this file" in text
