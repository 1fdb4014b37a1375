"""In-process chat models for unit tests and pipelines that must not call a real model.

`FunctionModel(fn)` answers each request with `fn(messages)`; `SimulatorModel()` plays the
rumination protocol (see simulator.py); `ScriptedModel(texts)` replays recorded turns.
All implement rumination.llm.client.ChatModel. They have no /tokenize, so the client
estimates prompts (rumination.llm.tokens); their usage reports that same estimate, so the
prompt size a turn's usage makes known agrees with the client's own count.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rumination.defaults import SIMULATOR_MODEL
from rumination.llm.client import Completion, OnDelta
from rumination.llm.tokens import estimate_messages, estimate_tokens
from rumination.models import Message, Usage
from rumination.testing.simulator import scripted, simulate

Responder = Callable[[list[dict[str, Any]]], str]


class FunctionModel:
    """A ChatModel whose every answer is `responder(messages as dicts)`."""

    def __init__(
        self, responder: Responder, model: str = "function-model", window: int | None = None
    ) -> None:
        self.responder = responder
        self.model = model
        self.window = window
        self.requests: list[list[Message]] = []

    async def max_model_len(self) -> int | None:
        return self.window

    async def chat(
        self, messages: Sequence[Message], *, max_tokens: int, on_delta: OnDelta | None = None
    ) -> Completion:
        self.requests.append(list(messages))
        text = self.responder([m.model_dump() for m in messages])
        if on_delta is not None:
            result = on_delta(text)
            if result is not None:
                await result
        usage = Usage(prompt_tokens=estimate_messages(messages),
                      completion_tokens=estimate_tokens(text))
        return Completion(
            content=text,
            reasoning=None,
            usage=usage,
            finish_reason="stop",
        )

    async def aclose(self) -> None:
        return None


class SimulatorModel(FunctionModel):
    """The protocol simulator in process (labeled: it is not the model, and reports written
    from it are marked SIMULATED)."""

    simulated = True

    def __init__(self, model: str = SIMULATOR_MODEL) -> None:
        super().__init__(simulate, model)


class ScriptedModel(FunctionModel):
    """Replays recorded assistant texts in order."""

    def __init__(self, texts: Sequence[str], model: str = "scripted-model") -> None:
        super().__init__(scripted(list(texts)), model)
