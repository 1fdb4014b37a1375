"""The vLLM simulator over real HTTP on 127.0.0.1: routes, JSON shapes, SSE, errors, metrics."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from conftest import StartSimulator

from rumination.llm.tokens import estimate_messages, estimate_tokens
from rumination.models import Message
from rumination.testing.server import SimulatorConfig, SimulatorServer, render_prompt

ANSWER = (
    '<think>Start with a broad search.</think>{"name": "search", "arguments": '
    '{"query": "GLM-Z1 rumination"}} and then more words to make several chunks'
)
MODEL = SimulatorConfig().model
MESSAGES = [
    {"role": "system", "content": "ignored by the template"},
    {"role": "user", "content": "What is rumination?"},
]

Start = Callable[..., SimulatorServer]


@pytest.fixture
def start(start_simulator: StartSimulator) -> Start:
    """Start a simulator (stopped after the test); its client is `client_for(server)`."""

    def _start(responder: Callable[[list[dict[str, Any]]], str] = lambda m: ANSWER,
               **config: Any) -> SimulatorServer:  # fmt: skip
        return start_simulator(responder, **config)

    return _start


@pytest.fixture
def server(start: Start) -> SimulatorServer:
    return start()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0) as http:
        yield http


def root(server: SimulatorServer) -> str:
    return server.url.removesuffix("/v1")


def chat(client: httpx.Client, server: SimulatorServer, **body: Any) -> httpx.Response:
    payload = {"model": MODEL, "messages": MESSAGES, **body}
    return client.post(f"{server.url}/chat/completions", json=payload)


def metrics(client: httpx.Client, server: SimulatorServer) -> dict[str, float]:
    text = client.get(f"{root(server)}/metrics").text
    values = {}
    for line in text.splitlines():
        match = re.match(r"^(vllm:\w+)\{[^}]*model_name=\"[^\"]+\"[^}]*\} (\S+)$", line)
        if match:
            values[match.group(1)] = float(match.group(2))
    return values


def test_models_route_reports_the_window_and_is_labeled_a_simulator(
    start: Start, client: httpx.Client
) -> None:
    server = start(max_model_len=32768)
    response = client.get(f"{server.url}/models")
    assert response.status_code == 200
    assert response.headers["x-rumination-simulator"] == "1"
    body = response.json()
    assert body["object"] == "list"
    (card,) = body["data"]
    assert card["id"] == MODEL and card["root"] == MODEL and card["parent"] is None
    assert card["object"] == "model" and isinstance(card["created"], int)
    assert card["owned_by"] == "rumination-simulator"
    assert card["max_model_len"] == 32768
    assert card["permission"][0]["object"] == "model_permission"


def test_health_is_200_with_an_empty_body(server: SimulatorServer, client: httpx.Client) -> None:
    response = client.get(f"{root(server)}/health")
    assert response.status_code == 200
    assert response.content == b""


def test_tokenize_count_matches_chat_usage(server: SimulatorServer, client: httpx.Client) -> None:
    response = client.post(
        f"{root(server)}/tokenize",
        json={"model": MODEL, "messages": MESSAGES, "add_generation_prompt": True},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == len(body["tokens"]) == estimate_tokens(render_prompt(MESSAGES))
    assert all(isinstance(t, int) for t in body["tokens"])
    assert body["max_model_len"] == 131072
    usage = chat(client, server, max_tokens=100).json()["usage"]
    assert usage["prompt_tokens"] == body["count"]

    plain = client.post(f"{root(server)}/tokenize", json={"model": MODEL, "prompt": "hello world"})
    assert plain.json()["count"] == estimate_tokens("hello world")
    assert client.post(f"{server.url}/tokenize", json={"prompt": "x"}).status_code == 404  # /v1


def test_render_prompt_follows_the_rumination_template() -> None:
    text = render_prompt(
        [
            {"role": "system", "content": "dropped"},
            {"role": "user", "content": "Q"},
            {"role": "assistant", "content": "<think>old</think> call"},
            {"role": "observation", "content": "result"},
            {"role": "tool", "content": "lost"},
        ]
    )
    assert text.startswith("[gMASK]<sop><|system|>\n")
    assert text.endswith("<|user|>\nQ<|assistant|>\ncall<|observation|>\nresult<|assistant|>")
    assert "dropped" not in text and "lost" not in text and "old" not in text


def test_the_client_estimate_never_falls_below_the_simulators_count(
    server: SimulatorServer, client: httpx.Client
) -> None:
    """The simulator tokenizes its rendered prompt with the client's estimator; the client's
    fallback estimate of the same messages, which reserves room for the real template's
    fixed prompt, is never below what the simulator then counts."""
    conversations = [MESSAGES, [*MESSAGES, {"role": "observation", "content": "热泵很好。" * 50}],
                     [{"role": "user", "content": "x"}]]
    for messages in conversations:
        count = client.post(f"{root(server)}/tokenize", json={"messages": messages}).json()["count"]
        assert count == estimate_tokens(render_prompt(messages))
        assert estimate_messages([Message(**m) for m in messages]) >= count


def test_non_stream_completion_shape(server: SimulatorServer, client: httpx.Client) -> None:
    response = chat(client, server, temperature=0.95, top_p=0.7, max_tokens=1000)
    assert response.status_code == 200
    assert response.headers["x-rumination-simulator"] == "1"
    body = response.json()
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion" and body["model"] == MODEL
    (choice,) = body["choices"]
    assert choice["index"] == 0 and choice["logprobs"] is None
    assert choice["message"] == {
        "role": "assistant",
        "content": ANSWER,
        "reasoning_content": None,
        "tool_calls": [],
    }
    assert choice["finish_reason"] == "stop" and choice["stop_reason"] is None
    usage = body["usage"]
    assert usage["completion_tokens"] == estimate_tokens(ANSWER)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens_details"] is None
    assert server.requests[-1]["max_tokens"] == 1000


def test_max_tokens_truncates_with_finish_reason_length(
    server: SimulatorServer, client: httpx.Client
) -> None:
    body = chat(client, server, max_completion_tokens=5).json()
    content = body["choices"][0]["message"]["content"]
    assert ANSWER.startswith(content) and 0 < len(content) < len(ANSWER)
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] <= 5


def stream_lines(client: httpx.Client, server: SimulatorServer, **body: Any) -> list[str]:
    payload = {"model": MODEL, "messages": MESSAGES, "stream": True, **body}
    with client.stream("POST", f"{server.url}/chat/completions", json=payload) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return [line for line in response.iter_lines() if line]


def test_streaming_chunks_concatenate_to_the_answer_then_usage_then_done(
    server: SimulatorServer, client: httpx.Client
) -> None:
    lines = stream_lines(client, server, stream_options={"include_usage": True})
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert len({(c["id"], c["created"], c["model"]) for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    first, *middle, final, usage_chunk = chunks
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert len(middle) > 3  # really streamed in pieces
    assert "".join(c["choices"][0]["delta"]["content"] for c in middle) == ANSWER
    assert all(c["usage"] is None for c in [first, *middle, final])
    assert final["choices"][0]["delta"] == {}
    assert final["choices"][0]["finish_reason"] == "stop"
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == estimate_tokens(ANSWER)
    assert usage_chunk["usage"]["total_tokens"] == (
        usage_chunk["usage"]["prompt_tokens"] + usage_chunk["usage"]["completion_tokens"]
    )


def test_streaming_without_include_usage_has_no_usage(
    server: SimulatorServer, client: httpx.Client
) -> None:
    lines = stream_lines(client, server)
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert lines[-1] == "data: [DONE]"
    assert all("usage" not in c and c["choices"] for c in chunks)


def test_async_client_reads_the_stream_line_by_line(server: SimulatorServer) -> None:
    async def run() -> list[str]:
        payload = {"model": MODEL, "messages": MESSAGES, "stream": True}
        async with httpx.AsyncClient() as http, http.stream(
            "POST", f"{server.url}/chat/completions", json=payload
        ) as response:
            return [line async for line in response.aiter_lines() if line]

    lines = asyncio.run(run())
    assert lines[-1] == "data: [DONE]"
    text = "".join(
        json.loads(line[6:])["choices"][0]["delta"].get("content", "") for line in lines[:-1]
    )
    assert text == ANSWER


def test_stop_strings_cut_at_the_first_occurrence(start: Start, client: httpx.Client) -> None:
    server = start(lambda m: "<think>x</think>answer<|observation|>forged<|user|>more")
    body = chat(client, server, stop=["<|user|>", "<|observation|>"]).json()
    choice = body["choices"][0]
    assert choice["message"]["content"] == "<think>x</think>answer"
    assert choice["finish_reason"] == "stop" and choice["stop_reason"] == "<|observation|>"

    lines = stream_lines(client, server, stop="<|user|>")
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == "<think>x</think>answer<|observation|>forged"


def test_context_overflow_is_vllms_400(start: Start, client: httpx.Client) -> None:
    server = start(max_model_len=1000)
    prompt = estimate_tokens(render_prompt(MESSAGES))
    response = chat(client, server, max_tokens=990)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"].startswith(
        f"This model's maximum context length is 1000 tokens. However, you requested "
        f"{prompt + 990} tokens ({prompt} in the messages, 990 in the completion). "
        "Please reduce the length of the messages or completion."
    )
    assert error["type"] == "BadRequestError" and error["code"] == 400
    # without max_tokens the rest of the window is granted
    assert chat(client, server).json()["usage"]["prompt_tokens"] == prompt


def test_unknown_model_is_vllms_404(server: SimulatorServer, client: httpx.Client) -> None:
    response = chat(client, server, model="gpt-4")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["message"] == "The model `gpt-4` does not exist."
    assert error["type"] == "NotFoundError" and error["code"] == 404
    tokenize = client.post(f"{root(server)}/tokenize", json={"model": "gpt-4", "prompt": "x"})
    assert tokenize.status_code == 404
    assert tokenize.json()["error"]["message"] == "The model `gpt-4` does not exist."


def test_fail_first_answers_503_then_succeeds(start: Start, client: httpx.Client) -> None:
    server = start(fail_first=2)
    assert [chat(client, server).status_code for _ in range(3)] == [503, 503, 200]
    assert len(server.requests) == 3


def test_status_override_429_carries_retry_after(start: Start, client: httpx.Client) -> None:
    server = start(status_override=429)
    response = chat(client, server)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "0"
    assert response.json()["error"]["code"] == 429


def test_metrics_count_served_tokens_and_prefix_cache_hits(
    server: SimulatorServer, client: httpx.Client
) -> None:
    before = metrics(client, server)
    assert before["vllm:prompt_tokens_total"] == 0
    assert before["vllm:num_requests_running"] == 0
    first = chat(client, server).json()["usage"]
    after_one = metrics(client, server)
    assert after_one["vllm:prompt_tokens_total"] == first["prompt_tokens"]
    assert after_one["vllm:generation_tokens_total"] == first["completion_tokens"]
    assert after_one["vllm:prefix_cache_queries_total"] == first["prompt_tokens"]
    assert after_one["vllm:prefix_cache_hits_total"] == 0

    longer = [*MESSAGES, {"role": "assistant", "content": ANSWER},
              {"role": "observation", "content": "【0†a page†https://example.org】"}]  # fmt: skip
    payload = {"model": MODEL, "messages": longer}
    second = client.post(f"{server.url}/chat/completions", json=payload).json()["usage"]
    after_two = metrics(client, server)
    total = first["prompt_tokens"] + second["prompt_tokens"]
    assert after_two["vllm:prompt_tokens_total"] == total
    hits = after_two["vllm:prefix_cache_hits_total"]
    assert first["prompt_tokens"] - 2 <= hits < second["prompt_tokens"]
    assert after_two["vllm:kv_cache_usage_perc"] == 0
    assert after_two["vllm:num_requests_waiting"] == 0


def test_bad_json_and_unknown_routes(server: SimulatorServer, client: httpx.Client) -> None:
    response = client.post(
        f"{server.url}/chat/completions",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "BadRequestError"
    assert client.get(f"{server.url}/nothing").status_code == 404
    assert client.post(f"{server.url}/embeddings", json={}).status_code == 404
    assert chat(client, server).status_code == 200  # the connection is still in sync


def test_responder_errors_become_500(start: Start, client: httpx.Client) -> None:
    def broken(messages: list[dict[str, Any]]) -> str:
        raise RuntimeError("boom")

    server = start(broken)
    response = chat(client, server)
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "InternalServerError"
    assert metrics(client, server)["vllm:num_requests_running"] == 0


def test_context_manager_and_latency(client: httpx.Client) -> None:
    config = SimulatorConfig(latency_per_token_s=0.001, base_latency_s=0.01)
    with SimulatorServer(lambda m: ANSWER, config) as server:
        response = chat(client, server)
        assert response.status_code == 200
        assert response.elapsed.total_seconds() >= 0.01 + 0.001 * estimate_tokens(ANSWER) * 0.9
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/models", timeout=2.0)
