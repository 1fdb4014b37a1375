from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from rumination import Researcher, Settings, UsageError
from rumination.errors import ContextLengthExceeded
from rumination.events import Event
from rumination.llm.client import Completion
from rumination.models import Message, Usage
from rumination.reading.fetch import PageFetcher
from rumination.search_backends.local import LocalCorpusBackend
from rumination.testing import FunctionModel, ScriptedModel, SimulatorModel

FIXTURES = Path(__file__).parent / "fixtures"


def run(
    model: Any,
    corpus_db: Path,
    question: str = "How do sea otters help kelp forests?",
    events: list[Event] | None = None,
    **settings: Any,
) -> Any:
    researcher = Researcher(
        Settings(corpus=str(corpus_db), **settings),
        llm=model,
        backend=LocalCorpusBackend(corpus_db),
        fetcher=PageFetcher(),
    )
    return asyncio.run(researcher.run(question, on_event=events.append if events else None))


def search_forever(messages: list[dict[str, Any]]) -> str:
    n = sum(1 for m in messages if m["role"] == "assistant")
    if messages[-1]["role"] == "assistant":  # the framework forced finish: answer now
        return "Forced answer citing kelp【1†source】."
    return f'<think>more</think>{{"name": "search", "arguments": {{"query": "kelp {n}"}}}}'


def test_simulated_run_cites_only_sources_it_saw(corpus_db: Path) -> None:
    events: list[Event] = [Event("start")]
    report = run(SimulatorModel(), corpus_db, events=events)
    seen = {s.source_id for s in report.sources}
    assert len(report.citations) >= 2
    assert {c.source_id for c in report.citations} <= seen
    assert [c.number for c in report.citations] == list(range(1, len(report.citations) + 1))
    assert "【" not in report.answer_markdown
    assert report.turns >= 4
    kinds = [e.kind for e in events[1:]]
    assert kinds[0] == "run_started" and kinds[-1] == "finished"
    assert "tool_called" in kinds and "source_added" in kinds and "answer_started" in kinds


def test_question_carries_todays_date_and_can_omit_it(corpus_db: Path) -> None:
    model = SimulatorModel()
    run(model, corpus_db)
    assert model.requests[0][0].content.startswith("Today's date is ")
    model = SimulatorModel()
    run(model, corpus_db, tell_date=False)
    assert model.requests[0][0].content == "How do sea otters help kelp forests?"


def test_scripted_transcript_executes_each_call_in_order(corpus_db: Path) -> None:
    texts = json.loads((FIXTURES / "transcript.json").read_text(encoding="utf-8"))
    model = ScriptedModel(texts)
    report = run(model, corpus_db)
    observations = [m.content for m in model.requests[-1] if m.role == "observation"]
    assert len(observations) == 5  # search, click, open, bad tool, search
    assert observations[0].startswith("【0†")
    assert "Visible: 0% - 100%" in observations[1]
    assert "Sea urchin barrens" in observations[2]
    assert "unknown tool" in observations[3].lower() or "browse" in observations[3]
    assert observations[4].startswith("【")
    assert report.turns == 6
    assert len(report.citations) == 3
    assert any("42" in w for w in report.warnings)
    assert not report.answer_markdown.lstrip().startswith("{")


def test_turn_budget_forces_a_final_answer(corpus_db: Path) -> None:
    model = FunctionModel(search_forever)
    report = run(model, corpus_db, max_turns=3)
    assert report.turns == 3
    final_request = model.requests[-1]
    assert final_request[-1].role == "assistant"
    assert json.loads(final_request[-1].content)["name"] == "finish"
    assert "Do not call any more tools" in final_request[-2].content
    assert any("budget" in w for w in report.warnings)
    assert report.citations[0].source_id == 1


def test_malformed_call_is_corrected_by_observation(corpus_db: Path) -> None:
    texts = [
        '<think>x</think>{"name": "search", "arguments": {"query": ',
        '<think>y</think>{"name": "finish", "arguments": {}}',
        "Short answer with no citations.",
    ]
    model = ScriptedModel(texts)
    report = run(model, corpus_db)
    correction = model.requests[1][-1]
    assert correction.role == "observation"
    assert "search(query)" in correction.content
    assert report.answer_markdown == "Short answer with no citations."


def test_empty_question_is_a_usage_error(corpus_db: Path) -> None:
    with pytest.raises(UsageError):
        run(SimulatorModel(), corpus_db, question="   ")


class OverflowAfter:
    """Answers like the simulator but refuses with a context error from request k on."""

    model = "overflow"

    def __init__(self, k: int) -> None:
        self.k = k
        self.calls = 0
        self.inner = SimulatorModel()

    async def chat(
        self, messages: list[Message], *, max_tokens: int, on_delta: Any = None
    ) -> Completion:
        self.calls += 1
        if self.calls >= self.k:
            raise ContextLengthExceeded("This model's maximum context length is 100 tokens.")
        return await self.inner.chat(messages, max_tokens=max_tokens)

    async def max_model_len(self) -> int | None:
        return None

    async def aclose(self) -> None:
        return None


def test_context_overflow_ends_with_a_report_not_a_crash(corpus_db: Path) -> None:
    model = OverflowAfter(3)
    report = run(model, corpus_db)
    assert report.turns == 2
    # each refusal is answered by compacting and one retry: 2 for the turn, 2 for the answer
    assert model.calls == 6
    assert any("maximum context length" in w for w in report.warnings)
    assert any(w.startswith("no final answer") for w in report.warnings)
    assert report.usage.prompt_tokens > 0


def test_usage_is_summed_over_turns(corpus_db: Path) -> None:
    model = SimulatorModel()
    report = run(model, corpus_db)
    assert report.usage.completion_tokens > 0
    assert isinstance(report.usage, Usage)
    assert report.usage.prompt_tokens >= sum(len(r) for r in model.requests)


def test_research_validates_overrides_given_with_settings(corpus_db: Path) -> None:
    from rumination import research
    from rumination.errors import ConfigError
    from rumination.settings import Settings

    with pytest.raises(ConfigError, match="max_turns"):
        research("q", settings=Settings(), max_turns=-3)
