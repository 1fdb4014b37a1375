"""Show a run's events: a live line on a terminal, JSON lines otherwise."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import IO, Any

from rich.console import Console
from rich.markup import escape

from rumination.events import Event
from rumination.wording import counts_phrase, plural

EventHandlerLike = Callable[[Event], None]

QUIET_IN_TRACE = {"answer_delta"}


def trace_record(event: Event, elapsed_s: float) -> dict[str, object]:
    """An event as one `--trace` line holds it: its kind, seconds since the start, its data."""
    record: dict[str, object] = {"event": event.kind, "t": round(elapsed_s, 3)}
    record.update(event.data)
    return record


class JsonlProgress:
    """One JSON object per event, for logs, pipelines and `--trace` files (answer deltas
    are left out unless `deltas` is set)."""

    def __init__(self, stream: IO[str] | None = None, deltas: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.deltas = deltas

    def __call__(self, event: Event) -> None:
        if event.kind in QUIET_IN_TRACE and not self.deltas:
            return
        record = trace_record(event, time.monotonic() - self.started)
        self.stream.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        self.stream.flush()


class ConsoleProgress:
    """Human-readable progress lines on a terminal; in a batch each line starts with its
    job's name."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, highlight=False)
        self.started = time.monotonic()
        self.sources: dict[str, int] = {}
        self.answer_chars = 0

    def __call__(self, event: Event) -> None:
        d = event.data
        job = d.get("job")
        elapsed = f"[dim]{time.monotonic() - self.started:6.1f}s[/dim]"
        if job:
            elapsed += f" [cyan]{escape(str(job))}[/cyan]"
        if event.kind == "run_started":
            self.console.print(f"{elapsed} research with [bold]{escape(str(d['model']))}[/bold]"
                               f" on backend [bold]{escape(str(d['backend']))}[/bold], "
                               f"run {d['run_id']}")
        elif event.kind == "tool_called":  # the model's words: never read as markup
            args = escape(", ".join(f"{k}={v!r}" for k, v in d["arguments"].items()))
            self.console.print(f"{elapsed} turn {d['index'] + 1}: {d['name']}({args})")
        elif event.kind == "source_added":
            self.sources[job or ""] = self.sources.get(job or "", 0) + 1
        elif event.kind == "protocol_error":
            self.console.print(f"{elapsed} turn {d['index'] + 1}: [yellow]corrected[/yellow] "
                               f"{escape(str(d['message']))}")
        elif event.kind == "answer_started":
            seen = plural(self.sources.get(job or "", 0), "source")
            self.console.print(f"{elapsed} writing the answer ({seen} seen)")
        elif event.kind == "answer_delta":
            self.answer_chars += len(d["text"])
        elif event.kind in ("schedule_fired", "schedule_skipped", "schedule_failed",
                            "schedule_done"):
            self.console.print(f"{elapsed} {schedule_line(d, event.kind)}")
        elif event.kind == "finished":
            self.console.print(
                f"{elapsed} done: {counts_phrase(d)}, {d['prompt_tokens']} prompt + "
                f"{d['completion_tokens']} completion tokens"
                + (" (estimated)" if d.get("tokens_estimated") else "")
            )


def schedule_line(data: dict[str, Any], kind: str) -> str:
    name = escape(str(data["schedule"]))
    if kind == "schedule_fired":
        return f"schedule {name} fired: batch into {escape(str(data['out_dir']))}"
    if kind == "schedule_skipped":
        return f"schedule {name} skipped a firing: {escape(str(data['reason']))}"
    if kind == "schedule_done":
        apart = (f" ({data['uncited']} without a cited answer)" if data.get("uncited") else "")
        return (f"schedule {name}: {data['jobs'] - data['failed']} of {data['jobs']} jobs "
                f"done{apart}, {data['failed']} failed, into {escape(str(data['out_dir']))}")
    return (f"[red]schedule {name}: the batch into {escape(str(data['out_dir']))} failed:[/red] "
            f"{escape(str(data['error']))}")


def progress_for(stream: IO[str] | None = None) -> ConsoleProgress | JsonlProgress:
    target = stream or sys.stderr
    return ConsoleProgress() if target.isatty() else JsonlProgress(target)


def tee(*handlers: EventHandlerLike | None) -> EventHandlerLike:
    """One handler that passes every event to each of `handlers` (None ones skipped)."""
    active = [h for h in handlers if h is not None]

    def handle(event: Event) -> None:
        for handler in active:
            handler(event)

    return handle
