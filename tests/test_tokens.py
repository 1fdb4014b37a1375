"""The token estimator against real tokenizers, and TokenCounter against real and missing
/tokenize endpoints.

GLM-4's own tokenizer cannot be installed offline, so the estimator is checked against the
exact byte-level BPE tokenizers that `quicktok-v1` ships (test extra): cl100k_base and o200k_base
(same pre-tokenizer as GLM-4, digit groups included) and Qwen3 (a 151k vocabulary built for
Chinese and English, like GLM-4's). The reference count for a sample is the largest of them,
except that cl100k is not a reference for Chinese (see rumination/llm/tokens.py). Nothing here is
a claimed GLM-4 count apart from the one published example below.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from rumination.llm.client import LLMClient
from rumination.llm.servers import KNOWN
from rumination.llm.tokens import (
    MESSAGE_OVERHEAD_TOKENS,
    TEMPLATE_OVERHEAD_TOKENS,
    TokenCounter,
    estimate_messages,
    estimate_tokens,
    rendered_content,
)
from rumination.models import Message
from rumination.testing import FunctionModel, SimulatorServer

SAMPLES = json.loads(
    (Path(__file__).parent / "fixtures" / "token_samples.json").read_text(encoding="utf-8")
)
# The stated margin: on no sample may the estimate fall below the reference count by more
# than this share. It is zero: the estimator must never undercount these samples.
UNDERCOUNT_MARGIN = 0.0
# And it must stay useful: at most this many times the reference.
OVERCOUNT_LIMIT = 1.6


def reference_count(text: str, kind: str) -> int:
    quicktok = pytest.importorskip("quicktok")
    names = ("qwen3", "o200k_base") if kind == "chinese" else ("cl100k_base", "o200k_base", "qwen3")
    counts = {n: len(quicktok.get_encoding(n).encode_ordinary(text)) for n in names}
    if kind != "chinese" and any(ch.isdigit() for ch in text):
        # Qwen3 splits numbers digit by digit; GLM-4 groups up to three digits as cl100k does.
        counts.pop("qwen3")
    return max(counts.values())


def test_samples_cover_english_chinese_and_code() -> None:
    kinds = [s["kind"] for s in SAMPLES]
    assert {kinds.count(k) >= 3 for k in ("english", "chinese", "code")} == {True}


@pytest.mark.parametrize("sample", SAMPLES, ids=[s["name"] for s in SAMPLES])
def test_estimate_never_undercounts_real_tokenizers(sample: dict[str, str]) -> None:
    reference = reference_count(sample["text"], sample["kind"])
    estimate = estimate_tokens(sample["text"])
    assert estimate >= reference * (1 - UNDERCOUNT_MARGIN), (estimate, reference)
    assert estimate <= reference * OVERCOUNT_LIMIT, (estimate, reference)


def test_estimate_covers_the_published_glm4_example() -> None:
    # The ChatGLM4 tokenizer's docstring encodes this sentence as 4 tokens (after [gMASK]<sop>).
    assert estimate_tokens("晚上睡不着应该怎么办") >= 4


@pytest.mark.parametrize("sample", SAMPLES, ids=[s["name"] for s in SAMPLES])
def test_estimate_grows_with_the_text(sample: dict[str, str]) -> None:
    text = sample["text"]
    counts = [estimate_tokens(text[:end]) for end in range(0, len(text) + 1, 7)]
    assert counts == sorted(counts)  # so a binary search can cut text to a token budget


def test_estimate_is_conservative_per_script() -> None:
    # A safety factor above one token per CJK character and per 4 English characters.
    chinese = "热泵在寒冷气候中的效率取决于压缩机" * 20
    assert estimate_tokens(chinese) >= len(chinese)
    english = "the heat pump moves heat from the cold outdoor air into the house " * 20
    assert estimate_tokens(english) >= len(english) / 4.5
    code = "def f(x):\n    return {'a': [x, x ** 2]}\n" * 20
    assert estimate_tokens(code) >= len(code) / 3.5
    assert estimate_tokens("") == 0


def test_estimate_messages_adds_template_and_per_message_overhead() -> None:
    messages = [
        Message(role="user", content="What limits heat pumps?"),
        Message(role="assistant", content="<think>" + "long reasoning " * 500 + "</think>"
                '{"name": "search", "arguments": {"query": "heat pump limits"}}'),  # fmt: skip
        Message(role="observation", content="【1†Heat pumps†https://example.org/hp\nText】"),
    ]
    expected = TEMPLATE_OVERHEAD_TOKENS + 3 * MESSAGE_OVERHEAD_TOKENS + sum(
        estimate_tokens(t)
        for t in (
            messages[0].content,
            '{"name": "search", "arguments": {"query": "heat pump limits"}}',  # reasoning dropped
            messages[2].content,
        )
    )
    assert estimate_messages(messages) == expected
    assert estimate_messages([]) == TEMPLATE_OVERHEAD_TOKENS


# -- TokenCounter ---------------------------------------------------------------------------

MESSAGES = [
    Message(role="user", content="How do sea otters help kelp forests?"),
    Message(role="assistant", content='<think>search</think>{"name": "finish", "arguments": {}}'),
]


class CountingClient(LLMClient):
    calls = 0

    async def tokenize(self, messages: Any) -> int:
        self.calls += 1
        return await super().tokenize(messages)


def test_counter_is_exact_through_the_simulator_and_caches() -> None:
    async def main() -> tuple[list[int], list[bool], int, int]:
        with SimulatorServer(lambda m: "") as server:
            client = CountingClient(server.url, server.config.model, retries=0)
            counter = TokenCounter(client)
            counts, exact = [], []
            for messages in (MESSAGES, MESSAGES, MESSAGES[:1], list(MESSAGES)):
                counts.append(await counter.count(messages))
                exact.append(counter.exact)
            direct = server.tokenize({"messages": [m.model_dump() for m in MESSAGES]})["count"]
            await client.aclose()
            return counts, exact, client.calls, direct

    counts, exact, calls, direct = asyncio.run(main())
    assert exact == [True] * 4
    assert counts[0] == counts[1] == counts[3] == direct
    assert counts[2] < counts[0]
    assert calls == 2  # one per distinct message list; equal lists hit the cache


def mock_client(status: int, calls: list[str]) -> LLMClient:
    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(status, json={"detail": "Not Found"})

    return LLMClient("http://vllm.test/v1", "m", retries=0, transport=httpx.MockTransport(handler),
                     profile=KNOWN["vllm"])


def test_counter_falls_back_to_the_estimate_when_tokenize_is_missing() -> None:
    calls: list[str] = []

    async def main() -> tuple[int, int]:
        counter = TokenCounter(mock_client(404, calls))
        first = await counter.count(MESSAGES)
        assert counter.exact is False and counter.available is False
        second = await counter.count(MESSAGES + [Message(role="observation", content="x")])
        assert counter.exact is False
        return first, second

    first, second = asyncio.run(main())
    assert first == estimate_messages(MESSAGES)
    assert second > first
    assert calls == ["/tokenize"]  # a 404 is final: the endpoint is not asked again


def test_counter_retries_tokenize_after_a_transient_failure() -> None:
    calls: list[str] = []

    async def main() -> None:
        counter = TokenCounter(mock_client(500, calls))
        assert await counter.count(MESSAGES) == estimate_messages(MESSAGES)
        assert counter.exact is False and counter.available is None
        assert "500" in (counter.last_error or "")
        await counter.count(MESSAGES)

    asyncio.run(main())
    assert calls == ["/tokenize", "/tokenize"]


def test_counter_estimates_for_models_without_tokenize() -> None:
    counter = TokenCounter(FunctionModel(lambda messages: ""))
    assert asyncio.run(counter.count(MESSAGES)) == estimate_messages(MESSAGES)
    assert counter.exact is False


def test_a_served_prompt_is_extended_by_estimate_without_asking_again() -> None:
    calls: list[str] = []
    page = Message(role="observation", content="Glacier moraine ablation. " * 40)
    reply = Message(role="assistant", content='<think>x</think>{"name": "finish"}')

    async def main() -> None:
        counter = TokenCounter(mock_client(500, calls))
        counter.served(MESSAGES, 1000)  # the server's usage.prompt_tokens for that prompt
        assert await counter.count(MESSAGES) == 1000 and counter.exact
        grown = [*MESSAGES, reply, page]
        added = sum(
            MESSAGE_OVERHEAD_TOKENS + estimate_tokens(rendered_content(m)) for m in (reply, page)
        )
        assert await counter.count(grown) == 1000 + added and not counter.exact
        assert calls == []  # no /tokenize while the list only appends to the served one
        # equal messages that are other objects still match; a rewritten one does not
        copy = [Message(role=m.role, content=m.content) for m in grown]
        assert await counter.count(copy) == 1000 + added
        compacted = [*MESSAGES[:-1], Message(role=MESSAGES[-1].role, content="elided"), reply]
        await counter.count(compacted)
        assert calls == ["/tokenize"]
        assert await counter.count(MESSAGES[:1]) == estimate_messages(MESSAGES[:1])  # shorter
        counter.served(grown, 0)  # a server without usage teaches nothing
        assert await counter.count(grown) == 1000 + added

    asyncio.run(main())


def test_a_run_asks_tokenize_once_then_counts_from_usage() -> None:
    from rumination import Researcher, Settings
    from rumination.testing import simulate

    class Recording(SimulatorServer):
        tokenized = 0

        def tokenize(self, body: dict[str, Any]) -> dict[str, Any]:
            Recording.tokenized += 1
            return super().tokenize(body)

    with Recording(simulate) as server:
        settings = Settings(llm_url=server.url, model=server.config.model, keep_runs=False)
        report = asyncio.run(Researcher(settings).run("How do glaciers move?"))
    chats = len(server.requests)
    assert report.turns >= 5 and chats == report.turns + 1
    assert Recording.tokenized == 1  # the first request; then usage.prompt_tokens + estimate


def test_the_template_overhead_covers_the_shipped_templates_fixed_prompt() -> None:
    from rumination.llm.chat_template import render_chat_prompt

    fixed = render_chat_prompt([])  # [gMASK]<sop><|system|> + the research prompt + <|assistant|>
    assert estimate_tokens(fixed) + 5 <= TEMPLATE_OVERHEAD_TOKENS  # and its special tokens
