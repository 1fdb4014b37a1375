"""Which route a request takes, and what it carries for the server that answers.

`chat`: /v1/chat/completions with the messages; the server renders the chat template.
`completions`: /v1/completions with the prompt text rendered here from the model's own
template (llm/chat_template.py), for servers that refuse the `observation` role or render
another template. Stop strings, sampling, streaming and the answer's parsing are the same on
both: a streamed completions chunk carries `choices[0].text` where a chat chunk carries
`choices[0].delta.content`, and the client reads whichever is there.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Literal

from rumination.llm.servers import ServerProfile
from rumination.models import Message, Wire

Route = Literal["chat", "completions"]
_AFFINITY_MEMORY = 4096


def choose_route(setting: Wire, profile: ServerProfile, template: str | None) -> Route:
    """`auto`: chat where the server renders the model's template and takes its roles (vLLM,
    the simulator, a llama-server serving the model's own template, and any unknown server, as
    before); completions elsewhere. Without a template of the harness's own (write mode, the
    judge: any chat model) chat is the only choice."""
    if setting != "auto":
        return setting
    if template is None or profile.custom_roles or profile.kind == "openai-compatible":
        return "chat"
    return "completions"


def chat_messages(messages: Sequence[Message], profile: ServerProfile) -> Sequence[Message]:
    """The messages as this server's chat route takes them: where it refuses custom roles
    (llama-cpp-python answers HTTP 500) or its template has no observation turn, the
    protocol's observations go as user messages, so the sources still reach the model."""
    keeps = profile.custom_roles or profile.kind == "openai-compatible"
    if keeps or not any(m.role == "observation" for m in messages):
        return messages
    return [Message(role="user", content=m.content) if m.role == "observation" else m
            for m in messages]  # fmt: skip


def server_options(profile: ServerProfile, route: Route, slot: int | None) -> dict[str, Any]:
    """Request fields beyond OpenAI's that this server reads."""
    options: dict[str, Any] = {}
    if profile.is_llama_server:
        options["cache_prompt"] = True  # keep the prompt in the slot's KV cache
        if slot is not None:
            options["id_slot"] = slot
    if route == "completions" and profile.kind in ("vllm", "simulator"):
        options["add_special_tokens"] = False  # the rendered prompt has [gMASK]<sop> already
    return options


class SlotAffinity:
    """llama-server's slots (--parallel N) each keep the KV cache of the last prompt they
    served. A run pinned to one slot finds its previous turn there; runs spread over slots in
    the order they first ask, so N concurrent runs on N slots never share one. Off by default
    (setting slot_affinity): llama-server's own choice, the idle slot whose cache matches the
    prompt best, measured as good with as many runs as slots and better with more
    (bench/slot_affinity.py)."""

    def __init__(self) -> None:
        self._slots: OrderedDict[str, int] = OrderedDict()
        self._next = 0

    def slot(self, key: str | None, slots: int | None) -> int | None:
        if key is None or not slots or slots < 2:
            return None
        found = self._slots.get(key)
        if found is None:
            found = self._slots[key] = self._next % slots
            self._next += 1
            if len(self._slots) > _AFFINITY_MEMORY:
                self._slots.popitem(last=False)
        else:
            self._slots.move_to_end(key)
        return found % slots
