"""Judge verdicts cached by (judge, statement, source text) in the run store's database
(SQLite or PostgreSQL, through rumination.store.database), so re-checking a report with the same
judge costs no request.

The table lives beside the run store's own tables and is created on first use (it is a
cache: dropping it loses nothing but time)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from rumination.models import Support
from rumination.store.database import connect

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
    def __init__(self, target: str | Path) -> None:
        """`target`: the run store's path or URL (see rumination.store.run_store.store_target)."""
        self._db = connect(target)
        with self._db.transaction() as tx:
            tx.execute(_TABLE)

    def get(self, key: str) -> Support | None:
        rows = self._db.query("SELECT support_json FROM support_cache WHERE key = ?", (key,))
        return Support.model_validate_json(rows[0][0]) if rows else None

    def put(self, key: str, support: Support) -> None:
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO support_cache VALUES (?, ?) ON CONFLICT (key)"
                " DO UPDATE SET support_json = excluded.support_json",
                (key, support.model_dump_json()),
            )

    def close(self) -> None:
        self._db.close()
