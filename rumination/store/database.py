"""One small SQL interface over SQLite and PostgreSQL, for the run store and job claims.

    db = connect("sqlite:///runs.db")          # or a plain path, or "postgresql://host/db"
    with db.transaction() as tx:               # committed on exit, rolled back on error
        tx.execute("INSERT INTO runs VALUES (?, ?)", ("a", "b"))
    rows = db.query("SELECT * FROM runs WHERE run_id = ?", ("a",))

Statements use `?` placeholders on both (rewritten to `%s` for psycopg). What differs
between the two lives here: the clock, row locking, insertion order, how to take the
migration lock. One connection per process, shared by its threads under a lock.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from rumination.errors import StoreUnavailable, UsageError
from rumination.urls import redacted

Row = tuple[Any, ...]
Params = Sequence[Any]


class Transaction:
    def __init__(self, db: Database) -> None:
        self.db = db

    def execute(self, sql: str, params: Params = ()) -> list[Row]:
        return self.db._run(sql, params)

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        self.db._run_many(sql, rows)


class Database(ABC):
    dialect: str
    where: str  # for messages: a path, or the URL without its password
    # SQL fragments that differ between the two
    now_epoch: str  # the database's clock, in seconds since 1970
    skip_locked: str  # appended to a SELECT that claims rows
    insertion_order: str  # a column of `runs r` that grows with every insert

    def __init__(self) -> None:
        self._lock = threading.RLock()

    def query(self, sql: str, params: Params = ()) -> list[Row]:
        with self._lock:
            return self._run(sql, params)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self._lock, self._begin():
            yield Transaction(self)

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def has_table(self, name: str) -> bool: ...

    @abstractmethod
    def migration_lock(self, tx: Transaction) -> None:
        """Inside a migration transaction: keep other processes from migrating at once."""

    @abstractmethod
    def _begin(self) -> AbstractContextManager[Any]: ...

    @abstractmethod
    def _run(self, sql: str, params: Params) -> list[Row]: ...

    @abstractmethod
    def _run_many(self, sql: str, rows: Sequence[Params]) -> None: ...


@contextmanager
def immediate_transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE … COMMIT on a connection opened with isolation_level=None; rolled
    back on any error. IMMEDIATE takes the write lock at once, so two writers queue instead
    of failing when both try to upgrade a read."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class SqliteDatabase(Database):
    dialect = "sqlite"
    now_epoch = "((julianday('now') - 2440587.5) * 86400.0)"
    skip_locked = ""  # BEGIN IMMEDIATE already holds the database's one write lock
    insertion_order = "r.rowid"

    def __init__(self, path: Path, read_only: bool = False) -> None:
        super().__init__()
        self.path, self.where = path, str(path)
        if read_only and not path.is_file():
            raise UsageError(f"run store {path} not found (check --store or run_store)")
        try:
            if read_only:  # an existing file only: a mistyped name creates nothing
                self._db = self._connect(path.resolve().as_uri() + "?mode=ro", uri=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._db = self._connect(path)
                self._wal()
            self._db.execute("PRAGMA foreign_keys=ON")
        except (sqlite3.DatabaseError, OSError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise UsageError(f"cannot open run store {path}: {reason} (set run_store "
                             "to a writable file, or keep_runs = false)") from None

    def _wal(self, attempts: int = 50) -> None:
        """Switch to WAL. Two drivers opening a new file at once can see SQLITE_BUSY here
        without the busy handler being called (seen under load): try again for a while."""
        for attempt in range(attempts):
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == attempts - 1:
                    raise
                time.sleep(0.1)

    @staticmethod
    def _connect(target: Path | str, uri: bool = False) -> sqlite3.Connection:
        return sqlite3.connect(target, check_same_thread=False, isolation_level=None,
                               timeout=30.0, uri=uri)  # fmt: skip

    def close(self) -> None:
        self._db.close()

    def has_table(self, name: str) -> bool:
        return bool(self.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                               (name,)))  # fmt: skip

    def migration_lock(self, tx: Transaction) -> None:
        """BEGIN IMMEDIATE already keeps every other writer out."""

    def _begin(self) -> AbstractContextManager[None]:
        return immediate_transaction(self._db)

    def _run(self, sql: str, params: Params) -> list[Row]:
        return self._db.execute(sql, params).fetchall()

    def _run_many(self, sql: str, rows: Sequence[Params]) -> None:
        self._db.executemany(sql, rows)


class PostgresDatabase(Database):
    dialect = "postgresql"
    now_epoch = "extract(epoch from clock_timestamp())::double precision"
    skip_locked = " FOR UPDATE SKIP LOCKED"
    insertion_order = "r.seq"

    def __init__(self, url: str, read_only: bool = False) -> None:
        super().__init__()
        self.where = redacted(url)
        try:
            import psycopg
        except ImportError:
            raise UsageError(
                "a PostgreSQL run store needs psycopg: pip install 'rumination[postgres]'"
            ) from None
        self._lost = psycopg.OperationalError
        try:
            self._db = psycopg.connect(url, autocommit=True, connect_timeout=10)
            if read_only:
                self._db.execute("SET default_transaction_read_only = on")
        except psycopg.Error as exc:
            raise UsageError(f"cannot open run store {self.where}: {_first_line(exc)}") from None

    def close(self) -> None:
        self._db.close()

    def has_table(self, name: str) -> bool:
        return bool(self.query("SELECT to_regclass(?) IS NOT NULL", (name,))[0][0])

    def migration_lock(self, tx: Transaction) -> None:
        tx.execute("SELECT pg_advisory_xact_lock(7262851)")  # any constant, the same everywhere

    @contextmanager
    def _begin(self) -> Iterator[None]:
        with self._reachable(), self._db.transaction():
            yield

    def _run(self, sql: str, params: Params) -> list[Row]:
        with self._reachable():
            cursor = self._db.execute(sql.replace("?", "%s"), params)
            return cursor.fetchall() if cursor.description is not None else []

    def _run_many(self, sql: str, rows: Sequence[Params]) -> None:
        with self._reachable(), self._db.cursor() as cursor:
            cursor.executemany(sql.replace("?", "%s"), rows)

    @contextmanager
    def _reachable(self) -> Iterator[None]:
        try:
            yield
        except self._lost as exc:
            raise StoreUnavailable(f"run store {self.where}: {_first_line(exc)}") from None


def connect(target: str | Path, read_only: bool = False) -> Database:
    """A database from a path, a sqlite:///path URL or a postgresql:// URL. `read_only`: an
    existing one, for reading only (a SQLite file that does not exist is a UsageError)."""
    text = str(target)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(text, read_only)
    if text.startswith("sqlite:///"):  # as SQLAlchemy: sqlite:///rel.db, sqlite:////abs.db
        return SqliteDatabase(Path(text.removeprefix("sqlite:///")), read_only)
    if "://" in text:
        raise UsageError(f"unknown run store {redacted(text)}: use sqlite:///PATH or postgresql://…")
    return SqliteDatabase(Path(text), read_only)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
