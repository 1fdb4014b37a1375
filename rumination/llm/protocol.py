"""Parse one assistant turn: thinking + one tool call, a final answer, or a protocol error.

The rumination model writes its reasoning in ``<think>…</think>`` and then one call as JSON,
``{"name": "search", "arguments": {"query": "…"}}``. GLM-4 chat models write the function name on
its own line followed by the JSON arguments (``search\\n{"query": "…"}``); both are accepted.
A malformed turn becomes a :class:`ProtocolError` (a value, not an exception) whose message is sent
back to the model as an observation.

The first ``</think>`` ends the reasoning, and the first call is the one executed: a server that
does not stop on ``<|observation|>`` lets the model run on into an observation of its own making
(``<observation>``, ``【0†…】`` lines, even another ``<think>``). That continuation is
:attr:`CallTurn.dropped`; :func:`kept_text` is the turn without it, as the conversation keeps it.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from typing import Any

from rumination.models import ToolCall

__all__ = ["TOOLS", "AnswerTurn", "CallTurn", "Parsed", "ProtocolError"]
__all__ += ["clean_final_answer", "kept_text", "parse_turn", "split_thinking"]

TOOLS = ("search", "click", "open", "finish")
_FORMS = {
    "search": '{"name": "search", "arguments": {"query": "…"}}',
    "click": '{"name": "click", "arguments": {"link_id": 3}}',
    "open": '{"name": "open", "arguments": {"url": "https://…"}}',
    "finish": '{"name": "finish", "arguments": {}}',
}
_EXPECTED = (
    "Write your reasoning inside <think>…</think>, then exactly one tool call as JSON, "
    f"e.g. {_FORMS['search']}"
)
_DECODER = json.JSONDecoder()
# GLM-4 form: a bare function name on its own line right before the JSON arguments.
_GLM4_NAME = re.compile(r"(?:^|\n)[ \t]*([A-Za-z_]\w*)[ \t]*\r?\n\s*$")
_GLM4_ATTEMPT = re.compile(r"(?:search|click|open|finish)[ \t]*\r?\n\s*\{")
_BARE_FINISH = re.compile(r"`*\s*finish(?:\(\))?\s*`*")
_TRAILING_FENCE = re.compile(r"```[A-Za-z]*\s*$")
_CALL_GAP = re.compile(r"[\s,`]*(?:json)?[\s,`]*")  # what may separate consecutive calls
_LEADING_FINISH = re.compile(r"(?P<fence>```[A-Za-z]*\s*)?(?P<glm4>finish[ \t]*\r?\n\s*)?(?=\{)")
_CLOSING_FENCE = re.compile(r"\s*```")


@dataclass(frozen=True)
class CallTurn:
    """The model called a tool."""

    thinking: str
    call: ToolCall
    notes: tuple[str, ...] = ()
    dropped: str = ""
    """What followed the executed call (further calls, an invented observation): not kept."""


@dataclass(frozen=True)
class AnswerTurn:
    """The model wrote prose with no tool call (a final answer)."""

    thinking: str
    answer: str


@dataclass(frozen=True)
class ProtocolError:
    """A malformed turn, corrected by telling the model ``message`` as an observation."""

    thinking: str
    message: str
    raw: str


Parsed = CallTurn | AnswerTurn | ProtocolError


@dataclass(frozen=True)
class _Candidate:
    start: int
    end: int
    name: Any
    arguments: Any


def _find_calls(text: str) -> list[_Candidate]:
    """Every JSON object in ``text`` that is a call (has "name", or follows a GLM-4 name line)."""
    found: list[_Candidate] = []
    i = text.find("{")
    while i != -1:
        try:
            obj, end = _DECODER.raw_decode(text, i)
        except json.JSONDecodeError:
            i = text.find("{", i + 1)
            continue
        if "name" in obj:
            args = obj.get("arguments", obj.get("parameters"))
            found.append(_Candidate(i, end, obj["name"], args))
        elif (glm4 := _GLM4_NAME.search(text, 0, i)) and glm4.group(1) != "json":
            found.append(_Candidate(glm4.start(1), end, glm4.group(1), obj))
        i = text.find("{", end)
    return found


def _split_content(content: str) -> tuple[str, str]:
    if "</think>" in content:
        head, _, rest = content.partition("</think>")
        head = head.strip()
        return head.removeprefix("<think>").strip(), rest.strip()
    text = content.strip()
    if not text.startswith("<think>"):
        return "", text
    # Unclosed <think>: the reasoning ends where the trailing run of calls begins.
    body = text.removeprefix("<think>")
    calls = _find_calls(body)
    if not calls:
        return body.strip(), ""
    k = len(calls) - 1
    while k > 0 and _CALL_GAP.fullmatch(body[calls[k - 1].end : calls[k].start]):
        k -= 1
    start = calls[k].start
    fence = _TRAILING_FENCE.search(body, 0, start)
    if fence:
        start = fence.start()
    return body[:start].strip(), body[start:].strip()


def split_thinking(content: str, reasoning: str | None = None) -> tuple[str, str]:
    """Return ``(thinking, rest)``; ``reasoning`` is a server's separate reasoning field."""
    thinking, rest = _split_content(content or "")
    parts = [p for p in ((reasoning or "").strip(), thinking) if p]
    return "\n\n".join(parts), rest


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        return int(value)
    return None


def _validate(cand: _Candidate) -> ToolCall | str:
    """The call as a ToolCall, or the message to send the model."""
    name, args = cand.name, cand.arguments
    if name not in TOOLS:
        return (
            f"Unknown tool {name!r}. The only tools are search(query), click(link_id), "
            f"open(url) and finish(); call one as JSON, e.g. {_FORMS['search']}"
        )
    if args is None or (isinstance(args, str) and not args.strip()):
        args = {}
    if isinstance(args, str):
        with contextlib.suppress(json.JSONDecodeError):
            args = json.loads(args)  # arguments given as a JSON string
    if not isinstance(args, dict):
        return f'The "arguments" of your {name} call must be a JSON object, e.g. {_FORMS[name]}'
    if name == "finish":
        return ToolCall(name="finish")
    if name == "click":
        link_id = _as_int(args.get("link_id", args.get("id")))
        if link_id is None:
            return (
                f'click needs an integer "link_id" (a result number from an earlier search), '
                f"got {args.get('link_id', args.get('id'))!r}; e.g. {_FORMS['click']}"
            )
        return ToolCall(name="click", arguments={"link_id": link_id})
    key = "query" if name == "search" else "url"
    value = args.get("query", args.get("q")) if name == "search" else args.get("url")
    if not isinstance(value, str) or not value.strip():
        return f'{name} needs a non-empty "{key}" string, e.g. {_FORMS[name]}'
    return ToolCall(name=name, arguments={key: value.strip()})


def _looks_like_call(text: str) -> bool:
    bare = text.lstrip("`").removeprefix("json").lstrip()
    return bare.startswith("{") or '"name"' in text or bool(_GLM4_ATTEMPT.match(bare))


def parse_turn(content: str, reasoning: str | None = None) -> Parsed:
    """Parse one assistant text into a tool call, a final answer, or a protocol error."""
    raw = content or ""
    thinking, rest = split_thinking(raw, reasoning)
    if not rest:
        what = "Your turn ended after the reasoning with no tool call" if thinking else "Empty turn"
        return ProtocolError(thinking, f"{what}. {_EXPECTED}", raw)
    calls = _find_calls(rest)
    if not calls:
        if _BARE_FINISH.fullmatch(rest):
            return CallTurn(thinking, ToolCall(name="finish"))
        if _looks_like_call(rest):
            message = f'Your tool call is not a valid JSON object with a "name". {_EXPECTED}'
            return ProtocolError(thinking, message, raw)
        return AnswerTurn(thinking, rest)
    call = _validate(calls[0])
    if isinstance(call, str):
        return ProtocolError(thinking, call, raw)
    notes: tuple[str, ...] = ()
    if len(calls) > 1:
        notes = (
            f"You made {len(calls)} calls in one turn; only the first ({call.name}) was executed.",
        )
    after = rest[calls[0].end :]
    dropped = "" if _CLOSING_FENCE.fullmatch(after) or not after.strip() else after
    return CallTurn(thinking, call, notes, dropped)


def kept_text(raw: str, parsed: Parsed) -> str:
    """The assistant text the conversation keeps: `raw` up to the end of the executed call."""
    if not isinstance(parsed, CallTurn) or not parsed.dropped:
        return raw
    body = raw.rstrip()
    return body[: len(body) - len(parsed.dropped)].rstrip()


def clean_final_answer(content: str, reasoning: str | None = None) -> str:
    """The report text: thinking removed, and a leading finish call (fenced or not) stripped."""
    _, text = split_thinking(content, reasoning)
    lead = _LEADING_FINISH.match(text)
    if lead is None:
        return text
    try:
        obj, end = _DECODER.raw_decode(text, lead.end())
    except json.JSONDecodeError:
        return text
    if lead.group("glm4") is None and obj.get("name") != "finish":
        return text
    closing = _CLOSING_FENCE.match(text, end)
    if lead.group("fence") and closing:
        end = closing.end()
    return text[end:].strip()
