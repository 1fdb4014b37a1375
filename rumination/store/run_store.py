"""The run store: every run, turn and source, committed after every turn, in SQLite or
PostgreSQL (`store_url`: a path, sqlite:///PATH or postgresql://…; see rumination.store.database).

SQLite in WAL mode, so readers (`rumination runs list`) never block a running job. A version
table and ordered migrations per database, so an old store is upgraded in place. A killed run
loses at most the turn in flight and resumes from its last committed turn with the same
citation ids. The store also holds batch job claims (rumination.store.claims).
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rumination.errors import UsageError
from rumination.models import Report, Source, ToolCall, Turn, Usage
from rumination.settings import Settings
from rumination.store.database import Database, connect

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
    """
    CREATE TABLE job_claims (
        batch TEXT NOT NULL,
        job TEXT NOT NULL,
        position INTEGER NOT NULL,
        status TEXT NOT NULL,
        owner TEXT,
        lease_until REAL,
        run_id TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        result_json TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (batch, job)
    );
    CREATE INDEX job_claims_by_status ON job_claims(batch, status, position)
    """,
    "ALTER TABLE sources ADD COLUMN rendered INTEGER NOT NULL DEFAULT 0",
    # the batch job a run answers (its name): "what changed since" finds the job's last run
    "ALTER TABLE runs ADD COLUMN job TEXT",
]
# The same schema, version for version, in PostgreSQL's types; `seq` keeps insertion order.
POSTGRES_MIGRATIONS: list[str] = [
    MIGRATIONS[0].replace("REAL", "DOUBLE PRECISION").replace(
        "run_id TEXT PRIMARY KEY,", "run_id TEXT PRIMARY KEY, seq BIGSERIAL,"
    ),
    MIGRATIONS[1],
    MIGRATIONS[2].replace("REAL", "DOUBLE PRECISION"),
    MIGRATIONS[3],
    MIGRATIONS[4],
]

_RUN_RECORD_SELECT = (  # the columns of RunRecord, in order
    "SELECT r.run_id, question, model, backend, mode, settings_json, status, created_at,"
    " updated_at, (SELECT count(*) FROM turns t WHERE t.run_id = r.run_id) FROM runs r"
)
RUNNING, FINISHED, FAILED, INTERRUPTED = "running", "finished", "failed", "interrupted"
# accepted by the service and waiting for a worker (again, after a restart), or cancelled there
QUEUED, CANCELLED = "queued", "cancelled"


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
    def __init__(self, target: str | Path, *, read_only: bool = False) -> None:
        """`target`: a path or sqlite:/// URL (SQLite), or a postgresql:// URL. `read_only`:
        an existing store, for reading (`runs list`): nothing is created, a missing store is
        a UsageError."""
        self.db: Database = connect(target, read_only)
        self.where = self.db.where
        self.migrations = POSTGRES_MIGRATIONS if self.db.dialect == "postgresql" else MIGRATIONS
        try:
            if read_only:
                self._open_existing(target)
            else:
                self._migrate()
        except sqlite3.DatabaseError as exc:
            self.db.close()
            hint = "check --store or run_store" if read_only else (
                "set run_store to a writable file, or keep_runs = false")
            raise UsageError(f"cannot open run store {self.where}: {exc} ({hint})") from None
        except Exception:
            self.db.close()
            raise

    def close(self) -> None:
        self.db.close()

    def _migrate(self) -> None:
        with self.db.transaction() as tx:
            self.db.migration_lock(tx)
            tx.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            current = tx.execute("SELECT max(version) FROM schema_version")[0][0] or 0
            self._refuse_newer(current)
            for version, script in enumerate(self.migrations[current:], start=current + 1):
                for statement in filter(str.strip, script.split(";")):
                    tx.execute(statement)
                tx.execute("INSERT INTO schema_version(version) VALUES (?)", (version,))

    def _open_existing(self, target: str | Path) -> None:
        """Read-only: the store must exist; one from an older rumination is upgraded first
        (with a connection that may write), as any command writing to it would."""
        if not self.db.has_table("schema_version"):
            raise UsageError(f"{self.where} is not a rumination run store (no run was ever "
                             "stored there; check --store or run_store)")
        current = self.db.query("SELECT max(version) FROM schema_version")[0][0] or 0
        self._refuse_newer(current)
        if current < len(self.migrations):
            self.db.close()
            self.db = connect(target)
            self._migrate()

    def _refuse_newer(self, version: int) -> None:
        if version > len(self.migrations):
            raise UsageError(f"run store {self.where} is from a newer rumination (v{version})")

    def schema_version(self) -> int:
        return int(self.db.query("SELECT max(version) FROM schema_version")[0][0])

    def create_run(
        self, run_id: str, question: str, model: str, backend: str, mode: str, settings_json: str,
        status: str = RUNNING,
    ) -> None:
        now = _now()
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO runs (run_id, question, model, backend, mode, settings_json, status,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, question, model, backend, mode, settings_json, status, now, now),
            )

    def claim_queued(self, run_id: str) -> bool:
        """Mark a queued run running; False when it is no longer queued (another service
        sharing the store took it, or it was cancelled)."""
        with self.db.transaction() as tx:
            taken = tx.execute(
                "UPDATE runs SET status = ?, updated_at = ? WHERE run_id = ? AND status = ?"
                " RETURNING run_id", (RUNNING, _now(), run_id, QUEUED),
            )
        return bool(taken)

    def runs_with_status(self, status: str) -> list[RunRecord]:
        """Every run in `status`, oldest first."""
        rows = self.db.query(
            f"{_RUN_RECORD_SELECT} WHERE status = ? ORDER BY created_at,"
            f" {self.db.insertion_order}", (status,),
        )
        return [RunRecord(*row) for row in rows]

    def save_turn(self, run_id: str, turn: Turn, sources: list[Source]) -> None:
        """Commit one finished turn and the run's sources together."""
        call = turn.tool_call.model_dump_json() if turn.tool_call else None
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM turns WHERE run_id = ? AND idx = ?", (run_id, turn.index))
            tx.execute(
                "INSERT INTO turns (run_id, idx, assistant_text, thinking, tool_call_json,"
                " observation, protocol_error, prompt_tokens, completion_tokens, model_seconds,"
                " tool_seconds, cached_prompt_tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, turn.index, turn.assistant_text, turn.thinking, call, turn.observation,
                 turn.protocol_error, turn.usage.prompt_tokens, turn.usage.completion_tokens,
                 turn.model_seconds, turn.tool_seconds, turn.usage.cached_prompt_tokens),
            )
            tx.executemany(
                "INSERT INTO sources (run_id, source_id, url, title, snippet, fetched_at, rendered)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, source_id)"
                " DO UPDATE SET url = excluded.url, title = excluded.title,"
                " snippet = excluded.snippet, fetched_at = excluded.fetched_at,"
                " rendered = excluded.rendered",
                [(run_id, s.source_id, s.url, s.title, s.snippet,
                  s.fetched_at.isoformat() if s.fetched_at else None, int(s.rendered))
                 for s in sources],
            )
            tx.execute("UPDATE runs SET updated_at = ? WHERE run_id = ?", (_now(), run_id))

    def set_status(self, run_id: str, status: str, report: Report | None = None) -> None:
        report_json = report.model_dump_json() if report is not None else None
        with self.db.transaction() as tx:
            tx.execute(
                "UPDATE runs SET status = ?, updated_at = ?,"
                " report_json = coalesce(?, report_json) WHERE run_id = ?",
                (status, _now(), report_json, run_id),
            )

    def set_job(self, run_id: str, job: str) -> None:
        """Record that `run_id` answers the batch job named `job`."""
        with self.db.transaction() as tx:
            tx.execute("UPDATE runs SET job = ? WHERE run_id = ?", (job, run_id))

    def previous_run(self, run_id: str) -> RunRecord | None:
        """The latest finished run made before `run_id` of the same job (a run of a batch
        job), else of the same question (an ad-hoc run); None when there is none."""
        rows = self.db.query("SELECT job, question FROM runs WHERE run_id = ?", (run_id,))
        if not rows:
            raise UsageError(f"no run {run_id!r} in {self.where}")
        job, question = rows[0]
        same = "r.job = ?" if job is not None else "r.question = ?"
        order = self.db.insertion_order
        found = self.db.query(
            f"{_RUN_RECORD_SELECT} WHERE {same} AND r.status = ? AND r.report_json IS NOT NULL"
            f" AND {order} < (SELECT {order} FROM runs r WHERE r.run_id = ?)"
            f" ORDER BY {order} DESC LIMIT 1",
            (job if job is not None else question, FINISHED, run_id),
        )  # fmt: skip
        return RunRecord(*found[0]) if found else None

    def get_run(self, run_id: str) -> RunRecord:
        rows = self.db.query(f"{_RUN_RECORD_SELECT} WHERE r.run_id = ?", (run_id,))
        if not rows:
            raise UsageError(f"no run {run_id!r} in {self.where}")
        return RunRecord(*rows[0])

    def list_runs(self, limit: int = 50) -> list[RunRecord]:
        rows = self.db.query(
            f"{_RUN_RECORD_SELECT} ORDER BY created_at DESC, {self.db.insertion_order} DESC"
            " LIMIT ?", (limit,),
        )  # fmt: skip
        return [RunRecord(*row) for row in rows]

    def turns(self, run_id: str) -> list[Turn]:
        rows = self.db.query(
            "SELECT idx, assistant_text, thinking, tool_call_json, observation, protocol_error,"
            " prompt_tokens, completion_tokens, model_seconds, tool_seconds, cached_prompt_tokens"
            " FROM turns WHERE run_id = ? ORDER BY idx", (run_id,),
        )
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
        rows = self.db.query(
            "SELECT source_id, url, title, snippet, fetched_at, rendered FROM sources"
            " WHERE run_id = ? ORDER BY source_id", (run_id,),
        )
        return [
            Source(source_id=r[0], url=r[1], title=r[2], snippet=r[3],
                   fetched_at=datetime.fromisoformat(r[4]) if r[4] else None,
                   rendered=bool(r[5]))
            for r in rows
        ]

    def is_resumable(self, run_id: str) -> bool:
        """True for a run that stopped part-way (interrupted) and can go on where it stopped."""
        rows = self.db.query("SELECT status FROM runs WHERE run_id = ?", (run_id,))
        return bool(rows) and rows[0][0] == INTERRUPTED

    def report(self, run_id: str) -> Report | None:
        rows = self.db.query("SELECT report_json FROM runs WHERE run_id = ?", (run_id,))
        return Report.model_validate_json(rows[0][0]) if rows and rows[0][0] else None


def default_store_path() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "rumination" / "runs.db"


def store_target(settings: Settings) -> str:
    """Where `settings` keep runs: store_url, else run_store, else the default file."""
    return settings.store_url or settings.run_store or str(default_store_path())


def open_store(settings: Settings, read_only: bool = False) -> RunStore:
    return RunStore(store_target(settings), read_only=read_only)
