"""The command line's last rough edges (issue 21, item 16): click's own usage errors are one
`error:` line with exit 2 like every other bad input, `runs show --full` prints what each tool
returned, and an unwritable `--out` names the folder that is really at fault."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rumination.agent.researcher import Researcher
from rumination.cli import app
from rumination.settings import Settings
from rumination.store.run_store import RunStore
from rumination.testing import SimulatorModel

runner = CliRunner()


def rumination(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed command's entry point, as a user starts it."""
    return subprocess.run([sys.executable, "-m", "rumination", *args], capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize(("args", "message"), [
    (["research"], "error: Missing argument 'QUESTION'. (see 'rumination research --help')"),
    (["research", "q?", "--bogus"], "error: No such option: --bogus"),
    (["research", "q?", "--max-turns", "many"], "error: Invalid value for '--max-turns': "),
    (["runs", "show"], "error: Missing argument 'run_id'. (see 'rumination runs show --help')"),
    (["nosuch"], "error: No such command 'nosuch'. (see 'rumination --help')"),
])
def test_usage_errors_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = rumination(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(message), result.stderr


def test_help_and_bare_commands_still_show_the_help() -> None:
    helped = rumination("--help")
    assert helped.returncode == 0 and "Commands:" in helped.stdout and "runs" in helped.stdout
    for bare in ([], ["runs"]):  # no_args_is_help: the help, not an error line
        shown = rumination(*bare)
        assert "Usage: rumination" in shown.stderr and "Commands:" in shown.stderr
        assert "error:" not in shown.stderr and shown.returncode == 2
    assert rumination("--version").stdout.startswith("rumination ")


def test_runs_show_stays_compact_and_full_prints_what_each_tool_returned(
    tmp_path: Path, corpus_db: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    store = RunStore(url)
    settings = Settings(corpus=str(corpus_db), max_turns=4)
    run_id = asyncio.run(Researcher(settings, llm=SimulatorModel(), store=store)
                         .run("otters?")).run_id
    turns = store.turns(run_id)
    first = turns[0]
    assert first.observation and first.assistant_text
    compact = runner.invoke(app, ["runs", "show", run_id, "--store", url])
    full = runner.invoke(app, ["runs", "show", run_id, "--full", "--store", url])
    assert compact.exit_code == full.exit_code == 0, compact.output + full.output

    observation_line = next(line for line in first.observation.splitlines() if line.strip())
    assert observation_line not in compact.stdout
    assert f"      {observation_line}" in full.stdout
    assert f"      {first.assistant_text.splitlines()[0]}" in full.stdout
    # every line of the compact listing is in the full one, in the same order
    kept = [line for line in full.stdout.splitlines() if line in compact.stdout.splitlines()]
    assert kept == compact.stdout.splitlines()
    assert full.stdout.count("    observation:") == len(turns)


def test_an_out_file_under_a_file_names_that_file(tmp_path: Path) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder", encoding="utf-8")
    for out in (blocker / "r.md", blocker / "sub" / "r.md"):
        result = runner.invoke(app, ["demo", "--out", str(out)])
        assert result.exit_code == 2
        assert result.stderr == f"error: cannot write --out {out}: {blocker} is a file, not a " \
                                "folder\n"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_an_out_file_in_proc_names_proc_and_the_file() -> None:
    result = runner.invoke(app, ["demo", "--out", "/proc/r.md"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot write --out /proc/r.md: the folder /proc "
                                    "takes no new files (")
    missing = runner.invoke(app, ["demo", "--out", "/proc/nosuch/r.md"])
    assert missing.stderr.startswith("error: cannot write --out /proc/nosuch/r.md: cannot "
                                     "create the folder /proc/nosuch: ")
