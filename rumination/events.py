"""Events a run emits for progress displays, traces and API callers."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    """`kind` is one of: run_started, turn_started, tool_called, source_added, observation,
    protocol_error, continuation_dropped, compacted, answer_started, answer_delta, warning,
    finished."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)


EventHandler = Callable[[Event], Awaitable[None] | None]


async def emit(handler: EventHandler | None, kind: str, **data: Any) -> None:
    if handler is None:
        return
    result = handler(Event(kind, data))
    if inspect.isawaitable(result):
        await result
