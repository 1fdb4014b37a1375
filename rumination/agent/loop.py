"""One run's turn loop: generate within the window, execute the call, checkpoint, repeat;
then the final answer. Researcher (agent/researcher.py) builds the parts and hands them over."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime

from rumination.agent.browser import Browser
from rumination.agent.budgets import Stop, answer_tokens_left, budget_reached
from rumination.agent.context import BudgetPlan, ContextBudget, ContextTooSmall
from rumination.agent.guards import (
    CUT_PREFIX,
    GUARD_STOPS,
    REPEAT_PREFIX,
    ProgressGuard,
    cut_note,
    guard_for,
)
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
from rumination.llm.runaway import GenerationCut, RunawayGuard, cut_completion
from rumination.models import Message, StopKind, Turn, Usage
from rumination.settings import Settings
from rumination.store.run_store import RunStore
from rumination.templates import render

FINISH_CALL = '{"name": "finish", "arguments": {}}'
# Prose with no tool call ends the research only when it looks like a report; a short
# aside ("let me search") is answered with a correction instead.
MIN_UNPROMPTED_ANSWER_CHARS = 400
# An answer squeezed by a token budget still gets this much room (a few sentences).
MIN_ANSWER_TOKENS = 64


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
            if answering:
                plan = self._within_token_budget(plan)
            sent = tuple(self.state.messages)
            started = time.monotonic()  # model time only, not the counting before it
            # a research turn that runs away is cut in the stream (the answer is not: a long
            # report may repeat its structure, and it is the last generation anyway)
            guard = None if answering else RunawayGuard(plan.max_tokens)
            try:
                completion = await self.llm.chat(sent, max_tokens=plan.max_tokens,
                                                 on_delta=guard.feed if guard else delta)
            except GenerationCut as cut:
                return cut_completion(cut, plan.prompt_tokens)
            if guard is not None:
                completion = guard.settle(completion)
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
        """Turns until finish; returns the budget or guard that stopped research, or None."""
        st = self.state
        progress = guard_for(self.s, st.turns)
        for index in range(len(st.turns), self.s.max_turns):
            reached = progress.stop() or budget_reached(
                self.s, st.usage, time.monotonic() - st.started, self._answer_reserve())
            if reached is not None:
                await emit(self.on_event, "research_stopped", stopped_by=reached.kind,
                           reason=reached.reason)
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
            if completion.cut or (completion.finish_reason == "length"
                                  and not isinstance(parsed, CallTurn)):
                await self._cut_turn(turn, completion, progress)
                continue
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
            observation = await self._act(turn, parsed, progress)
            turn.observation = observation
            st.messages.append(Message(role="observation", content=observation))
            await self._checkpoint(turn)
        return Stop("turns", f"{self.s.max_turns} turns")

    def _within_token_budget(self, plan: BudgetPlan) -> BudgetPlan:
        """The answer's max_tokens capped by what the token budget leaves after its prompt."""
        left = answer_tokens_left(self.s, self.state.usage, plan.prompt_tokens)
        if left is None or left >= plan.max_tokens:
            return plan
        capped = max(MIN_ANSWER_TOKENS, left)
        self.state.warnings.append(f"the answer was limited to {capped} tokens by the token "
                                   f"budget of {self.s.max_total_tokens}")
        return BudgetPlan(max_tokens=capped, prompt_tokens=plan.prompt_tokens,
                          compacted=plan.compacted)

    def _answer_reserve(self) -> Usage:
        """What one more turn and then the final answer will cost, judged by the last turn
        (a turn's prompt is about the last prompt plus the last generation)."""
        last = self.state.turns[-1].usage if self.state.turns else Usage()
        cap = self.budget.generation_cap(self.s.answer_max_tokens, answering=True)
        share = self.s.max_total_tokens // 5 if self.s.max_total_tokens else 0
        answer_text = min(cap, max(last.completion_tokens, share))
        prompt = last.prompt_tokens + last.completion_tokens
        return Usage(prompt_tokens=2 * prompt,
                     completion_tokens=last.completion_tokens + answer_text)

    async def _cut_turn(self, turn: Turn, completion: Completion,
                        progress: ProgressGuard) -> None:
        """A generation cut for running away, or at the cap without a call: the conversation
        keeps a short note of it, not its text (the store keeps the text)."""
        detail = completion.cut or (
            f"no tool call within the {turn.usage.completion_tokens}-token cap")
        message = f"{CUT_PREFIX}: {detail}"
        turn.protocol_error = message
        progress.protocol_error()
        await emit(self.on_event, "generation_cut", index=turn.index, reason=detail,
                   tokens=turn.usage.completion_tokens)
        self.state.messages.append(Message(role="assistant", content=cut_note(detail)))
        turn.observation = render("tool_error", message=f"Your last turn was cut: {detail}. "
                                  "Think briefly, then make exactly one tool call.")
        self.state.messages.append(Message(role="observation", content=turn.observation))
        await self._checkpoint(turn)

    async def _act(self, turn: Turn, parsed: Parsed, progress: ProgressGuard) -> str:
        if not isinstance(parsed, CallTurn):
            message = (
                parsed.message if isinstance(parsed, ProtocolError)
                else "You wrote prose without calling a tool; call a tool, or finish to answer."
            )
            turn.protocol_error = message
            progress.protocol_error()
            await emit(self.on_event, "protocol_error", index=turn.index, message=message)
            return render("tool_error", message=message)
        first = progress.first_made(parsed.call, turn.index,
                                    self.browser.reading_position(parsed.call))
        if first is not None:
            turn.tool_call = parsed.call
            turn.protocol_error = f"{REPEAT_PREFIX} (first made in turn {first})"
            await emit(self.on_event, "repeated_call", index=turn.index, name=parsed.call.name,
                       arguments=parsed.call.arguments, first_turn=first)
            return render("repeated_call", turn=first, tool=parsed.call.name)
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
            what = "no progress" if stop.kind in GUARD_STOPS else "budget"
            st.warnings.append(f"research stopped by {what} ({stop.reason}); answer forced")
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
