"""The support check as a step of a run: judged, timed, and told to the run's listeners."""

from __future__ import annotations

import time

from rumination.events import EventHandler, emit
from rumination.models import Report
from rumination.settings import Settings
from rumination.support.judges import verified


async def checked_report(report: Report, evidence: dict[int, str], settings: Settings,
                         on_event: EventHandler | None) -> Report:
    """`report` with its support check done; a `support_checked` event says how it went."""
    started = time.monotonic()
    report = await verified(report, evidence, settings)
    figures = report.figures
    await emit(on_event, "support_checked", judge=settings.judge,
               seconds=round(time.monotonic() - started, 4),
               statements=figures.statements_checked if figures else 0,
               supported=figures.statements_supported if figures else 0)
    return report
