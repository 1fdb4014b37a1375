"""Commands that only read the run store never create one (issue 21, item 9): `runs list`,
`runs show` and `runs export` open an existing store read-only, and a store that is not
there (a mistyped name, a missing folder) is one line and exit 2."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rumination.cli import app
from rumination.errors import UsageError
from rumination.store.run_store import MIGRATIONS, RunStore
from rumination.testing.postgres import LocalPostgres

runner = CliRunner()
READERS = [["runs", "list"], ["runs", "show", "r1"], ["runs", "export", "r1"]]


def stored_run(target: str | Path) -> None:
    store = RunStore(target)
    store.create_run("r1", "otters?", "m", "local", "rumination", "{}")
    store.close()


def assert_one_error_line(stderr: str, needle: str) -> None:
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], stderr


@pytest.mark.parametrize("reader", READERS, ids=lambda r: r[1])
@pytest.mark.parametrize("name", ["typo.db", "missing/folder/typo.db"])
def test_a_missing_store_is_exit_2_and_stays_missing(
    reader: list[str], name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, [*reader, "--store", f"sqlite:///{name}"])
    assert result.exit_code == 2, result.output
    assert_one_error_line(result.stderr, f"run store {name} not found")
    assert list(tmp_path.iterdir()) == []  # no file, no folder


def test_the_default_store_is_not_created_by_reading_either(tmp_path: Path) -> None:
    result = runner.invoke(app, ["runs", "list"])
    assert result.exit_code == 2
    assert_one_error_line(result.stderr, "not found")
    assert not (Path(os.environ["XDG_DATA_HOME"]) / "rumination").exists()


def test_an_existing_store_is_read_and_not_written(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    stored_run(path)
    before = path.read_bytes()
    listed = runner.invoke(app, ["runs", "list", "--store", f"sqlite:///{path}"])
    shown = runner.invoke(app, ["runs", "show", "r1", "--store", str(path)])
    assert listed.exit_code == shown.exit_code == 0, listed.output + shown.output
    assert listed.stdout.startswith("r1\trunning\t0 turns") and "question: otters?" in shown.stdout
    assert path.read_bytes() == before
    reader = RunStore(path, read_only=True)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.set_status("r1", "finished")
    reader.close()


def test_a_sqlite_file_that_is_no_run_store_gets_no_tables(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
    result = runner.invoke(app, ["runs", "list", "--store", str(other)])
    assert result.exit_code == 2
    assert_one_error_line(result.stderr, f"{other} is not a rumination run store")
    with sqlite3.connect(other) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert tables == {"notes"}


def test_a_store_of_an_older_version_is_upgraded_then_read(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(MIGRATIONS[0])
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        db.execute("INSERT INTO schema_version VALUES (1)")
        db.execute("INSERT INTO runs VALUES ('old', 'q', 'm', 'local', 'rumination', '{}',"
                   " 'finished', '2025-01-01', '2025-01-01', NULL)")
    store = RunStore(path, read_only=True)
    assert [r.run_id for r in store.list_runs()] == ["old"] and store.turns("old") == []
    assert store.schema_version() == len(MIGRATIONS)
    store.close()


def test_reading_a_postgresql_store_creates_no_tables(postgres: LocalPostgres) -> None:
    empty = postgres.create_database()
    result = runner.invoke(app, ["runs", "list", "--store", empty])
    assert result.exit_code == 2
    assert_one_error_line(result.stderr, "is not a rumination run store")
    with pytest.raises(UsageError, match="not a rumination run store"):
        RunStore(empty, read_only=True)  # still: the failed read created nothing
    stored_run(empty)
    listed = runner.invoke(app, ["runs", "list", "--store", empty])
    assert listed.exit_code == 0 and listed.stdout.startswith("r1\t")
    from psycopg.errors import ReadOnlySqlTransaction

    reader = RunStore(empty, read_only=True)
    with pytest.raises(ReadOnlySqlTransaction):
        reader.set_status("r1", "finished")
    reader.close()


def test_runs_list_on_a_typo_as_users_run_it(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "rumination", "runs", "list", "--store",
         "sqlite:///nodir/typo.db"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=dict(os.environ),
    )
    assert done.returncode == 2 and done.stdout == ""
    assert_one_error_line(done.stderr, "run store nodir/typo.db not found")
    assert list(tmp_path.iterdir()) == []
