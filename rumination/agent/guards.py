"""No progress, stopped: the same call again, or protocol errors turn after turn.

A call the run already made (a search whose normalised query was asked, the same click, the
same URL opened) is answered from the run's memory with a correction instead of being run
again. `max_repeats` such turns in a row end research (`stopped_by: no_progress`), and so do
`max_protocol_errors` protocol errors in a row (empty, unparseable or cut turns:
`stopped_by: protocol_errors`); then the final answer is asked for as after any budget.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rumination.agent.browser import with_scheme
from rumination.agent.budgets import Stop
from rumination.models import Report, ToolCall, Turn
from rumination.settings import Settings
from rumination.urls import normalize_url

# How a turn's protocol_error names what a guard did (the run store keeps that text, so a
# resumed run and the report's figures read the guards' work back from it).
REPEAT_PREFIX = "repeated call"
# What ends research for want of progress rather than for a budget (Report.stopped_by).
GUARD_STOPS = ("no_progress", "protocol_errors")
CUT_PREFIX = "generation cut"

_NOT_WORD = re.compile(r"[^\w]+")


def call_key(call: ToolCall, position: int | None = None) -> str | None:
    """What makes two calls the same call; None for finish (never a repeat). A click or open
    reads the page's next window: `position`, where it would start, is part of the call."""
    args = call.arguments
    if call.name == "search":
        words = _NOT_WORD.sub(" ", str(args.get("query", "")).casefold()).split()
        return "search:" + " ".join(sorted(set(words)))
    at = f"@{position}" if position is not None else ""
    if call.name == "click":
        return f"click:{args.get('link_id')}{at}"
    if call.name == "open":
        return "open:" + normalize_url(with_scheme(str(args.get("url", "")))) + at
    return None


@dataclass
class ProgressGuard:
    max_repeats: int
    max_protocol_errors: int
    seen: dict[str, int] = field(default_factory=dict)  # call key -> turn it was first made
    repeats_in_a_row: int = 0
    errors_in_a_row: int = 0

    def first_made(self, call: ToolCall, turn: int, position: int | None = None) -> int | None:
        """The turn that already made this call, or None (and then it is remembered)."""
        key = call_key(call, position)
        if key is None:
            return None
        if key in self.seen:
            self.repeated()
            return self.seen[key]
        self.seen[key] = turn
        self.repeats_in_a_row = self.errors_in_a_row = 0
        return None

    def repeated(self) -> None:
        self.repeats_in_a_row += 1
        self.errors_in_a_row = 0

    def protocol_error(self) -> None:
        self.errors_in_a_row += 1
        self.repeats_in_a_row = 0

    def stop(self) -> Stop | None:
        if self.repeats_in_a_row >= self.max_repeats:
            return Stop("no_progress", f"{self.repeats_in_a_row} repeated calls in a row")
        if self.errors_in_a_row >= self.max_protocol_errors:
            return Stop("protocol_errors", f"{self.errors_in_a_row} turns in a row without a "
                        "usable tool call")
        return None


def guard_for(settings: Settings, turns: list[Turn]) -> ProgressGuard:
    """A guard that has seen `turns` (a resumed run picks up its counts)."""
    guard = ProgressGuard(settings.max_repeated_calls, settings.max_protocol_errors)
    for turn in turns:
        if turn.protocol_error and turn.protocol_error.startswith(REPEAT_PREFIX):
            guard.repeated()
        elif turn.protocol_error:
            guard.protocol_error()
        elif turn.tool_call is not None:
            guard.first_made(turn.tool_call, turn.index)
    return guard


def cut_note(detail: str) -> str:
    """What the conversation keeps of a cut turn: a short note, not the degenerate text."""
    return f"[turn cut by the harness: {detail}]"


def guard_figures(turns: list[Turn]) -> dict[str, int]:
    """The guards' work in a run: protocol errors, repeated calls, tokens of generations cut
    out of the conversation."""
    errors = [t.protocol_error or "" for t in turns]
    return {
        "protocol_errors": sum(1 for e in errors if e and not e.startswith(REPEAT_PREFIX)),
        "repeated_calls": sum(1 for e in errors if e.startswith(REPEAT_PREFIX)),
        "tokens_cut": sum(t.usage.completion_tokens for t in turns
                          if (t.protocol_error or "").startswith(CUT_PREFIX)),
    }


def with_guard_figures(report: Report, turns: list[Turn]) -> Report:
    """The report's figures with what the guards did in its run."""
    if report.figures is None:
        return report
    figures = report.figures.model_copy(update=guard_figures(turns))
    return report.model_copy(update={"figures": figures})
