"""Schedules: cron parsing, dated output folders, skipping a firing while one still runs."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rumination.cli import app
from rumination.errors import UsageError
from rumination.events import Event
from rumination.jobs.outdir import OutDir
from rumination.jobs.schedule import Schedule, Scheduler, load_schedules


def schedules_file(tmp_path: Path, cron: str = "0 6 * * MON", extra: str = "") -> Path:
    (tmp_path / "jobs.yaml").write_text("- question: weekly heat pump news\n", encoding="utf-8")
    path = tmp_path / "schedules.yaml"
    path.write_text(
        "schedules:\n"
        f"  - name: weekly\n    cron: '{cron}'\n    jobs: jobs.yaml\n    out_dir: out\n{extra}",
        encoding="utf-8",
    )
    return path


def test_paths_are_relative_to_the_schedules_file(tmp_path: Path) -> None:
    [weekly] = load_schedules(schedules_file(tmp_path))
    assert weekly.jobs == tmp_path / "jobs.yaml" and weekly.out_dir == str(tmp_path / "out")


@pytest.mark.parametrize(
    ("cron", "extra", "needle"),
    [
        ("61 * * * *", "", "field `cron`"),
        ("0 6 * * MON", "    colour: red\n", "field `colour`"),
        (
            "0 6 * * MON",
            "  - name: weekly\n    cron: '@daily'\n    jobs: j\n    out_dir: o\n",
            "unique",
        ),
    ],
)
def test_bad_schedules_are_usage_errors(tmp_path: Path, cron: str, extra: str, needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        load_schedules(schedules_file(tmp_path, cron, extra))
    result = CliRunner().invoke(app, ["schedule", str(tmp_path / "schedules.yaml")])
    assert result.exit_code == 2 and needle.strip("`") in result.stderr


def test_next_firing_follows_the_cron_expression(tmp_path: Path) -> None:
    [weekly] = load_schedules(schedules_file(tmp_path))
    scheduler = Scheduler([weekly], run_batch=None, now=lambda: datetime(2026, 11, 24, 10, 0))  # type: ignore[arg-type]
    when, due = scheduler.next_firing()
    assert when == datetime(2026, 11, 30, 6, 0) and due == [weekly]


def test_a_firing_is_skipped_while_the_previous_batch_runs(tmp_path: Path) -> None:
    [weekly] = load_schedules(schedules_file(tmp_path, "*/5 * * * *"))
    started: list[OutDir] = []
    events: list[Event] = []

    async def scenario() -> None:
        release = asyncio.Event()

        async def slow_batch(schedule: Schedule, out_dir: OutDir) -> None:
            started.append(out_dir)
            await release.wait()

        scheduler = Scheduler(
            [weekly], slow_batch, now=lambda: datetime(2026, 11, 24, 10, 1), on_event=events.append
        )
        await scheduler.fire(weekly, datetime(2026, 11, 24, 10, 5))
        await asyncio.sleep(0)
        await scheduler.fire(weekly, datetime(2026, 11, 24, 10, 10))  # still running: skipped
        release.set()
        await asyncio.sleep(0.01)
        await scheduler.fire(weekly, datetime(2026, 11, 24, 10, 15))  # done: runs again
        await asyncio.sleep(0)
        assert scheduler.next_firing()[0] == datetime(2026, 11, 24, 10, 20)
        release.set()

    asyncio.run(scenario())
    assert [Path(str(p)).name for p in started] == ["2026-11-24_1005", "2026-11-24_1015"]
    assert [e.kind for e in events] == ["schedule_fired", "schedule_skipped", "schedule_fired"]


def test_an_out_dir_url_is_kept_as_given(tmp_path: Path) -> None:
    path = schedules_file(tmp_path)
    path.write_text(path.read_text(encoding="utf-8").replace("out_dir: out",
                                                             "out_dir: memory://team/weekly"))
    [weekly] = load_schedules(path)
    assert weekly.out_dir == "memory://team/weekly"


def test_a_failing_firing_is_reported_and_the_schedule_goes_on(tmp_path: Path) -> None:
    [weekly] = load_schedules(schedules_file(tmp_path, "*/5 * * * *"))
    events: list[Event] = []
    attempts: list[str] = []

    async def broken_batch(schedule: Schedule, out_dir: OutDir) -> None:
        attempts.append(Path(str(out_dir)).name)
        raise UsageError("a Ray worker could not start: ImportError: broken")

    async def scenario() -> None:
        scheduler = Scheduler([weekly], broken_batch, now=lambda: datetime(2026, 11, 24, 10, 1),
                              on_event=events.append)
        await scheduler.fire(weekly, datetime(2026, 11, 24, 10, 5))
        await asyncio.sleep(0.01)
        await scheduler.fire(weekly, datetime(2026, 11, 24, 10, 10))  # not blocked by the first
        await asyncio.sleep(0.01)

    asyncio.run(scenario())
    assert attempts == ["2026-11-24_1005", "2026-11-24_1010"]
    failed = [e.data for e in events if e.kind == "schedule_failed"]
    assert [d["error"] for d in failed] == ["a Ray worker could not start: ImportError: broken"] * 2
    assert failed[0]["out_dir"].endswith("2026-11-24_1005")


def test_schedule_events_show_on_a_terminal() -> None:
    from rumination.progress import schedule_line

    line = schedule_line({"schedule": "weekly", "out_dir": "out/x", "error": "boom"},
                         "schedule_failed")
    assert "weekly" in line and "out/x" in line and "boom" in line


def test_a_firing_counts_its_jobs_without_a_cited_answer_apart(tmp_path: Path) -> None:
    from rumination.jobs.jobrun import JobResult
    from rumination.progress import schedule_line

    [weekly] = load_schedules(schedules_file(tmp_path, "*/5 * * * *"))
    events: list[Event] = []

    async def batch(schedule: Schedule, out_dir: OutDir) -> list[JobResult]:
        return [JobResult(job="a", status="finished"),
                JobResult(job="b", status="finished", uncited="no source seen"),
                JobResult(job="c", status="failed", error="boom")]  # fmt: skip

    async def scenario() -> None:
        scheduler = Scheduler([weekly], batch, now=lambda: datetime(2026, 11, 24, 10, 1),
                              on_event=events.append)
        await scheduler.fire(weekly, datetime(2026, 11, 24, 10, 5))
        await asyncio.sleep(0.01)

    asyncio.run(scenario())
    [done] = [e.data for e in events if e.kind == "schedule_done"]
    assert (done["jobs"], done["failed"], done["uncited"]) == (3, 1, 1)
    assert "2 of 3 jobs done (1 without a cited answer), 1 failed" in schedule_line(
        done, "schedule_done")
