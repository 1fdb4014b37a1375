"""Tests for rumination.llm.client.LLMClient against a mocked vLLM server (httpx.MockTransport).

No network: every request goes to an in-process handler that records it. Exponential
backoff is patched to zero so retry tests do not sleep.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any, TypeVar

import httpx
import pytest

from rumination.errors import ContextLengthExceeded, LLMError, LLMUnavailable
from rumination.llm import client as llm
from rumination.llm.client import STOP_STRINGS, LLMClient
from rumination.llm.servers import KNOWN
from rumination.models import Message, Usage

BASE = "http://vllm.test:8000/v1"
ROOT = "http://vllm.test:8000"
MODEL = "THUDM/GLM-Z1-Rumination-32B-0414"

T = TypeVar("T")
Handler = Callable[[httpx.Request], httpx.Response]

OBSERVATION = (
    "【1†Rumination paper†https://example.org/paper\nA snippet about rumination.】\n\n"
    "【2†Other†https://example.org/other\nAnother snippet.】"
)
MESSAGES = [
    Message(role="user", content="What is GLM-Z1-Rumination?"),
    Message(role="assistant", content='{"name": "search", "arguments": {"query": "GLM-Z1"}}'),
    Message(role="observation", content=OBSERVATION),
]


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class Server:
    """Answers requests from a list of scripted responses (or exceptions) and records them."""

    def __init__(self, *answers: httpx.Response | Exception | Handler) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        return answer(request)

    @property
    def calls(self) -> int:
        return len(self.requests)

    def body(self, index: int = -1) -> dict[str, Any]:
        data = json.loads(self.requests[index].content)
        assert isinstance(data, dict)
        return data


def client(server: Server, **kwargs: Any) -> LLMClient:
    kwargs.setdefault("retries", 2)
    return LLMClient(BASE, MODEL, transport=httpx.MockTransport(server),
                     **{"profile": KNOWN["vllm"], **kwargs})


async def chat(
    c: LLMClient, messages: Sequence[Message] = MESSAGES, **kwargs: Any
) -> llm.Completion:
    try:
        return await c.chat(messages, **{"max_tokens": 16384, **kwargs})
    finally:
        await c.aclose()


@pytest.fixture(autouse=True)
def backoff_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Replace the jittered backoff by a zero wait; record the attempt numbers it was asked for."""
    calls: list[int] = []

    def fake_backoff(attempt: int) -> float:
        calls.append(attempt)
        return 0.0

    monkeypatch.setattr(llm, "backoff_seconds", fake_backoff)
    return calls


# --- vLLM response bodies -------------------------------------------------------------------


def completion_body(message: dict[str, Any], finish_reason: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-7f3a",
        "object": "chat.completion",
        "created": 1718000000,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "tool_calls": [], **message},
                "logprobs": None,
                "finish_reason": finish_reason,
                "stop_reason": None,
            }
        ],
        "usage": {"prompt_tokens": 321, "total_tokens": 375, "completion_tokens": 54},
        "prompt_logprobs": None,
    }


def ok_completion(content: str = "done") -> httpx.Response:
    return httpx.Response(200, json=completion_body({"content": content}))


def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
    body = {
        "id": "chatcmpl-9b1c",
        "object": "chat.completion.chunk",
        "created": 1718000001,
        "model": MODEL,
        "choices": choices,
        **extra,
    }
    return "data: " + json.dumps(body, ensure_ascii=False) + "\n\n"


def delta(d: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    choice: dict[str, Any] = {
        "index": 0,
        "delta": d,
        "logprobs": None,
        "finish_reason": finish_reason,
    }
    if finish_reason is not None:
        choice["stop_reason"] = None
    return choice


def sse_body(
    pieces: Sequence[str],
    *,
    reasoning: Sequence[str] = (),
    reasoning_field: str = "reasoning_content",
    finish_reason: str = "stop",
) -> str:
    """A stream exactly as vLLM sends it with stream_options.include_usage."""
    parts = [chunk([delta({"role": "assistant", "content": ""})])]
    parts += [chunk([delta({reasoning_field: r})]) for r in reasoning]
    parts += [chunk([delta({"content": p})]) for p in pieces]
    parts.append(chunk([delta({"content": ""}, finish_reason)]))
    parts.append(
        chunk([], usage={"prompt_tokens": 1200, "total_tokens": 1234, "completion_tokens": 34})
    )
    parts.append("data: [DONE]\n\n")
    return "".join(parts)


def sse_response(body: str, split: int = 37) -> httpx.Response:
    """Send the SSE body in small byte chunks that cut lines (and UTF-8 characters) apart."""
    raw = body.encode("utf-8")

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), split):
            yield raw[start : start + split]

    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=stream())


def error_response(status: int, message: str, *, old_style: bool = False) -> httpx.Response:
    if old_style:  # vLLM before the OpenAI-style {"error": {...}} envelope
        body: dict[str, Any] = {
            "object": "error",
            "message": message,
            "type": "BadRequestError",
            "param": None,
            "code": status,
        }
    else:
        body = {
            "error": {"message": message, "type": "BadRequestError", "param": None, "code": status}
        }
    return httpx.Response(status, json=body)


# --- request body ---------------------------------------------------------------------------


def test_streaming_request_body_is_exactly_the_rumination_protocol() -> None:
    server = Server(sse_response(sse_body(["ok"])))
    run(chat(client(server), max_tokens=16384))

    assert server.calls == 1
    request = server.requests[0]
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}/chat/completions"
    assert server.body() == {
        "model": MODEL,
        "messages": [
            {"role": "user", "content": "What is GLM-Z1-Rumination?"},
            {
                "role": "assistant",
                "content": '{"name": "search", "arguments": {"query": "GLM-Z1"}}',
            },
            {"role": "observation", "content": OBSERVATION},
        ],
        "temperature": 0.95,
        "top_p": 0.7,
        "max_tokens": 16384,
        "stop": ["<|observation|>", "<|user|>", "<|endoftext|>"],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert STOP_STRINGS == ["<|observation|>", "<|user|>", "<|endoftext|>"]
    assert "authorization" not in request.headers


def test_non_streaming_body_has_no_stream_fields_and_uses_given_sampling() -> None:
    server = Server(ok_completion())
    run(chat(client(server, stream=False, temperature=0.6, top_p=0.95), max_tokens=512))

    body = server.body()
    assert "stream" not in body
    assert "stream_options" not in body
    assert body["temperature"] == 0.6
    assert body["top_p"] == 0.95
    assert body["max_tokens"] == 512
    assert body["stop"] == ["<|observation|>", "<|user|>", "<|endoftext|>"]
    assert body["messages"][2] == {"role": "observation", "content": OBSERVATION}


def test_authorization_header_sent_when_api_key_given() -> None:
    server = Server(ok_completion())
    run(chat(client(server, stream=False, api_key="sk-local-123")))
    assert server.requests[0].headers["authorization"] == "Bearer sk-local-123"


def test_trailing_slash_in_base_url_is_ignored() -> None:
    server = Server(ok_completion())
    c = LLMClient(BASE + "/", MODEL, stream=False, transport=httpx.MockTransport(server),
                  profile=KNOWN["vllm"])
    run(chat(c))
    assert str(server.requests[0].url) == f"{BASE}/chat/completions"
    assert c.server_root == ROOT


# --- non-streaming responses ----------------------------------------------------------------


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_non_streaming_response_parsed(field: str) -> None:
    message = {"content": "The answer 【1†source】.", field: "Let me think."}
    server = Server(httpx.Response(200, json=completion_body(message, finish_reason="length")))
    result = run(chat(client(server, stream=False)))

    assert result.content == "The answer 【1†source】."
    assert result.reasoning == "Let me think."
    assert result.usage == Usage(prompt_tokens=321, completion_tokens=54)
    assert result.finish_reason == "length"


def test_non_streaming_without_reasoning_or_usage() -> None:
    body = completion_body({"content": "<think>hm</think>\n{}", "reasoning_content": None})
    del body["usage"]
    server = Server(httpx.Response(200, json=body))
    result = run(chat(client(server, stream=False)))

    assert result.content == "<think>hm</think>\n{}"
    assert result.reasoning is None
    # no usage sent and no /tokenize answer: counted by the estimator, and marked so
    assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens > 0
    assert result.usage.estimated
    assert result.finish_reason == "stop"


def test_non_streaming_malformed_answer_is_llm_error() -> None:
    server = Server(httpx.Response(200, json={"choices": []}))
    with pytest.raises(LLMError, match="unexpected completion"):
        run(chat(client(server, stream=False)))
    assert server.calls == 1


# --- streaming ------------------------------------------------------------------------------

PIECES = ["<think>", "我想", "一想 ", "</think>\n", '{"name": "finish", "arguments": {}}']


def test_streaming_concatenates_content_and_reads_usage_with_sync_callback() -> None:
    seen: list[str] = []
    server = Server(sse_response(sse_body(PIECES)))
    result = run(chat(client(server), on_delta=seen.append))

    assert result.content == '<think>我想一想 </think>\n{"name": "finish", "arguments": {}}'
    assert seen == PIECES  # one call per content delta, none for the empty role/finish deltas
    assert result.reasoning is None
    assert result.usage == Usage(prompt_tokens=1200, completion_tokens=34)
    assert result.finish_reason == "stop"


def test_streaming_awaits_async_callback() -> None:
    seen: list[str] = []

    async def on_delta(text: str) -> None:
        await asyncio.sleep(0)
        seen.append(text)

    server = Server(sse_response(sse_body(["Hello", ", ", "world"], finish_reason="length")))
    result = run(chat(client(server), on_delta=on_delta))

    assert seen == ["Hello", ", ", "world"]
    assert result.content == "Hello, world"
    assert result.finish_reason == "length"


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_streaming_collects_reasoning_separately(field: str) -> None:
    seen: list[str] = []
    body = sse_body(["Answer."], reasoning=["First ", "second."], reasoning_field=field)
    server = Server(sse_response(body))
    result = run(chat(client(server), on_delta=seen.append))

    assert result.reasoning == "First second."
    assert result.content == "Answer."
    assert seen == ["Answer."]
    assert result.usage == Usage(prompt_tokens=1200, completion_tokens=34)


def test_streaming_stops_at_done() -> None:
    body = sse_body(["kept"]) + chunk([delta({"content": "after DONE"})])
    server = Server(sse_response(body))
    result = run(chat(client(server)))
    assert result.content == "kept"


def test_streaming_keeps_unicode_line_separators_inside_the_json() -> None:
    """JSON leaves U+2028, U+2029 and U+0085 unescaped; only CR and LF end event lines."""
    pieces = ["one\u2028two", "\u2029three\u0085", "four\x1cfive"]
    server = Server(sse_response(sse_body(pieces), split=5))
    assert run(chat(client(server))).content == "".join(pieces)


def test_streaming_skips_comments_and_events_without_data() -> None:
    body = ": keep-alive\n\nevent: ping\n\n" + sse_body(["ok"])
    assert run(chat(client(Server(sse_response(body))))).content == "ok"


def test_a_streamed_request_answered_without_an_event_stream_is_llm_error() -> None:
    server = Server(ok_completion("not streamed"))
    with pytest.raises(LLMError, match=r"answered a streamed chat request with application/json,"
                                       r" not an event stream"):
        run(chat(client(server)))
    assert server.calls == 1


# --- retries --------------------------------------------------------------------------------


def test_503_then_200_succeeds_non_streaming(backoff_calls: list[int]) -> None:
    server = Server(httpx.Response(503, text="Service Unavailable"), ok_completion("second try"))
    started = time.monotonic()
    result = run(chat(client(server, stream=False, retries=2)))

    assert result.content == "second try"
    assert server.calls == 2
    assert len(backoff_calls) == 1  # no Retry-After: exponential backoff was used
    assert time.monotonic() - started < 1.0


def test_503_then_200_succeeds_streaming() -> None:
    seen: list[str] = []
    server = Server(
        httpx.Response(503, json={"error": {"message": "overloaded"}}),
        sse_response(sse_body(["fine"])),
    )
    result = run(chat(client(server, retries=1), on_delta=seen.append))

    assert result.content == "fine"
    assert seen == ["fine"]
    assert server.calls == 2


def test_429_with_retry_after_zero_is_retried(backoff_calls: list[int]) -> None:
    server = Server(
        httpx.Response(429, headers={"Retry-After": "0"}, text="Too Many Requests"),
        httpx.Response(429, headers={"Retry-After": "0"}, text="Too Many Requests"),
        ok_completion("after 429"),
    )
    result = run(chat(client(server, stream=False, retries=3)))

    assert result.content == "after 429"
    assert server.calls == 3
    assert backoff_calls == []  # Retry-After decided the wait


def test_persistent_5xx_becomes_llm_unavailable() -> None:
    server = Server(httpx.Response(502, text="Bad Gateway"))
    with pytest.raises(LLMUnavailable) as info:
        run(chat(client(server, stream=False, retries=2)))

    assert server.calls == 3
    assert info.value.url == BASE
    assert BASE in str(info.value)
    assert "HTTP 502" in str(info.value)


def test_connect_error_retried_then_llm_unavailable_names_base_url() -> None:
    server = Server(httpx.ConnectError("[Errno 111] Connection refused"))
    with pytest.raises(LLMUnavailable) as info:
        run(chat(client(server, retries=2)))

    assert server.calls == 3
    assert BASE in str(info.value)
    assert "ConnectError" in str(info.value)
    assert "Connection refused" in str(info.value)


def test_connect_error_then_success() -> None:
    server = Server(httpx.ConnectError("refused"), sse_response(sse_body(["up again"])))
    result = run(chat(client(server, retries=1)))
    assert result.content == "up again"
    assert server.calls == 2


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            400,
            {"error": {"message": "temperature must be non-negative", "code": 400}},
            "temperature must be non-negative",
        ),
        (401, {"error": "Unauthorized"}, "Unauthorized"),
        (
            404,
            {
                "object": "error",
                "message": "The model `glm-z1` does not exist.",
                "type": "NotFoundError",
                "param": None,
                "code": 404,
            },
            "The model `glm-z1` does not exist.",
        ),
    ],
)
def test_client_errors_are_not_retried(
    stream: bool, status: int, body: dict[str, Any], expected: str
) -> None:
    server = Server(httpx.Response(status, json=body), ok_completion("must not be reached"))
    with pytest.raises(LLMError) as info:
        run(chat(client(server, stream=stream, retries=3)))

    posts = [r for r in server.requests if r.method == "POST"]  # a 404 is explained by GET /models
    assert len(posts) == 1
    assert type(info.value) is LLMError
    assert str(info.value) == f"LLM server answered HTTP {status}: {expected}"


CONTEXT_MESSAGES = [
    # prompt alone over the window
    "This model's maximum context length is 32768 tokens. However, your request has 40000 "
    "input tokens. Please reduce the length of the input messages.",
    # prompt + max_tokens over the window (vLLM 0.6 - 0.10)
    "'max_tokens' or 'max_completion_tokens' is too large: 16384. This model's maximum context "
    "length is 32768 tokens and your request has 20000 input tokens (16384 > 32768 - 20000).",
    # newer vLLM wording
    "You passed 20001 input tokens and requested 16384 output tokens. However, the model's "
    "context length is only 32768 tokens, resulting in a maximum input length of 16384 tokens. "
    "Please reduce the length of the input prompt. (parameter=input_tokens, value=20001)",
]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("old_style", [False, True])
@pytest.mark.parametrize("message", CONTEXT_MESSAGES)
def test_context_length_400_raises_context_length_exceeded(
    stream: bool, old_style: bool, message: str
) -> None:
    server = Server(error_response(400, message, old_style=old_style), ok_completion())
    with pytest.raises(ContextLengthExceeded) as info:
        run(chat(client(server, stream=stream, retries=3)))

    assert server.calls == 1
    assert str(info.value) == message


def test_other_status_with_context_wording_is_plain_llm_error() -> None:
    message = "This model's maximum context length is 32768 tokens."
    server = Server(error_response(422, message))
    with pytest.raises(LLMError) as info:
        run(chat(client(server, stream=False)))
    assert not isinstance(info.value, ContextLengthExceeded)
    assert server.calls == 1


# --- models, tokenize, health ---------------------------------------------------------------

MODELS_BODY = {
    "object": "list",
    "data": [
        {
            "id": "other-model",
            "object": "model",
            "created": 1718000000,
            "owned_by": "vllm",
            "root": "other",
            "parent": None,
            "max_model_len": 4096,
            "permission": [],
        },
        {
            "id": MODEL,
            "object": "model",
            "created": 1718000000,
            "owned_by": "vllm",
            "root": MODEL,
            "parent": None,
            "max_model_len": 131072,
            "permission": [],
        },
    ],
}


def test_list_models_and_max_model_len() -> None:
    server = Server(httpx.Response(200, json=MODELS_BODY))
    c = client(server, profile=None)  # the window comes from probing the server

    async def go() -> tuple[list[dict[str, Any]], int | None]:
        try:
            return await c.list_models(), await c.max_model_len()
        finally:
            await c.aclose()

    models, window = run(go())
    assert [m["id"] for m in models] == ["other-model", MODEL]
    assert window == 131072
    assert all(r.method == "GET" for r in server.requests)
    assert [str(r.url) for r in server.requests[:2]] == [f"{BASE}/models"] * 2


def test_max_model_len_none_when_model_not_served() -> None:
    body = {"object": "list", "data": [MODELS_BODY["data"][0]]}
    server = Server(httpx.Response(200, json=body))
    c = client(server)

    async def go() -> int | None:
        try:
            return await c.max_model_len()
        finally:
            await c.aclose()

    assert run(go()) is None


def test_tokenize_posts_to_server_root_with_generation_prompt() -> None:
    answer = {"count": 1873, "max_model_len": 131072, "tokens": [151331, 151333]}
    server = Server(httpx.Response(200, json=answer))
    c = client(server)

    async def go() -> int:
        try:
            return await c.tokenize(MESSAGES)
        finally:
            await c.aclose()

    assert run(go()) == 1873
    request = server.requests[0]
    assert request.method == "POST"
    assert str(request.url) == f"{ROOT}/tokenize"
    assert server.body() == {
        "model": MODEL,
        "messages": [m.model_dump() for m in MESSAGES],
        "add_generation_prompt": True,
    }
    assert server.body()["messages"][2]["role"] == "observation"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (httpx.Response(200, text=""), True),
        (httpx.Response(503, text=""), False),
        (httpx.ConnectError("[Errno 111] Connection refused"), False),
    ],
)
def test_health(answer: httpx.Response | Exception, expected: bool) -> None:
    server = Server(answer)
    c = client(server)

    async def go() -> bool:
        try:
            return await c.health()
        finally:
            await c.aclose()

    assert run(go()) is expected
    assert server.calls == 1  # health is a probe: never retried
    assert str(server.requests[0].url) == f"{ROOT}/health"
