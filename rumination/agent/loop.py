"""One run's turn loop: generate within the window, execute the call, checkpoint, repeat;
then the final answer. Researcher (agent/researcher.py) builds the parts and hands them over."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime

from rumination.agent.browser import Browser
from rumination.agent.budgets import Stop, budget_reached
from rumination.agent.context import BudgetPlan, ContextBudget, ContextTooSmall
from rumination.agent.sources import SourceRegistry
from rumination.errors import ContextLengthExceeded
from rumination.events import EventHandler, emit
from rumination.llm.client import ChatModel, Completion
from rumination.llm.protocol import (
    AnswerTurn,
    CallTurn,
    Parsed,
    ProtocolError,
    clean_final_answer,
    kept_text,
    parse_turn,
)
from rumination.models import Message, StopKind, Turn, Usage
from rumination.settings import Settings
from rumination.store.run_store import RunStore
from rumination.templates import render

FINISH_CALL = '{"name": "finish", "arguments": {}}'
# Prose with no tool call ends the research only when it looks like a report; a short
# aside ("let me search") is answered with a correction instead.
MIN_UNPROMPTED_ANSWER_CHARS = 400


@dataclass
class RunState:
    question: str
    run_id: str
    messages: list[Message]
    registry: SourceRegistry = field(default_factory=SourceRegistry)
    turns: list[Turn] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    answer: str | None = None
    stopped_by: StopKind | None = None
    started: float = field(default_factory=time.monotonic)


class TurnLoop:
    """Drives one RunState to its answer."""

    def __init__(
        self, settings: Settings, llm: ChatModel, browser: Browser, state: RunState,
        budget: ContextBudget, on_event: EventHandler | None, store: RunStore | None,
    ) -> None:
        self.s = settings
        self.llm = llm
        self.budget = budget
        self.store = store
        self.browser = browser
        self.state = state
        self.on_event = on_event
        # each source as last committed
        self._saved: dict[int, tuple[str, str, str, datetime | None, bool]] = {}

    async def _checkpoint(self, turn: Turn) -> None:
        """Commit the turn before the next request: a crash loses at most the turn in flight.
        Only the sources new or changed since the last commit are written. The write runs
        in a worker thread: a slow store holds up this run only, not the others in the
        process (their streams are read meanwhile)."""
        if self.store is None:
            return
        sources = self.state.registry.all()
        rows = {s.source_id: (s.url, s.title, s.snippet, s.fetched_at, s.rendered)
                for s in sources}
        changed = [s for s in sources if self._saved.get(s.source_id) != rows[s.source_id]]
        await asyncio.to_thread(self.store.save_turn, self.state.run_id, turn, changed)
        self._saved = rows

    async def run(self) -> None:
        last = self.state.turns[-1] if self.state.turns else None
        if last is not None and last.observation is None:  # resumed after the research ended
            if last.tool_call is None and last.protocol_error is None:
                parsed = parse_turn(last.assistant_text)
                self.state.answer = parsed.answer if isinstance(parsed, AnswerTurn) else None
            if self.state.answer is None:
                await self._final_answer(None)
            return
        stop = await self._research()
        self.state.stopped_by = stop.kind if stop else None
        if self.state.answer is None:
            await self._final_answer(stop)

    async def _generate(self, max_tokens: int, answering: bool = False) -> Completion:
        """One model call that fits the window: compacts history first if needed, and once
        more if the server still refuses for length. Raises ContextTooSmall when it cannot."""

        async def delta(text: str) -> None:
            await emit(self.on_event, "answer_delta", text=text)

        keep_last = 0 if answering else 1
        max_tokens = self.budget.generation_cap(max_tokens, answering)
        started = 0.0

        async def ask() -> Completion:
            nonlocal started
            plan = await self._fit(max_tokens, keep_last)
            sent = tuple(self.state.messages)
            started = time.monotonic()  # model time only, not the counting before it
            completion = await self.llm.chat(sent, max_tokens=plan.max_tokens,
                                             on_delta=delta if answering else None)
            self.budget.served(sent, completion.usage.prompt_tokens)
            return completion

        try:
            completion = await ask()
        except ContextLengthExceeded as exc:
            self.state.warnings.append(f"server refused for length, compacting: {exc}")
            await self._compacted(await self.budget.compact_all(self.state.messages, keep_last))
            try:
                completion = await ask()
            except ContextLengthExceeded as again:
                raise ContextTooSmall(str(again)) from None
        completion.model_seconds = time.monotonic() - started
        self.state.usage = self.state.usage + completion.usage
        usage = completion.usage
        await emit(self.on_event, "model_answered", answering=answering,
                   seconds=round(completion.model_seconds, 4),
                   first_token_seconds=completion.first_token_seconds,
                   prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                   cached_prompt_tokens=usage.cached_prompt_tokens,
                   finish_reason=completion.finish_reason)
        return completion

    async def _fit(self, max_tokens: int, keep_last: int) -> BudgetPlan:
        plan = await self.budget.fit(self.state.messages, max_tokens, keep_last=keep_last)
        await self._compacted(plan.compacted)
        return plan

    async def _compacted(self, count: int) -> None:
        if count:
            await emit(self.on_event, "compacted", pages=count,
                       compactions=self.budget.compactions)

    async def _research(self) -> Stop | None:
        """Turns until finish; returns the budget that stopped research early, or None."""
        st = self.state
        for index in range(len(st.turns), self.s.max_turns):
            reached = budget_reached(self.s, st.usage, time.monotonic() - st.started)
            if reached is not None:
                return reached
            await emit(self.on_event, "turn_started", index=index, max_turns=self.s.max_turns)
            try:
                completion = await self._generate(self.s.max_tokens)
            except ContextTooSmall as exc:
                st.warnings.append(f"research stopped at turn {index}: context window full ({exc})")
                return Stop("context_window", "context window")
            turn = Turn(index=index, assistant_text=completion.content, usage=completion.usage,
                        model_seconds=completion.model_seconds)
            st.turns.append(turn)
            parsed = parse_turn(completion.content, completion.reasoning)
            st.messages.append(Message(role="assistant", content=kept_text(turn.assistant_text,
                                                                           parsed)))
            turn.thinking = parsed.thinking
            if isinstance(parsed, CallTurn) and parsed.dropped:
                await emit(self.on_event, "continuation_dropped", index=index,
                           chars=len(parsed.dropped), text=parsed.dropped[:200])
            if isinstance(parsed, AnswerTurn) and len(parsed.answer) >= MIN_UNPROMPTED_ANSWER_CHARS:
                st.answer = parsed.answer
                await self._checkpoint(turn)
                return None
            if isinstance(parsed, CallTurn) and parsed.call.name == "finish":
                turn.tool_call = parsed.call
                await self._checkpoint(turn)
                return None
            observation = await self._act(turn, parsed)
            turn.observation = observation
            st.messages.append(Message(role="observation", content=observation))
            await self._checkpoint(turn)
        return Stop("turns", f"{self.s.max_turns} turns")

    async def _act(self, turn: Turn, parsed: Parsed) -> str:
        if not isinstance(parsed, CallTurn):
            message = (
                parsed.message if isinstance(parsed, ProtocolError)
                else "You wrote prose without calling a tool; call a tool, or finish to answer."
            )
            turn.protocol_error = message
            await emit(self.on_event, "protocol_error", index=turn.index, message=message)
            return render("tool_error", message=message)
        turn.tool_call = parsed.call
        await emit(self.on_event, "tool_called", index=turn.index, name=parsed.call.name,
                   arguments=parsed.call.arguments)
        started = time.monotonic()
        result = await self.browser.execute(parsed.call)
        turn.tool_seconds = time.monotonic() - started
        await emit(self.on_event, "tool_finished", index=turn.index, name=parsed.call.name,
                   seconds=round(turn.tool_seconds, 4), failure=result.failure,
                   chars=len(result.text))
        for source in result.new_sources:
            await emit(self.on_event, "source_added", source_id=source.source_id,
                       title=source.title, url=source.url)
        return "\n\n".join([*parsed.notes, result.text])

    async def _final_answer(self, stop: Stop | None) -> None:
        st = self.state
        if stop is not None:
            st.warnings.append(f"research stopped by budget ({stop.reason}); answer forced")
            note = render("turns_exhausted", reason=stop.reason)
            if st.messages[-1].role == "observation":
                last = st.messages[-1]
                st.messages[-1] = Message(role="observation", content=f"{last.content}\n\n{note}")
            else:
                st.messages.append(Message(role="observation", content=note))
            st.messages.append(Message(role="assistant", content=FINISH_CALL))
        await emit(self.on_event, "answer_started")
        try:
            completion = await self._generate(self.s.answer_max_tokens, answering=True)
        except ContextTooSmall as exc:
            st.warnings.append(f"no final answer: context window full ({exc})")
            st.answer = ""
            return
        st.answer = clean_final_answer(completion.content, completion.reasoning)
        if completion.finish_reason == "length":
            st.warnings.append("the final answer was cut at the token limit")
        if not st.answer:
            st.warnings.append("the model produced no final answer")
        elif isinstance(parse_turn(st.answer), CallTurn):
            st.warnings.append("the model answered with a tool call instead of a report")
