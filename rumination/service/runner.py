"""Background research for the service: runs wait in a bounded queue and a fixed number of
workers research them, each run recorded in the same run store as a CLI run.

The queue survives restarts: a run is in the store (status `queued`) from the moment it is
accepted, and a worker claims it there before it starts, so services sharing a store never
run it twice. Closing the queue (SIGTERM) interrupts running runs and puts them back to
`queued`, their turns kept; the next start takes up every queued run, resuming those with
turns (unless started with `take_up=False`: `rumination api --no-resume`).

A cancelled run stops where it is: what it produced stays in the store as an interrupted
run, and `resume` continues it.

A run is checked before it is queued: its backend is installed, and the LLM server answers
and serves its model (one GET /v1/models per server, no retries: a server down now is an
answer now, not a run that fails later).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rumination.agent.backends import installed_backend
from rumination.agent.researcher import Researcher, new_run_id
from rumination.errors import LLMError, RuminationError, UsageError
from rumination.events import Event
from rumination.llm.client import LLMClient
from rumination.llm.endpoints import EndpointPool
from rumination.llm.server_answers import model_not_served
from rumination.reading.browser_render import page_fetcher
from rumination.reading.fetch import PageFetcher
from rumination.service.eventlog import EventLog
from rumination.settings import Settings
from rumination.store.run_store import (
    CANCELLED,
    FINISHED,
    INTERRUPTED,
    QUEUED,
    RUNNING,
    RunRecord,
    RunStore,
)
from rumination.support.changes import PREVIOUS, stored_report, with_changes

PROBE_TIMEOUT_S = 5.0  # for the /v1/models check before a run is queued


class QueueFull(RuminationError):
    """More runs are waiting than the service accepts (setting api_max_queued)."""


class NotFound(UsageError):
    """No such run, neither queued here nor in the store."""


class Conflict(UsageError):
    """The run is not in a state that allows what was asked."""


@dataclass
class Ticket:
    """A run this service was asked to research (or resume)."""

    run_id: str
    question: str
    settings: Settings
    resume: bool
    log: EventLog
    status: str = QUEUED
    error: str | None = None
    task: asyncio.Task[Any] | None = field(default=None, repr=False)
    compare_to: str | None = None  # "previous" or a run id: the report says what changed


def default_events_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "rumination" / "events"


class RunQueue:
    def __init__(self, settings: Settings, store: RunStore,
                 observer: Callable[[Event], None] | None = None) -> None:
        """`observer` sees every event of every run (metrics)."""
        self.settings = settings
        self.store = store
        self.observer = observer
        self.events_dir = Path(settings.api_events_dir or default_events_dir())
        self._tickets: dict[str, Ticket] = {}
        self._waiting: asyncio.Queue[Ticket] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._pool: EndpointPool | None = None
        self._fetcher: PageFetcher | None = None
        self._probes: dict[str, LLMClient] = {}  # by server URL: asks which models it serves

    async def start(self, take_up: bool = True) -> None:
        """Start the workers; `take_up`: first queue every run the store has as queued
        (accepted before a restart, or interrupted by one), oldest first."""
        # shared by every run: one connection pool per LLM endpoint and for page fetches
        self._pool = EndpointPool.from_settings(self.settings)
        self._fetcher = page_fetcher(self.settings)
        if take_up:
            for record in await asyncio.to_thread(self.store.runs_with_status, QUEUED):
                settings = Settings.load_saved(record.settings_json)
                self._add(Ticket(record.run_id, record.question, settings, record.turns > 0,
                                 self.log(record.run_id)))
        self._workers = [asyncio.create_task(self._work()) for _ in
                         range(self.settings.api_concurrency)]

    async def close(self) -> None:
        """Stop taking work; running runs are interrupted and queued again in the store
        (their turns kept), for the next start to take up."""
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        running = [t for t in self._tickets.values() if t.task and not t.task.done()]
        for ticket in running:
            assert ticket.task is not None
            ticket.task.cancel()
        await asyncio.gather(*(t.task for t in running if t.task), return_exceptions=True)
        for ticket in running:
            self.store.set_status(ticket.run_id, QUEUED)
        if self._pool is not None:
            await self._pool.aclose()
        if self._fetcher is not None:
            await self._fetcher.aclose()
        for probe in self._probes.values():
            await probe.aclose()

    async def submit(self, question: str, overrides: dict[str, Any],
                     compare_to: str | None = None) -> Ticket:
        """Queue a new run once its backend and model are known to work; its id is known
        at once. `compare_to`: "previous" or the id of a finished run (checked now)."""
        question = question.strip()
        if not question:
            raise UsageError("the question is empty")
        settings = Settings.load_over(self.settings, overrides)
        if settings.mode != "rumination":
            raise UsageError("the service researches in mode 'rumination' only")
        installed_backend(settings.backend)
        await self.check_model(settings)
        if compare_to not in (None, PREVIOUS):
            stored_report(self.store, compare_to)
        run_id = new_run_id()
        self._check_room()
        await asyncio.to_thread(self.store.create_run, run_id, question, settings.model,
                                settings.backend, settings.mode, settings.public_json(), QUEUED)
        return self._add(Ticket(run_id, question, settings, False, self.log(run_id),
                                compare_to=compare_to))

    async def check_model(self, settings: Settings) -> None:
        """ModelNotServed when an LLM server of `settings` lists models but not its model;
        the first server's LLMError when none of them answers."""
        failures: list[LLMError] = []
        for url in settings.llm_urls:
            try:
                served = await self._probe(url, settings).served_models()
            except LLMError as exc:  # unreachable, or no LLM API there
                failures.append(exc)
                continue
            if served and settings.model not in served:
                raise model_not_served(url, settings.model, served, option=None)
        if len(failures) == len(settings.llm_urls):
            raise failures[0]

    def _probe(self, url: str, settings: Settings) -> LLMClient:
        if url not in self._probes:
            self._probes[url] = LLMClient(url, settings.model, api_key=settings.api_key,
                                          timeout_s=PROBE_TIMEOUT_S,
                                          connect_timeout_s=PROBE_TIMEOUT_S, retries=0)
        return self._probes[url]

    async def resume(self, run_id: str) -> Ticket:
        """Queue the continuation of a stored, interrupted (or failed) run whose model the
        LLM server still serves."""
        record = self._resumable(run_id)
        settings = Settings.load_saved(record.settings_json)
        await self.check_model(settings)
        self._resumable(run_id)  # still, after the wait
        self._check_room()
        self.store.set_status(run_id, QUEUED)
        return self._add(Ticket(run_id, record.question, settings, True, self.log(run_id)))

    def _resumable(self, run_id: str) -> RunRecord:
        """The stored run, if nothing stands in the way of resuming it."""
        current = self._tickets.get(run_id)
        if current is not None and current.status in (QUEUED, RUNNING):
            raise Conflict(f"run {run_id} is already {current.status}")
        try:
            record = self.store.get_run(run_id)
        except UsageError:
            raise NotFound(f"no run {run_id!r}") from None
        if record.status == FINISHED:
            raise Conflict(f"run {run_id} has finished: nothing to resume")
        if record.status == RUNNING:
            raise Conflict(f"run {run_id} is running in another process")
        return record

    def cancel(self, run_id: str) -> Ticket:
        """Stop a queued or running run. A running one becomes interrupted (resumable)."""
        ticket = self._tickets.get(run_id)
        if ticket is None or ticket.status not in (QUEUED, RUNNING):
            if ticket is None:
                try:
                    state = self.store.get_run(run_id).status
                except UsageError:
                    raise NotFound(f"no run {run_id!r}") from None
            else:
                state = ticket.status
            raise Conflict(f"run {run_id} is {state}: only queued or running runs can be "
                           "cancelled")
        if ticket.task is not None:
            ticket.task.cancel()
        else:
            ticket.status = CANCELLED
            # a waiting resume goes back to interrupted: its turns are still worth resuming
            self.store.set_status(run_id, INTERRUPTED if ticket.resume else CANCELLED)
            ticket.log.close()
            if self.observer is not None:  # it never ran: its event stream stays empty
                self.observer(Event("cancelled", {"run_id": run_id}))
        return ticket

    def ticket(self, run_id: str) -> Ticket | None:
        return self._tickets.get(run_id)

    def tickets(self) -> list[Ticket]:
        return list(self._tickets.values())

    def queue_position(self, run_id: str) -> int | None:
        waiting = [t.run_id for t in self._tickets.values() if t.status == QUEUED]
        return waiting.index(run_id) if run_id in waiting else None

    def log(self, run_id: str) -> EventLog:
        """The run's event log (read from its file for a run this process did not start)."""
        ticket = self._tickets.get(run_id)
        return ticket.log if ticket else EventLog(self.events_dir / f"{run_id}.jsonl")

    def _check_room(self) -> None:
        waiting = sum(t.status == QUEUED for t in self._tickets.values())
        if waiting >= self.settings.api_max_queued:
            raise QueueFull(f"{waiting} runs are waiting already (setting api_max_queued)")

    def _add(self, ticket: Ticket) -> Ticket:
        self._tickets[ticket.run_id] = ticket
        ticket.log.open()
        self._waiting.put_nowait(ticket)
        return ticket

    async def _work(self) -> None:
        while True:
            ticket = await self._waiting.get()
            if ticket.status != QUEUED:  # cancelled while it waited
                continue
            if not await asyncio.to_thread(self.store.claim_queued, ticket.run_id):
                # another service sharing the store took it (or cancelled it): the store
                # tells the rest
                del self._tickets[ticket.run_id]
                ticket.log.close()
                continue
            ticket.status = RUNNING
            ticket.task = asyncio.create_task(self._research(ticket))
            await asyncio.wait([ticket.task])  # a cancelled run does not cancel its worker
            if ticket.error is None and self._stored(ticket.run_id):
                del self._tickets[ticket.run_id]  # the store and the event file tell the rest

    def _stored(self, run_id: str) -> bool:
        try:
            self.store.get_run(run_id)
        except UsageError:
            return False
        return True

    async def _research(self, ticket: Ticket) -> None:
        settings = ticket.settings
        shared = (settings.llm_url, settings.model) == (self.settings.llm_url, self.settings.model)
        researcher = Researcher(settings, store=self.store, pool=self._pool if shared else None,
                                fetcher=self._fetcher)

        ticket.log.open()

        def tell(event: Event) -> None:
            self._tell(ticket, event)

        try:
            if ticket.resume:
                await researcher.resume(ticket.run_id, on_event=tell)
            else:
                report = await researcher.run(ticket.question, on_event=tell,
                                              run_id=ticket.run_id, recorded=True)
                if ticket.compare_to is not None:
                    with_changes(self.store, report, ticket.compare_to)
            ticket.status = FINISHED
        except asyncio.CancelledError:
            ticket.status = INTERRUPTED
            tell(Event("interrupted", {"run_id": ticket.run_id}))
        except RuminationError as exc:
            ticket.status, ticket.error = INTERRUPTED, str(exc)
            tell(Event("run_error", {"run_id": ticket.run_id, "message": str(exc),
                                     "resumable": True}))
        except Exception as exc:  # a framework bug: the run is failed, the service goes on
            ticket.status, ticket.error = "failed", f"{type(exc).__name__}: {exc}"
            tell(Event("run_error", {"run_id": ticket.run_id, "message": ticket.error,
                                     "resumable": False}))
        finally:
            ticket.log.close()

    def _tell(self, ticket: Ticket, event: Event) -> None:
        ticket.log.append(event)
        if self.observer is not None:
            self.observer(event)
