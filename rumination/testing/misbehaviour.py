"""Misbehaving models to replay (`python -m rumination.testing serve --misbehave KIND`): what
local models do to deep-research tools, so tests and users can watch the guards act.

- repeat: a research turn that repeats one sentence until the token cap;
- same-call: the same search, turn after turn;
- empty: empty replies;
- endless-think: thinking that never closes, past any cap;
- no-search: an essay at once, without a tool call.

Asked for the final answer (the conversation ends with the framework's finish call), each
writes a short answer without citations: it never found anything to cite.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

MISBEHAVIOURS = ("repeat", "same-call", "empty", "endless-think", "no-search")
SAME_CALL = '<think>Search again.</think>{"name": "search", "arguments": {"query": "heat pump"}}'
LOOPED = "I need to search for more information about heat pumps. "
ESSAY = ("Heat pumps move heat rather than making it, which is why they can deliver several "
         "units of heat for each unit of electricity. In cold climates their efficiency falls "
         "as the outdoor temperature drops, and defrost cycles cost energy. ") * 3


def _answering(messages: Sequence[dict[str, Any]]) -> bool:
    return bool(messages) and messages[-1].get("role") == "assistant"


def endless_thinking(words: int = 40_000) -> str:
    """Thinking that never closes and never repeats itself exactly (counted steps)."""
    return "<think>" + " ".join(f"Step {n}: consider case {n * 7 % 113}." for n in range(words))


def misbehaving(kind: str) -> Callable[[Sequence[dict[str, Any]]], str]:
    if kind not in MISBEHAVIOURS:
        raise ValueError(f"misbehaviour must be one of {', '.join(MISBEHAVIOURS)}, not {kind!r}")

    def respond(messages: Sequence[dict[str, Any]]) -> str:
        if _answering(messages):
            return "Heat pumps work in cold climates, with lower efficiency."
        if kind == "repeat":
            return "<think>" + LOOPED * 2000
        if kind == "same-call":
            return SAME_CALL
        if kind == "empty":
            return ""
        if kind == "endless-think":
            return endless_thinking()
        return ESSAY

    return respond
