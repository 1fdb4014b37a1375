"""The run store: every run, turn and source in SQLite, committed after every turn.

WAL mode, so readers (`rumination runs list`) never block a running job; a version table
and ordered migrations, so an old store file is upgraded in place. A killed run loses at
most the turn in flight and resumes from its last committed turn with the same citation ids.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .errors import UsageError
from .models import Report, Source, ToolCall, Turn, Usage

MIGRATIONS: list[str] = [
    """
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        question TEXT NOT NULL,
        model TEXT NOT NULL,
        backend TEXT NOT NULL,
        mode TEXT NOT NULL,
        settings_json TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        report_json TEXT
    );
    CREATE TABLE turns (
        run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        assistant_text TEXT NOT NULL,
        thinking TEXT NOT NULL,
        tool_call_json TEXT,
        observation TEXT,
        protocol_error TEXT,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        model_seconds REAL NOT NULL,
        tool_seconds REAL NOT NULL,
        PRIMARY KEY (run_id, idx)
    );
    CREATE TABLE sources (
        run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
        source_id INTEGER NOT NULL,
        url TEXT NOT NULL,
        title TEXT NOT NULL,
        snippet TEXT NOT NULL,
        fetched_at TEXT,
        PRIMARY KEY (run_id, source_id)
    );
    CREATE INDEX runs_by_status ON runs(status, updated_at);
    """,
    "ALTER TABLE turns ADD COLUMN cached_prompt_tokens INTEGER NOT NULL DEFAULT 0",
]

_RUN_RECORD_SELECT = (  # the columns of RunRecord, in order
    "SELECT r.run_id, question, model, backend, mode, settings_json, status, created_at,"
    " updated_at, (SELECT count(*) FROM turns t WHERE t.run_id = r.run_id) FROM runs r"
)
RUNNING, FINISHED, FAILED, INTERRUPTED = "running", "finished", "failed", "interrupted"


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    question: str
    model: str
    backend: str
    mode: str
    settings_json: str
    status: str
    created_at: str
    updated_at: str
    turns: int


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class RunStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._migrate()
        except (sqlite3.DatabaseError, OSError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise UsageError(f"cannot open run store {self.path}: {reason} (set run_store "
                             "to a writable file, or keep_runs = false)") from None

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _migrate(self) -> None:
        self._db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = self._db.execute("SELECT max(version) FROM schema_version").fetchone()
        current = row[0] or 0
        if current > len(MIGRATIONS):
            raise UsageError(f"run store {self.path} is from a newer rumination (v{current})")
        for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
            with self._transaction() as db:
                for statement in filter(str.strip, script.split(";")):
                    db.execute(statement)
                db.execute("INSERT INTO schema_version(version) VALUES (?)", (version,))

    def schema_version(self) -> int:
        return int(self._db.execute("SELECT max(version) FROM schema_version").fetchone()[0])

    def create_run(
        self, run_id: str, question: str, model: str, backend: str, mode: str, settings_json: str
    ) -> None:
        now = _now()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                (run_id, question, model, backend, mode, settings_json, RUNNING, now, now),
            )

    def save_turn(self, run_id: str, turn: Turn, sources: list[Source]) -> None:
        """Commit one finished turn and the run's sources together."""
        call = turn.tool_call.model_dump_json() if turn.tool_call else None
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO turns VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, turn.index, turn.assistant_text, turn.thinking, call, turn.observation,
                 turn.protocol_error, turn.usage.prompt_tokens, turn.usage.completion_tokens,
                 turn.model_seconds, turn.tool_seconds, turn.usage.cached_prompt_tokens),
            )
            db.executemany(
                "INSERT OR REPLACE INTO sources VALUES (?, ?, ?, ?, ?, ?)",
                [(run_id, s.source_id, s.url, s.title, s.snippet,
                  s.fetched_at.isoformat() if s.fetched_at else None) for s in sources],
            )
            db.execute("UPDATE runs SET updated_at = ? WHERE run_id = ?", (_now(), run_id))

    def set_status(self, run_id: str, status: str, report: Report | None = None) -> None:
        report_json = report.model_dump_json() if report is not None else None
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET status = ?, updated_at = ?,"
                " report_json = coalesce(?, report_json) WHERE run_id = ?",
                (status, _now(), report_json, run_id),
            )

    def get_run(self, run_id: str) -> RunRecord:
        row = self._db.execute(
            f"{_RUN_RECORD_SELECT} WHERE r.run_id = ?", (run_id,),
        ).fetchone()
        if row is None:
            raise UsageError(f"no run {run_id!r} in {self.path}")
        return RunRecord(*row)

    def list_runs(self, limit: int = 50) -> list[RunRecord]:
        rows = self._db.execute(
            f"{_RUN_RECORD_SELECT} ORDER BY created_at DESC, r.rowid DESC LIMIT ?", (limit,),
        ).fetchall()
        return [RunRecord(*row) for row in rows]

    def turns(self, run_id: str) -> list[Turn]:
        rows = self._db.execute(
            "SELECT idx, assistant_text, thinking, tool_call_json, observation, protocol_error,"
            " prompt_tokens, completion_tokens, model_seconds, tool_seconds, cached_prompt_tokens"
            " FROM turns WHERE run_id = ? ORDER BY idx", (run_id,),
        ).fetchall()
        return [
            Turn(index=r[0], assistant_text=r[1], thinking=r[2],
                 tool_call=ToolCall.model_validate_json(r[3]) if r[3] else None,
                 observation=r[4], protocol_error=r[5],
                 usage=Usage(prompt_tokens=r[6], completion_tokens=r[7],
                             cached_prompt_tokens=r[10]),
                 model_seconds=r[8], tool_seconds=r[9])
            for r in rows
        ]

    def sources(self, run_id: str) -> list[Source]:
        rows = self._db.execute(
            "SELECT source_id, url, title, snippet, fetched_at FROM sources"
            " WHERE run_id = ? ORDER BY source_id", (run_id,),
        ).fetchall()
        return [
            Source(source_id=r[0], url=r[1], title=r[2], snippet=r[3],
                   fetched_at=datetime.fromisoformat(r[4]) if r[4] else None)
            for r in rows
        ]

    def is_resumable(self, run_id: str) -> bool:
        """True for a run that stopped part-way (interrupted) and can go on where it stopped."""
        row = self._db.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return row is not None and row[0] == INTERRUPTED

    def report(self, run_id: str) -> Report | None:
        row = self._db.execute(
            "SELECT report_json FROM runs WHERE run_id = ?", (run_id,)
        ).fetchone()
        return Report.model_validate_json(row[0]) if row and row[0] else None


def default_store_path() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "rumination" / "runs.db"
