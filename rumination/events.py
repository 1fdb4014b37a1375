"""Events a run emits for progress displays, traces and API callers."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    """`kind` is one of: run_started, turn_started, model_answered, tool_called,
    tool_finished, source_added, observation, protocol_error, continuation_dropped, compacted,
    answer_started, answer_delta, support_checked, warning, finished (and, from the service
    and schedules: interrupted, run_error, schedule_fired, schedule_skipped,
    schedule_failed, schedule_done)."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)


EventHandler = Callable[[Event], Awaitable[None] | None]


async def emit(handler: EventHandler | None, kind: str, **data: Any) -> None:
    if handler is None:
        return
    result = handler(Event(kind, data))
    if inspect.isawaitable(result):
        await result
