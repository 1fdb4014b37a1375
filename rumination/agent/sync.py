"""The synchronous entry point for scripts: `research("question", backend=..., corpus=...)`."""

from __future__ import annotations

import asyncio
from typing import Any

from rumination.agent.researcher import Researcher
from rumination.agent.writer import run_write
from rumination.events import EventHandler
from rumination.models import Report
from rumination.settings import Settings


def research(
    question: str,
    *,
    settings: Settings | None = None,
    on_event: EventHandler | None = None,
    **overrides: Any,
) -> Report:
    """Run one research job to its report. Keyword arguments override settings fields
    (for example `llm_url=`, `model=`, `backend=`, `corpus=`, `max_turns=`, `mode=`).
    With `mode="write"` the framework searches and one writing call writes the report."""
    if settings is None:
        settings = Settings.load(**overrides)
    elif overrides:
        settings = Settings.load_over(settings, overrides)
    if settings.mode == "write":
        return asyncio.run(run_write(question, settings, on_event=on_event))
    return asyncio.run(Researcher(settings).run(question, on_event=on_event))
