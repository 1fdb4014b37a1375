"""An optional on-disk cache of fetched pages, shared by runs (setting `http_cache`).

It is a private cache in the sense of RFC 9111: a response is kept only while its own
headers say it is fresh, and never longer than `http_cache_max_age_s`:
`Cache-Control: no-store`, `no-cache` or `Vary: *` keep it out (pages are never revalidated);
`max-age` gives its lifetime (less any `Age`); otherwise `Expires` minus `Date`; otherwise,
with only `Last-Modified`, a tenth of the time since that date (the RFC's usual heuristic).
A response with none of these is not cached. Past `max_bytes` of bodies the oldest go first.
The file is SQLite in WAL mode, so concurrent runs and batch jobs can share it.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rumination.errors import ConfigError
from rumination.reading.cachedir import user_cache_dir
from rumination.urls import normalize_url

if TYPE_CHECKING:
    from rumination.settings import Settings

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    url TEXT PRIMARY KEY,
    final_url TEXT NOT NULL,
    content_type TEXT NOT NULL,
    body BLOB NOT NULL,
    stored_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_stored_at ON responses(stored_at);
"""
_DIRECTIVE = re.compile(r"([a-z-]+)\s*(?:=\s*\"?([^\",]*)\"?)?")


def default_cache_path() -> Path:
    return user_cache_dir() / "http-cache.db"


@dataclass(frozen=True)
class CachedResponse:
    final_url: str
    content_type: str
    body: bytes


def freshness_lifetime(headers: Mapping[str, str], now: float) -> float:
    """Seconds a response with `headers`, received at `now`, stays fresh (0: do not keep)."""
    control = {m.group(1): m.group(2) for m in _DIRECTIVE.finditer(
        headers.get("cache-control", "").lower())}
    if {"no-store", "no-cache"} & control.keys() or headers.get("vary", "").strip() == "*":
        return 0.0
    age = _number(headers.get("age")) or 0.0
    if "max-age" in control:
        return max(0.0, (_number(control["max-age"]) or 0.0) - age)
    date = _timestamp(headers.get("date")) or now
    if "expires" in headers:
        expires = _timestamp(headers["expires"])
        return max(0.0, expires - date - age) if expires is not None else 0.0
    modified = _timestamp(headers.get("last-modified"))
    if modified is not None and modified < date:
        return max(0.0, (date - modified) / 10 - age)
    return 0.0


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _timestamp(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError):
        return None


class HttpCache:
    def __init__(
        self,
        path: str | Path,
        *,
        max_age_s: float = 86400.0,
        max_bytes: int = 512 * 2**20,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.max_age_s = max_age_s
        self.max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=5)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
            self._db.execute("DELETE FROM responses WHERE expires_at <= ?", (clock(),))
            self._db.commit()
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot use the HTTP cache {self.path}: {exc}") from None

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpCache | None:
        if not settings.http_cache:
            return None
        return cls(
            settings.http_cache_path or default_cache_path(),
            max_age_s=settings.http_cache_max_age_s,
            max_bytes=int(settings.http_cache_max_mb * 2**20),
        )

    def close(self) -> None:
        self._db.close()

    async def lookup(self, url: str) -> CachedResponse | None:
        return await asyncio.to_thread(self._lookup, normalize_url(url))

    async def store(
        self, url: str, final_url: str, content_type: str, body: bytes,
        headers: Mapping[str, str],
    ) -> bool:
        """Keep the response if its headers allow it; True if it was kept."""
        now = self._clock()
        lifetime = min(freshness_lifetime(headers, now), self.max_age_s)
        if lifetime <= 0 or len(body) > self.max_bytes:
            return False
        row = (normalize_url(url), final_url, content_type, body, now, now + lifetime)
        await asyncio.to_thread(self._store, row)
        return True

    def _lookup(self, key: str) -> CachedResponse | None:
        with self._lock:
            row = self._db.execute(
                "SELECT final_url, content_type, body FROM responses"
                " WHERE url = ? AND expires_at > ?", (key, self._clock()),
            ).fetchone()
        return CachedResponse(row[0], row[1], bytes(row[2])) if row else None

    def _store(self, row: tuple[str, str, str, bytes, float, float]) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?)", row)
            total = self._db.execute("SELECT coalesce(sum(length(body)), 0) FROM responses")
            excess = int(total.fetchone()[0]) - self.max_bytes
            oldest = self._db.execute(
                "SELECT url, length(body) FROM responses ORDER BY stored_at"
            ).fetchall() if excess > 0 else []
            for key, size in oldest:
                if excess <= 0:
                    break
                self._db.execute("DELETE FROM responses WHERE url = ?", (key,))
                excess -= size
