"""Judge verdicts cached by (judge, statement, source text) in the run store's SQLite file,
so re-checking a report with the same judge costs no request.

The table lives beside the run store's own tables and is created on first use (it is a
cache: dropping it loses nothing but time)."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from pathlib import Path

from .models import Support

_TABLE = """CREATE TABLE IF NOT EXISTS support_cache (
    key TEXT PRIMARY KEY,
    support_json TEXT NOT NULL
)"""


def cache_key(judge: str, statement: str, evidence: str) -> str:
    digest = hashlib.sha256()
    for part in (judge, statement, evidence):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


class JudgementCache:
    def __init__(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute(_TABLE)

    def get(self, key: str) -> Support | None:
        with self._lock:
            row = self._db.execute(
                "SELECT support_json FROM support_cache WHERE key = ?", (key,)
            ).fetchone()
        return Support.model_validate_json(row[0]) if row else None

    def put(self, key: str, support: Support) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO support_cache VALUES (?, ?)",
                (key, support.model_dump_json()),
            )

    def close(self) -> None:
        self._db.close()
