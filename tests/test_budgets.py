"""Token and cost budgets: research stops before the turn that would start past a budget, the
final answer is asked for as the turn limit does, and the report, batch and eval name it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rumination import ConfigError, Researcher, Settings
from rumination.agent.budgets import budget_reached, run_cost
from rumination.cli import app
from rumination.llm.client import Completion, OnDelta
from rumination.models import Message, Usage
from rumination.reading.fetch import PageFetcher
from rumination.search_backends.local import LocalCorpusBackend
from rumination.testing import SimulatorConfig, SimulatorServer, simulate

SEARCH = '<think>more</think>{"name": "search", "arguments": {"query": "kelp"}}'


class MeteredModel:
    """Searches until told to finish; every call reports 100 prompt and 10 completion tokens."""

    model = "metered"

    def __init__(self) -> None:
        self.requests: list[list[Message]] = []

    async def chat(self, messages: Sequence[Message], *, max_tokens: int,
                   on_delta: OnDelta | None = None) -> Completion:
        self.requests.append(list(messages))
        forced = messages[-1].role == "assistant"  # the framework wrote the finish call
        text = ("Kelp forests need otters【0†source】." if forced
                else SEARCH.replace("kelp", f"kelp {len(self.requests)}"))  # each a new search
        return Completion(content=text, reasoning=None, finish_reason="stop",
                          usage=Usage(prompt_tokens=100, completion_tokens=10))

    async def max_model_len(self) -> int | None:
        return None

    async def aclose(self) -> None:
        return None


def research(corpus_db: Path, model: MeteredModel, **settings: Any) -> Any:
    researcher = Researcher(Settings(corpus=str(corpus_db), **{"max_turns": 20, **settings}),
                            llm=model, backend=LocalCorpusBackend(corpus_db),
                            fetcher=PageFetcher())
    return asyncio.run(researcher.run("How do sea otters help kelp forests?"))


def test_a_token_budget_ends_research_and_the_answer_is_asked_for(corpus_db: Path) -> None:
    model = MeteredModel()
    report = research(corpus_db, model, max_total_tokens=800)
    # 110 tokens a turn; research stops while the budget still covers one more turn and the
    # answer (its prompt, and a fifth of the budget for its text): after 4 turns, 440 used
    assert report.turns == 4
    assert report.stopped_by == "tokens"
    assert len(model.requests) == 5  # four turns, then the answer
    final = model.requests[-1]
    assert json.loads(final[-1].content)["name"] == "finish"
    assert "token budget of 800: 440 used" in final[-2].content
    assert any("token budget of 800" in w for w in report.warnings)
    assert report.answer_markdown.startswith("Kelp forests need otters")
    assert report.usage.prompt_tokens + report.usage.completion_tokens == 550 <= 800
    assert report.cost is None


def test_the_answer_is_capped_by_what_the_token_budget_leaves(corpus_db: Path) -> None:
    model = MeteredModel()
    caps: list[int] = []
    chat = model.chat

    async def recording(messages: Sequence[Message], *, max_tokens: int, **options: Any) -> Any:
        caps.append(max_tokens)
        return await chat(messages, max_tokens=max_tokens, **options)

    model.chat = recording  # type: ignore[method-assign]
    research(corpus_db, model, max_total_tokens=800)
    assert caps[-1] <= 800 - 440 - 100  # what is left after the answer's own prompt


def test_a_cost_budget_ends_research_and_the_report_carries_the_cost(corpus_db: Path) -> None:
    model = MeteredModel()
    report = research(corpus_db, model, max_cost=0.7, price_per_1k_prompt_tokens=1.0,
                      price_per_1k_completion_tokens=2.0)
    # 0.12 a turn; one more turn and the answer are kept (0.26): 0.36 spent + 0.26 < 0.7,
    # 0.48 + 0.26 is not
    assert report.turns == 4
    assert report.stopped_by == "cost"
    assert report.cost == pytest.approx(5 * 0.12) and report.cost <= 0.7
    assert any("cost budget of 0.7: 0.48 spent" in w for w in report.warnings)


def test_the_turn_limit_is_named_and_a_finished_run_names_none(corpus_db: Path) -> None:
    assert research(corpus_db, MeteredModel(), max_turns=2).stopped_by == "turns"
    finishing = MeteredModel()
    finishing.chat = _finishing(finishing.chat)  # type: ignore[method-assign]
    report = research(corpus_db, finishing, max_total_tokens=10_000)
    assert report.stopped_by is None
    assert report.turns == 1


def _finishing(chat: Any) -> Any:
    async def finish_at_once(messages: Sequence[Message], **options: Any) -> Completion:
        completion: Completion = await chat(messages, **options)
        if messages[-1].role != "assistant":
            completion.content = '<think>done</think>{"name": "finish", "arguments": {}}'
        return completion
    return finish_at_once


def test_budget_checks_and_prices() -> None:
    usage = Usage(prompt_tokens=1500, completion_tokens=500)
    priced = Settings(price_per_1k_prompt_tokens=0.5, price_per_1k_completion_tokens=2.0)
    assert run_cost(usage, priced) == pytest.approx(1.75)
    assert run_cost(usage, Settings()) is None
    assert run_cost(usage, Settings(price_per_1k_completion_tokens=2.0)) == pytest.approx(1.0)
    assert budget_reached(Settings(max_total_tokens=2001), usage, 0.0) is None
    stop = budget_reached(Settings(max_total_tokens=2000), usage, 0.0)
    assert stop is not None and stop.kind == "tokens"
    over_time = budget_reached(Settings(max_wall_time_s=10, max_total_tokens=1), usage, 11.0)
    assert over_time is not None and over_time.kind == "wall_time"  # the first one reached


def test_a_cost_budget_without_a_price_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match="^invalid settings: max_cost needs price_per_1k_"):
        Settings.load(max_cost=1.0)


def test_cli_budget_options_reach_the_batch_and_its_summary(tmp_path: Path,
                                                            corpus_db: Path) -> None:
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"question": "How do otters help kelp?", "name": "otters",
                                "corpus": str(corpus_db)}) + "\n", encoding="utf-8")
    runner = CliRunner()
    with SimulatorServer(simulate, SimulatorConfig(model="sim")) as server:
        result = runner.invoke(app, [
            "batch", str(jobs), "--out-dir", str(tmp_path / "out"), "--llm-url", server.url,
            "--model", "sim", "--max-total-tokens", "1",
        ], env={"RUMINATION_PRICE_PER_1K_PROMPT_TOKENS": "1"})
        refused = runner.invoke(app, ["research", "q", "--llm-url", server.url, "--model",
                                      "sim", "--max-cost", "1"])
    # a budget of 1 token leaves no room to read anything: no cited answer, counted apart
    assert result.exit_code == 1, result.stderr
    assert "stopped by tokens" in result.stdout and "no cited answer" in result.stdout
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    entry = summary[0]
    assert entry["stopped_by"] == "tokens"
    tokens = entry["prompt_tokens"] + entry["completion_tokens"]
    assert entry["cost"] == pytest.approx(entry["prompt_tokens"] / 1000)
    assert (f"1 of 1 job done (1 without a cited answer), {tokens:,} tokens, cost "
            f"{entry['cost']:.4g}") in result.stderr
    assert entry["uncited"] == "nothing cited"
    assert refused.exit_code == 2
    assert refused.stderr.startswith("error: invalid settings: max_cost needs")
