"""Keep every request inside the served context window.

Before each request the prompt is counted (exactly through the server's /tokenize when it
has one, else with a safe local estimate). If prompt + reserved generation would pass the
window, old page observations are compacted: their text is replaced by a short elided form
that keeps the source id, title and URL, so citations still resolve and the model can click
them again.

Compaction rewrites history, and vLLM's prefix cache only helps up to the first changed
message. So it runs rarely and in big steps: nothing happens until the prompt passes a high
water mark (`high_water` of the window), and then enough pages are elided, oldest first, to
bring it under a low water mark. Between those events every turn only appends to the
conversation and the whole previous prompt stays a cache hit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from rumination.citation_marks import PAGE_HEADER
from rumination.models import Message
from rumination.templates import render

_PAGE_HEADER = re.compile(PAGE_HEADER)


class PromptCounter(Protocol):
    async def count(self, messages: Sequence[Message]) -> int: ...


@runtime_checkable
class ServedCounter(PromptCounter, Protocol):
    def served(self, messages: Sequence[Message], prompt_tokens: int) -> None: ...


@dataclass(frozen=True)
class BudgetPlan:
    """What a request may use: `max_tokens` to ask for, and whether history was compacted."""

    max_tokens: int
    prompt_tokens: int
    compacted: int


class ContextTooSmall(Exception):
    """Even with every page elided the request cannot fit: research must end now."""


def elided(message: Message) -> Message | None:
    """The elided form of a page observation, or None if `message` is not one."""
    match = _PAGE_HEADER.match(message.content) if message.role == "observation" else None
    if match is None:
        return None
    text = render("page_elided", source_id=match.group(1), title=match.group(2), url=match.group(3))
    return Message(role="observation", content=text)


class ContextBudget:
    def __init__(
        self,
        window: int,
        counter: PromptCounter,
        *,
        high_water: float = 0.85,
        low_water: float = 0.35,
        min_generation: int = 1024,
    ) -> None:
        self.window = window
        self.counter = counter
        self.high_water = high_water
        self.low_water = low_water
        self.min_generation = min_generation
        self.compactions = 0

    def served(self, messages: Sequence[Message], prompt_tokens: int) -> None:
        """Tell a counter that learns from the server's usage the size of a served prompt."""
        if isinstance(self.counter, ServedCounter):
            self.counter.served(messages, prompt_tokens)

    def generation_cap(self, requested: int, answering: bool) -> int:
        """Tokens to reserve for a generation. A 16K reservation per turn would leave a 32K
        window almost no room for pages, so a turn reserves at most a quarter of the window
        and the final answer at most half."""
        return min(requested, self.window // (2 if answering else 4))

    async def fit(
        self, messages: list[Message], max_tokens: int, *, keep_last: int = 1
    ) -> BudgetPlan:
        """Make `messages` (edited in place) fit with `max_tokens` of generation reserved.

        The last `keep_last` page observations are never elided (the model just asked for
        them). If the full reservation cannot fit, the generation budget shrinks down to
        `min_generation`; below that ContextTooSmall is raised.
        """
        prompt = await self.counter.count(messages)
        compacted = 0
        if prompt + max_tokens > self.window * self.high_water:
            target = int(self.window * self.low_water) - max_tokens
            compacted = await self._compact(messages, target, keep_last)
            prompt = await self.counter.count(messages)
        room = self.window - prompt
        if room < self.min_generation:
            raise ContextTooSmall(f"prompt of {prompt} tokens leaves {room} of {self.window}")
        return BudgetPlan(
            max_tokens=min(max_tokens, room), prompt_tokens=prompt, compacted=compacted
        )

    async def compact_all(self, messages: list[Message], keep_last: int = 0) -> int:
        """Elide every page observation but the last `keep_last` (after a server refusal)."""
        return await self._compact(messages, target=0, keep_last=keep_last)

    async def _compact(self, messages: list[Message], target: int, keep_last: int) -> int:
        pages = [(i, short) for i, m in enumerate(messages) if (short := elided(m)) is not None]
        done = 0
        for index, short in pages[: max(0, len(pages) - keep_last)]:
            messages[index] = short
            done += 1
            if target > 0 and await self.counter.count(messages) <= target:
                break
        if done:
            self.compactions += 1
        return done
