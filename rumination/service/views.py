"""What the service says about runs: request and answer bodies, built from the run store and
the queue together (a run waiting in the queue is not in the store yet)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from rumination.errors import UsageError
from rumination.models import ReportFigures
from rumination.service.runner import CANCELLED, QUEUED, NotFound, RunQueue, Ticket
from rumination.store.run_store import FAILED, INTERRUPTED, RUNNING, RunRecord, RunStore
from rumination.support.figures import uncited_reason

LIVE = (QUEUED, RUNNING)
RunStatus = Literal["queued", "running", "finished", "interrupted", "failed", "cancelled"]


class RunRequest(BaseModel):
    """A research job. Fields left out take the server's settings."""

    model_config = {"extra": "forbid"}

    question: str = Field(min_length=1, max_length=8000)
    backend: str | None = Field(default=None, description="an installed search backend")
    max_turns: int | None = Field(default=None, gt=0, le=500, description="tool-call turn budget")
    model: str | None = Field(default=None, description="served model name on the server's LLM")
    search_language: str | None = Field(default=None, max_length=16)
    max_wall_time_s: float | None = Field(default=None, gt=0)
    max_total_tokens: int | None = Field(default=None, gt=0, description="token budget of the "
                                         "research (prompt + completion)")
    max_cost: float | None = Field(default=None, gt=0, description="cost budget of the research "
                                   "at the server's price_per_1k_* settings")
    compare_to: str | None = Field(
        default=None, pattern=r"^(previous|[A-Za-z0-9_-]{1,64})$",
        description='"previous" (the last finished run of the same question) or a run id: '
        'the report opens with what changed since that run'
    )

    def overrides(self) -> dict[str, Any]:
        return self.model_dump(exclude={"question", "compare_to"}, exclude_none=True)


class RunView(BaseModel):
    run_id: str
    status: str = Field(description="queued, running, finished, interrupted, failed or cancelled")
    question: str
    model: str | None = None
    backend: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    turns: int = 0
    sources: int | None = Field(default=None, description="sources seen so far (single-run views)")
    queue_position: int | None = Field(default=None, description="runs ahead in the queue")
    live: bool = Field(description="queued or running in this service now")
    error: str | None = None
    figures: ReportFigures | None = None
    # why a finished run's report is not a cited answer (no final answer, no source seen,
    # nothing cited); None when it is one, or not finished
    uncited: str | None = None


class RunList(BaseModel):
    runs: list[RunView]


class ErrorBody(BaseModel):
    error: str
    status: int
    fields: list[dict[str, Any]] | None = None


def _status(ticket: Ticket | None, record: RunRecord | None) -> str:
    if ticket is not None and (ticket.status in (*LIVE, CANCELLED) or record is None):
        return FAILED if ticket.status == INTERRUPTED and record is None else ticket.status
    assert record is not None
    return record.status


def view(queue: RunQueue, run_id: str, detail: bool = True) -> RunView:
    """One run as the service sees it; UsageError when neither the queue nor the store has it."""
    ticket = queue.ticket(run_id)
    record = _record(queue.store, run_id)
    if ticket is None and record is None:
        raise NotFound(f"no run {run_id!r}")
    return _view(queue, run_id, ticket, record, detail)


def _view(
    queue: RunQueue, run_id: str, ticket: Ticket | None, record: RunRecord | None, detail: bool
) -> RunView:
    status = _status(ticket, record)
    found = RunView(
        run_id=run_id, status=status, question=record.question if record else ticket.question
        if ticket else "", live=ticket is not None and ticket.status in LIVE,
        error=ticket.error if ticket and status not in LIVE else None,
        queue_position=queue.queue_position(run_id) if status == QUEUED else None,
    )
    if record is not None:
        found.model, found.backend, found.turns = record.model, record.backend, record.turns
        found.created_at, found.updated_at = record.created_at, record.updated_at
    elif ticket is not None:
        found.model, found.backend = ticket.settings.model, ticket.settings.backend
    if detail and record is not None:
        found.sources = len(queue.store.sources(run_id))
        report = queue.store.report(run_id)
        found.figures = report.figures if report else None
        found.uncited = uncited_reason(report) if report else None
    return found


def listing(queue: RunQueue, limit: int, status: str | None, text: str | None) -> RunList:
    """Runs of this service not yet in the store, then stored runs newest first."""
    wanted = limit if not (status or text) else max(limit, 10_000)  # filtered here, not in SQL
    records = {r.run_id: r for r in queue.store.list_runs(wanted)}
    pending = [t for t in reversed(queue.tickets()) if t.run_id not in records]
    runs = [_view(queue, t.run_id, t, None, False) for t in pending]
    runs += [_view(queue, run_id, queue.ticket(run_id), r, False) for run_id, r in records.items()]
    if status:
        runs = [r for r in runs if r.status == status]
    if text:
        runs = [r for r in runs if text.casefold() in r.question.casefold()]
    return RunList(runs=runs[:limit])


def _record(store: RunStore, run_id: str) -> RunRecord | None:
    try:
        return store.get_run(run_id)
    except UsageError:
        return None
