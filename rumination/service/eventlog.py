"""One run's events as `--trace` records: kept in memory, appended to a JSONL file, and
followed by any number of readers, each getting a replay from the start and then the rest live.

The file outlives the process, so a run's events can still be replayed after a restart (the
run is then no longer live: the replay ends with the file).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from rumination.events import Event
from rumination.progress import QUIET_IN_TRACE, trace_record

KEEPALIVE_S = 15.0


class EventLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: list[dict[str, Any]] = read_records(path)
        self.live = False
        self._started = time.monotonic()
        self._changed = asyncio.Event()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def open(self) -> None:
        """The run is queued or started: readers wait for more events."""
        self.live = True
        self._notify()

    def close(self) -> None:
        """The run stopped: readers get what is left and end."""
        self.live = False
        self._notify()

    def append(self, event: Event) -> None:
        if event.kind in QUIET_IN_TRACE:
            return
        record = trace_record(event, time.monotonic() - self._started)
        line = json.dumps(record, ensure_ascii=False, default=str)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as stream:
            stream.write(line + "\n")
        self.records.append(json.loads(line))  # exactly what a replay from the file gives
        self._notify()

    async def follow(self, start: int = 0) -> AsyncIterator[tuple[int, dict[str, Any] | None]]:
        """(index, record) from `start` on while the run is live; (index, None) now and then
        while nothing happens, so a server can keep an idle connection open."""
        position = start
        while True:
            if position >= len(self.records) and self.live:
                changed = self._changed
                try:
                    await asyncio.wait_for(changed.wait(), KEEPALIVE_S)
                except TimeoutError:
                    yield position, None
                    continue
            if position >= len(self.records) and not self.live:
                return
            while position < len(self.records):
                yield position, self.records[position]
                position += 1


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records already in a run's event file (none if there is no file; a torn last line
    from a crash is skipped)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records
