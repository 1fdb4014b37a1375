"""Run batch jobs on cron expressions in one long-lived process.

Each firing writes into `<out_dir>/<YYYY-MM-DD_HHMM>/` (a folder or an fsspec URL). A schedule
whose previous batch is still running skips the firing (and says so) instead of piling up work.
Times are local.
For cron or systemd timers instead, call `rumination batch` from them: it is idempotent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from croniter import croniter
from pydantic import BaseModel, Field, field_validator

from rumination.errors import RuminationError, UsageError
from rumination.events import EventHandler, emit
from rumination.jobs.outdir import OutDir, is_url
from rumination.jobs.records import load_records


class Schedule(BaseModel):
    model_config = {"extra": "forbid"}

    name: str = Field(pattern=r"^[A-Za-z0-9._-]+$")
    cron: str
    jobs: Path
    out_dir: str = Field(description="a folder or an fsspec URL (s3://bucket/reports)")
    concurrency: int = Field(4, gt=0)

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        if not croniter.is_valid(value):
            raise ValueError(f"not a cron expression: {value!r}")
        return value


def load_schedules(path: Path) -> list[Schedule]:
    schedules = []
    for schedule in load_records(path, Schedule, noun="schedule",
                                 needs="`name`, `cron`, `jobs` and `out_dir`"):
        base = path.parent
        out_dir = schedule.out_dir if is_url(schedule.out_dir) else str(base / schedule.out_dir)
        # a bad URL, a missing filesystem driver or a folder that cannot be written: now
        OutDir.open(out_dir).check_writable(f"out_dir of schedule {schedule.name!r}")
        schedules.append(schedule.model_copy(update={"jobs": base / schedule.jobs,
                                                     "out_dir": out_dir}))
    names = [s.name for s in schedules]
    if len(set(names)) != len(names):
        raise UsageError(f"{path}: schedule names must be unique")
    return schedules


BatchRunner = Callable[[Schedule, OutDir], Coroutine[Any, Any, Any]]


@dataclass
class Scheduler:
    schedules: list[Schedule]
    run_batch: BatchRunner
    now: Callable[[], datetime] = datetime.now
    on_event: EventHandler | None = None

    def __post_init__(self) -> None:
        self._running: dict[str, asyncio.Task[Any]] = {}
        self._next = {s.name: croniter(s.cron, self.now()).get_next(datetime)
                      for s in self.schedules}

    def next_firing(self) -> tuple[datetime, list[Schedule]]:
        when = min(self._next.values())
        return when, [s for s in self.schedules if self._next[s.name] == when]

    async def fire(self, schedule: Schedule, when: datetime) -> None:
        """Start one firing unless the schedule's previous batch is still going."""
        self._next[schedule.name] = croniter(schedule.cron, when).get_next(datetime)
        previous = self._running.get(schedule.name)
        if previous is not None and not previous.done():
            await emit(self.on_event, "schedule_skipped", schedule=schedule.name,
                       at=when.isoformat(), reason="the previous batch is still running")
            return
        out_dir = OutDir.open(schedule.out_dir).child(when.strftime("%Y-%m-%d_%H%M"))
        await emit(self.on_event, "schedule_fired", schedule=schedule.name, at=when.isoformat(),
                   out_dir=str(out_dir))
        self._running[schedule.name] = asyncio.create_task(self._run_firing(schedule, out_dir))

    async def _run_firing(self, schedule: Schedule, out_dir: OutDir) -> None:
        """One firing's batch; its failure is reported and the schedule goes on."""
        try:
            results = await self.run_batch(schedule, out_dir)
        except Exception as exc:
            error = str(exc) if isinstance(exc, RuminationError) else f"{type(exc).__name__}: {exc}"
            await emit(self.on_event, "schedule_failed", schedule=schedule.name,
                       out_dir=str(out_dir), error=error)
            return
        if isinstance(results, list):  # the jobs of the firing, counted like batch counts them
            await emit(self.on_event, "schedule_done", schedule=schedule.name,
                       out_dir=str(out_dir), jobs=len(results),
                       failed=sum(getattr(r, "status", "") == "failed" for r in results),
                       uncited=sum(getattr(r, "status", "") == "finished"
                                   and bool(getattr(r, "uncited", None)) for r in results))

    async def run_forever(self, max_firings: int | None = None) -> None:
        fired = 0
        while max_firings is None or fired < max_firings:
            when, due = self.next_firing()
            await asyncio.sleep(max(0.0, (when - self.now()).total_seconds()))
            for schedule in due:
                await self.fire(schedule, when)
                fired += 1
        await asyncio.gather(*self._running.values(), return_exceptions=True)
