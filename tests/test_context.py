"""The context budget: no request ever exceeds the served window."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from pathlib import Path

import pytest

from rumination import Researcher, Settings
from rumination.agent.browser import page_window
from rumination.agent.context import ContextBudget, ContextTooSmall, elided
from rumination.llm.tokens import estimate_tokens
from rumination.models import Message
from rumination.testing import SimulatorConfig, SimulatorServer
from rumination.testing.server import render_prompt
from rumination.testing.simulator import GLACIER_WORDS, long_corpus, long_reader


class ExactCounter:
    """Counts like the simulator server does (its /tokenize), without HTTP."""

    async def count(self, messages: Sequence[Message]) -> int:
        return estimate_tokens(render_prompt([m.model_dump() for m in messages]))


def page(source_id: int, size: int) -> Message:
    body = " ".join(random.Random(source_id).choices(GLACIER_WORDS, k=size))
    return Message(
        role="observation",
        content=f"【{source_id}†T{source_id}†u{source_id}】\nVisible: 0% - 100%\n\n{body}",
    )


def conversation(pages: int, size: int) -> list[Message]:
    messages = [Message(role="user", content="q")]
    for i in range(1, pages + 1):
        messages.append(Message(role="assistant", content='{"name": "click"}'))
        messages.append(page(i, size))
    return messages


def test_elided_keeps_id_title_and_url() -> None:
    short = elided(page(7, 50))
    assert short is not None
    assert short.content.startswith("【7†T7†u7】\n")
    assert "Click 7 to read it again" in short.content
    assert elided(Message(role="user", content="【1†a†b】\nVisible: 0% - 1%")) is None


def test_a_page_with_a_published_date_is_elided_too() -> None:
    text, _ = page_window(5, "T5", "u5", "Ice moves. " * 200, 0, 500, published="2024-05-17")
    short = elided(Message(role="observation", content=text))
    assert short is not None and short.content.startswith("【5†T5†u5】\n(Page text removed")


def test_fit_does_nothing_under_the_high_water_mark() -> None:
    messages = conversation(3, 200)
    before = list(messages)
    plan = asyncio.run(ContextBudget(32768, ExactCounter()).fit(messages, 4096))
    assert messages == before and plan.compacted == 0 and plan.max_tokens == 4096


def test_fit_compacts_oldest_pages_down_to_the_low_water_mark() -> None:
    messages = conversation(12, 1500)
    budget = ContextBudget(32768, ExactCounter())
    plan = asyncio.run(budget.fit(messages, 4096))
    assert plan.compacted > 0 and budget.compactions == 1
    assert plan.prompt_tokens + 4096 <= 32768 * 0.55
    kinds = ["elided" if "removed" in m.content else "page" for m in messages[2::2]]
    assert kinds == sorted(kinds, key=lambda k: k == "page")  # oldest first
    assert kinds[-1] == "page"  # the page just read is kept


def test_fit_shrinks_generation_then_gives_up() -> None:
    messages = [Message(role="user", content=" ".join(GLACIER_WORDS * 400))]
    budget = ContextBudget(8192, ExactCounter(), min_generation=512)
    with pytest.raises(ContextTooSmall):
        asyncio.run(budget.fit(messages, 4096))


@pytest.fixture
def long_corpus_db(tmp_path: Path) -> Path:
    return long_corpus(tmp_path / "long")


@pytest.mark.parametrize("window", [32768, 131072])
def test_forty_turns_of_long_pages_never_exceed_the_window(
    long_corpus_db: Path, window: int
) -> None:
    config = SimulatorConfig(model="sim", max_model_len=window)
    with SimulatorServer(long_reader(40), config) as server:
        settings = Settings(
            llm_url=server.url,
            model="sim",
            corpus=str(long_corpus_db),
            max_turns=60,
            answer_max_tokens=8192,
        )
        events: list[str] = []
        report = asyncio.run(
            Researcher(settings).run("glacier moraine", on_event=lambda e: events.append(e.kind))
        )
    assert server.rejections == []
    assert report.turns == 41
    assert report.answer_markdown and report.citations
    if window == 32768:
        assert "compacted" in events
