"""Token accounting: cached prompt tokens from vLLM's usage.prompt_tokens_details."""

from __future__ import annotations

import asyncio

import pytest

from rumination.llm.client import LLMClient, _usage
from rumination.models import Message, Report, Usage
from rumination.testing import SimulatorConfig, SimulatorServer

FINISH = '<think>done</think>{"name": "finish", "arguments": {}}'


def test_usage_reads_cached_tokens_when_the_server_reports_them() -> None:
    raw = {"prompt_tokens": 1200, "completion_tokens": 34, "total_tokens": 1234,
           "prompt_tokens_details": {"cached_tokens": 1024}}  # fmt: skip
    assert _usage(raw) == Usage(prompt_tokens=1200, completion_tokens=34, cached_prompt_tokens=1024)
    assert _usage({**raw, "prompt_tokens_details": None}).cached_prompt_tokens == 0
    assert _usage({"prompt_tokens": 5}).cached_prompt_tokens == 0


def test_usage_adds_up_including_cached_tokens() -> None:
    total = Usage(prompt_tokens=10, completion_tokens=2, cached_prompt_tokens=8) + Usage(
        prompt_tokens=20, completion_tokens=3
    )
    assert total == Usage(prompt_tokens=30, completion_tokens=5, cached_prompt_tokens=8)
    assert total.model_dump() == {"prompt_tokens": 30, "completion_tokens": 5,
                                  "cached_prompt_tokens": 8, "estimated": False}  # fmt: skip
    assert (total + Usage(prompt_tokens=1, estimated=True)).estimated  # one estimate marks all
    assert Usage(prompt_tokens=1).model_dump() == {
        "prompt_tokens": 1, "completion_tokens": 0, "cached_prompt_tokens": 0, "estimated": False
    }
    report = Report(question="q", answer_markdown="a", run_id="r", model="m", usage=total)
    assert report.model_dump(mode="json")["usage"]["cached_prompt_tokens"] == 8


@pytest.mark.parametrize("stream", [False, True])
def test_cached_tokens_over_http_from_the_simulator(stream: bool) -> None:
    config = SimulatorConfig(prompt_tokens_details=True)
    messages = [Message(role="user", content="How do sea otters help kelp forests? " * 40)]

    async def main() -> list[Usage]:
        with SimulatorServer(lambda m: FINISH, config) as server:
            client = LLMClient(server.url, config.model, retries=0, stream=stream)
            first = await client.chat(messages, max_tokens=64)
            again = messages + [Message(role="assistant", content=FINISH),
                                Message(role="observation", content="more")]  # fmt: skip
            second = await client.chat(again, max_tokens=64)
            await client.aclose()
            return [first.usage, second.usage]

    first, second = asyncio.run(main())
    assert first.cached_prompt_tokens == 0  # a cold cache
    assert 0 < second.cached_prompt_tokens < second.prompt_tokens  # the shared prefix
    assert second.cached_prompt_tokens >= first.prompt_tokens - 2
