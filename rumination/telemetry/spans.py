"""A run's trace, built from its events as they happen: the run (`invoke_agent rumination`),
each turn, each model request (`chat MODEL`) and tool call (`execute_tool NAME`) inside its
turn, the final answer and the support check. Attribute names follow OpenTelemetry's GenAI
semantic conventions where one fits (`gen_ai.*`); the rest are `rumination.*`."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from typing import Any

from rumination.events import Event, EventHandler
from rumination.telemetry.tracing import tracer

NS = 1_000_000_000


class RunSpans:
    def __init__(self, active_tracer: Any) -> None:
        from opentelemetry import trace

        self._trace = trace
        self._tracer = active_tracer
        self._run: Any = None
        self._step: Any = None  # the turn or the answer being written
        self._tool: Any = None
        self._model = ""

    def record(self, event: Event) -> None:
        now, data = time.time_ns(), event.data
        kind = event.kind
        if kind == "run_started":
            self._model = str(data.get("model", ""))
            self._run = self._tracer.start_span("invoke_agent rumination", start_time=now,
                                                attributes=_run_attributes(data))
        elif self._run is None:
            return
        elif kind == "turn_started":
            self._open_step(f"turn {data['index']}", now, {"rumination.turn.index":
                                                          data["index"]})
        elif kind == "answer_started":
            self._open_step("answer", now, {})
        elif kind == "model_answered":
            self._model_span(data, now)
        elif kind == "tool_called":
            self._tool = self._child(self._step or self._run, f"execute_tool {data['name']}",
                                     now, {"gen_ai.operation.name": "execute_tool",
                                           "gen_ai.tool.name": data["name"]})
        elif kind == "tool_finished" and self._tool is not None:
            self._tool.set_attribute("rumination.tool.observation_chars", data.get("chars", 0))
            if data.get("failure"):
                self._fail(self._tool, str(data["failure"]))
            self._tool.end(end_time=now)
            self._tool = None
        elif kind in ("generation_cut", "repeated_call", "research_stopped"):
            # what a guard did, on the turn it happened in
            (self._step or self._run).add_event(f"rumination.{kind}", {
                key: str(value) for key, value in data.items() if value is not None},
                timestamp=now)
        elif kind == "support_checked":
            self._close_step(now)
            span = self._child(self._run, "support_check", now - int(data["seconds"] * NS), {
                "rumination.judge": data.get("judge", ""),
                "rumination.statements_checked": data.get("statements", 0),
                "rumination.statements_supported": data.get("supported", 0)})
            span.end(end_time=now)
        elif kind == "finished":
            for name in ("citations", "sources_cited", "sources", "warnings"):
                self._run.set_attribute(f"rumination.{name}", data.get(name, 0))
            self._run.set_attribute("gen_ai.usage.input_tokens", data.get("prompt_tokens", 0))
            self._run.set_attribute("gen_ai.usage.output_tokens",
                                    data.get("completion_tokens", 0))

    def end(self, error: BaseException | None) -> None:
        """Close every open span; the run's carries the error that ended it, if any."""
        now = time.time_ns()
        if self._tool is not None:
            self._tool.end(end_time=now)
        self._close_step(now)
        if self._run is not None:
            if error is not None:
                self._fail(self._run, type(error).__name__, str(error))
            self._run.end(end_time=now)
        self._tool = self._run = None

    def _model_span(self, data: dict[str, Any], now: int) -> None:
        attributes = {
            "gen_ai.operation.name": "chat", "gen_ai.request.model": self._model,
            "gen_ai.usage.input_tokens": data.get("prompt_tokens", 0),
            "gen_ai.usage.output_tokens": data.get("completion_tokens", 0),
            "rumination.usage.cached_input_tokens": data.get("cached_prompt_tokens", 0),
        }
        if data.get("finish_reason"):
            attributes["gen_ai.response.finish_reasons"] = [data["finish_reason"]]
        if data.get("first_token_seconds") is not None:
            attributes["rumination.time_to_first_token_s"] = data["first_token_seconds"]
        span = self._child(self._step or self._run, f"chat {self._model}",
                           now - int(data["seconds"] * NS), attributes)
        span.end(end_time=now)

    def _open_step(self, name: str, now: int, attributes: dict[str, Any]) -> None:
        self._close_step(now)
        self._step = self._child(self._run, name, now, attributes)

    def _close_step(self, now: int) -> None:
        if self._step is not None:
            self._step.end(end_time=now)
            self._step = None

    def _child(self, parent: Any, name: str, start: int, attributes: dict[str, Any]) -> Any:
        context = self._trace.set_span_in_context(parent)
        return self._tracer.start_span(name, context=context, start_time=start,
                                       attributes=attributes)

    def _fail(self, span: Any, kind: str, message: str = "") -> None:
        span.set_attribute("error.type", kind)
        span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, message or kind))


def _run_attributes(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "rumination",
        "gen_ai.conversation.id": str(data.get("run_id", "")),
        "gen_ai.request.model": str(data.get("model", "")),
        "rumination.backend": str(data.get("backend", "")),
        "rumination.resumed_at_turn": int(data.get("resumed_at_turn", 0)),
    }


@contextmanager
def traced(on_event: EventHandler | None) -> Iterator[EventHandler | None]:
    """`on_event`, also building the run's trace when tracing is on; the trace ends with
    the block (marked with the error that ended it, if one did)."""
    active = tracer()
    if active is None:
        yield on_event
        return
    spans = RunSpans(active)

    def both(event: Event) -> Awaitable[None] | None:
        spans.record(event)
        return on_event(event) if on_event is not None else None

    try:
        yield both
    except BaseException as exc:
        spans.end(exc)
        raise
    spans.end(None)
