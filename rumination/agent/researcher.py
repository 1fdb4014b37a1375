"""The controller loop: the model thinks and calls tools, the framework executes them.

question -> turns (search / click / open) until the model calls finish or a budget runs out
-> one more generation for the final answer -> citations resolved -> Report.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import date

from rumination.agent.backends import SearchBackend, create_backend
from rumination.agent.browser import Browser
from rumination.agent.budgets import run_cost
from rumination.agent.checking import checked_report
from rumination.agent.context import ContextBudget
from rumination.agent.guards import with_guard_figures
from rumination.agent.loop import RunState, TurnLoop
from rumination.agent.sources import SourceRegistry
from rumination.errors import RuminationError, UsageError
from rumination.events import EventHandler, emit
from rumination.llm.client import ChatModel
from rumination.llm.endpoints import EndpointPool
from rumination.llm.protocol import kept_text, parse_turn
from rumination.llm.provenance import mark_simulated
from rumination.llm.tokens import TokenCounter
from rumination.models import Message, Report, Usage
from rumination.reading.browser_render import page_fetcher
from rumination.reading.fetch import PageFetcher
from rumination.reading.untrusted import question_text
from rumination.settings import Settings
from rumination.store.run_store import FAILED, FINISHED, INTERRUPTED, RunStore, open_store
from rumination.support.citations import resolve_citations
from rumination.support.evidence import evidence_by_source
from rumination.support.figures import compute_figures, report_counts, with_outcome_warning
from rumination.telemetry.spans import traced
from rumination.templates import render

DEFAULT_CONTEXT_WINDOW = 32768  # the model's native window, when the server does not say


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


class Researcher:
    """Runs research jobs. Parts not given (`llm`, `backend`, `fetcher`, `store`, `pool`) are
    built from `settings` (`Settings.load()` when none are given) and closed after each run."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        llm: ChatModel | None = None,
        backend: SearchBackend | None = None,
        fetcher: PageFetcher | None = None,
        store: RunStore | None = None,
        pool: EndpointPool | None = None,
    ) -> None:
        self.settings = settings or Settings.load()
        self._pool = pool
        self._llm = llm
        self._backend = backend
        self._fetcher = fetcher
        self._store = store

    async def run(
        self, question: str, on_event: EventHandler | None = None, *, run_id: str | None = None,
        recorded: bool = False,
    ) -> Report:
        """Research `question` from scratch; the run is recorded in the run store under
        `run_id` (a new id unless one is given, e.g. by a service that announced it).
        `recorded`: the store has the run already (a service queued it, then claimed it)."""
        question = question.strip()
        if not question:
            raise UsageError("the question is empty")
        state = RunState(
            question=question,
            run_id=run_id or new_run_id(),
            messages=[Message(role="user", content=self._question_prompt(question, date.today()))],
        )
        if warning := question_text(question)[1]:
            state.warnings.append(warning)
        with traced(on_event) as on_event:
            return await self._execute(state, on_event, resumed=False, recorded=recorded)

    async def resume(self, run_id: str, on_event: EventHandler | None = None) -> Report:
        """Continue a stored run from its last committed turn, with the same citation ids."""
        store = self._open_store()
        if store is None:
            raise UsageError("resuming needs the run store (setting run_store is off)")
        record = store.get_run(run_id)
        if record.status == FINISHED and (report := store.report(run_id)) is not None:
            return report
        if record.mode == "write":
            raise UsageError(f"run {run_id} is a write-mode run ({record.status}): it is one "
                             "writing call, so run the question again instead of resuming")
        turns = store.turns(run_id)
        started = date.fromisoformat(record.created_at[:10])
        messages = [Message(role="user", content=self._question_prompt(record.question, started))]
        for turn in turns:
            kept = kept_text(turn.assistant_text, parse_turn(turn.assistant_text))
            messages.append(Message(role="assistant", content=kept))
            if turn.observation is not None:
                messages.append(Message(role="observation", content=turn.observation))
        state = RunState(
            question=record.question, run_id=run_id, messages=messages,
            registry=SourceRegistry(store.sources(run_id)), turns=turns,
            usage=sum((t.usage for t in turns), Usage()),
        )
        with traced(on_event) as on_event:
            return await self._execute(state, on_event, resumed=True, recorded=True)

    def _open_store(self) -> RunStore | None:
        if self._store is None and self.settings.keep_runs:
            self._store = open_store(self.settings)
        return self._store

    async def _execute(
        self, state: RunState, on_event: EventHandler | None, resumed: bool, recorded: bool
    ) -> Report:
        store = self._open_store()  # first: an unusable run store is reported before any work
        async with contextlib.AsyncExitStack() as parts:
            llm, backend, fetcher = await self._parts(parts, state.run_id)
            status = INTERRUPTED
            report: Report | None = None
            try:
                if store is not None and not recorded:
                    await asyncio.to_thread(
                        store.create_run, state.run_id, state.question, llm.model,
                        backend.name, self.settings.mode, self.settings.public_json())
                await emit(on_event, "run_started", run_id=state.run_id,
                           question=state.question, model=llm.model, backend=backend.name,
                           resumed_at_turn=len(state.turns))
                report = await self._loop(state, llm, backend, fetcher, store, on_event)
                status = FINISHED
                return report
            except (RuminationError, asyncio.CancelledError, KeyboardInterrupt):
                if not state.turns:  # nothing done yet: nothing to resume
                    status = FAILED
                raise  # else the run stays resumable
            except Exception:
                status = FAILED
                raise
            finally:
                if store is not None:
                    with contextlib.suppress(Exception):  # never hide the original error
                        store.set_status(state.run_id, status, report)
        raise AssertionError("unreachable")

    async def _parts(
        self, parts: contextlib.AsyncExitStack, run_id: str | None = None
    ) -> tuple[ChatModel, SearchBackend, PageFetcher]:
        """The model, backend and fetcher for one run; the ones built here are closed after.
        The run's endpoint follows from its id, so whichever worker resumes it picks the same."""
        s = self.settings
        backend = self._backend
        if backend is None:  # first: a misconfigured backend is reported before any LLM wait
            backend = create_backend(s)
            parts.push_async_callback(backend.aclose)
        llm: ChatModel
        if self._llm is not None:
            llm = self._llm
        else:
            pool = self._pool
            if pool is None:
                pool = EndpointPool.from_settings(s)
                parts.push_async_callback(pool.aclose)
            llm = await parts.enter_async_context(pool.lease(run_id))
        fetcher = self._fetcher
        if fetcher is None:
            fetcher = page_fetcher(s)
            parts.push_async_callback(fetcher.aclose)
        return llm, backend, fetcher

    async def _loop(
        self, state: RunState, llm: ChatModel, backend: SearchBackend, fetcher: PageFetcher,
        store: RunStore | None, on_event: EventHandler | None,
    ) -> Report:
        s = self.settings
        browser = Browser(backend, fetcher, state.registry, search_limit=s.search_limit,
                          window_chars=s.page_window_chars, prefetch=s.prefetch,
                          language=s.search_language, observation_style=s.observation_style)
        try:
            budget = ContextBudget(await self._window(llm, state), TokenCounter(llm))
            await TurnLoop(s, llm, browser, state, budget, on_event, store).run()
        finally:
            await browser.aclose()
        return await self._report(state, llm, on_event)

    async def _window(self, llm: ChatModel, state: RunState) -> int:
        if self.settings.context_window:
            return self.settings.context_window
        served = await llm.max_model_len()
        if served is not None:
            return served
        note = (f"the model server does not say its context window: {DEFAULT_CONTEXT_WINDOW} "
                "tokens assumed; set context_window (RUMINATION_CONTEXT_WINDOW) to the served one")
        if note not in state.warnings:
            state.warnings.append(note)
        return DEFAULT_CONTEXT_WINDOW

    def _question_prompt(self, question: str, today: date) -> str:
        today_text = today.isoformat() if self.settings.tell_date else ""
        return render("question", question=question_text(question)[0], today=today_text)

    async def _report(
        self, state: RunState, llm: ChatModel, on_event: EventHandler | None
    ) -> Report:
        resolved = resolve_citations(state.answer or "", state.registry.all())
        warnings = state.warnings + resolved.warnings
        report = Report(
            question=state.question,
            answer_markdown=resolved.text,
            citations=resolved.citations,
            sources=state.registry.all(),
            turns=len(state.turns),
            usage=state.usage,
            warnings=warnings,
            run_id=state.run_id,
            model=llm.model,
            mode="rumination",
            figures=compute_figures(resolved.text, resolved, state.registry.all()),
            stopped_by=state.stopped_by,
            cost=run_cost(state.usage, self.settings),
        )
        shown = evidence_by_source(t.observation for t in state.turns if t.observation)
        report = await checked_report(report, shown, self.settings, on_event)
        report = with_guard_figures(with_outcome_warning(report), state.turns)
        if getattr(llm, "simulated", False):
            mark_simulated(report)
        await emit(on_event, "finished", run_id=state.run_id, **report_counts(report),
                   prompt_tokens=state.usage.prompt_tokens,
                   completion_tokens=state.usage.completion_tokens,
                   tokens_estimated=state.usage.estimated)
        return report
