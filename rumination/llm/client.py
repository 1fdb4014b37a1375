"""Async client for vLLM's OpenAI-compatible API.

It sends the rumination protocol's `observation` role as is (vLLM passes custom roles to
the chat template), streams with usage, retries what is worth retrying (connect errors,
429, 5xx, honouring Retry-After) and never retries other 4xx answers.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from httpx_sse import EventSource, ServerSentEvent, SSEError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
)

from rumination.errors import ContextLengthExceeded, LLMError, LLMUnavailable
from rumination.llm.pools import SHARD_SIZE, ShardedClient
from rumination.llm.provenance import SIMULATOR_HEADER
from rumination.llm.request_body import JSON_HEADERS, MessageEncoder
from rumination.llm.retrying import backoff_seconds, retry_after_seconds
from rumination.llm.server_answers import (
    is_html,
    model_not_served,
    not_found,
    not_json_answer,
    web_page_answer,
)
from rumination.llm.tls import verifying_context
from rumination.models import Message, Usage

# vLLM reads the model's own stop tokens from its generation config; other servers may not
STOP_STRINGS = ["<|observation|>", "<|user|>", "<|endoftext|>"]
CONTEXT_ERROR_PREFIX = "This model's maximum context length is"
# vLLM words a too-long request in several ways, depending on version and on which limit hit:
#   "This model's maximum context length is N tokens. However, your request has M input tokens…"
#   "'max_tokens' or 'max_completion_tokens' is too large: K. This model's maximum context length
#    is N tokens and your request has M input tokens…" (prompt + max_tokens over the window)
#   "You passed M input tokens and requested K output tokens. However, the model's context length
#    is only N tokens…" (newer releases)
CONTEXT_ERROR_MARKERS = (CONTEXT_ERROR_PREFIX, "the model's context length is only")
# an idle connection older than this is not reused: servers close theirs (uvicorn, which vLLM
# runs on, after 5 s), and a request sent as that close crosses it would fail
KEEPALIVE_EXPIRY_S = 4.0

OnDelta = Callable[[str], Awaitable[None] | None]


@dataclass
class Completion:
    content: str
    reasoning: str | None
    usage: Usage
    finish_reason: str | None
    model_seconds: float = 0.0
    # streamed: from sending the request to the first generated text (thinking or answer)
    first_token_seconds: float | None = None


class ChatModel(Protocol):
    """What the agent needs from a model: the real client and the test fakes agree on this."""

    model: str

    async def chat(
        self, messages: Sequence[Message], *, max_tokens: int, on_delta: OnDelta | None = None
    ) -> Completion: ...

    async def max_model_len(self) -> int | None:
        """The served context window, or None if the server does not say."""
        ...

    async def aclose(self) -> None: ...


class _RetryableStatus(Exception):
    def __init__(self, status: int, retry_after: float | None, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:200]}")
        self.status = status
        self.retry_after = retry_after


class _NotFound(LLMError):
    """HTTP 404: explained by the caller (a URL without /v1, a model not served)."""


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, _RetryableStatus | httpx.TransportError)


def _parse_retry_after(value: str | None) -> float | None:
    seconds = retry_after_seconds(value)
    return None if seconds is None else min(seconds, 120.0)


def _error_message(body: str) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()[:300]
    error = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(error, dict):
        return str(error.get("message", error))
    return str(error)


class LLMClient:
    """One OpenAI-compatible endpoint (base URL ends in /v1)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        temperature: float = 0.95,
        top_p: float = 0.7,
        timeout_s: float = 600.0,
        connect_timeout_s: float = 10.0,
        retries: int = 4,
        stream: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.temperature = temperature
        self.top_p = top_p
        self.retries = retries
        self.stream = stream
        self.simulated = False  # set once the server says it is rumination's simulator
        self._encoder = MessageEncoder()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        # Keep-alive HTTP/1.1 pools shared by every request of this client (a custom transport
        # brings its own). A batch shares one client among all its runs, and the batch's
        # concurrency already bounds their requests, so no pool is capped: httpx's default cap
        # of 100 connections would queue streams behind each other. No transport is built
        # here, so httpx still honours proxy variables.
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None,
                              keepalive_expiry=KEEPALIVE_EXPIRY_S)
        verify = verifying_context(http2=False)

        def make_client() -> httpx.AsyncClient:
            return httpx.AsyncClient(verify=verify, headers=headers, timeout=timeout,
                                     limits=limits, transport=transport)

        self._http = ShardedClient(make_client, shard_size=None if transport else SHARD_SIZE)

    @property
    def server_root(self) -> str:
        """vLLM serves /tokenize, /health and /metrics beside /v1, not under it."""
        return self.base_url.removesuffix("/v1")

    async def aclose(self) -> None:
        await self._http.aclose()

    async def chat(
        self, messages: Sequence[Message], *, max_tokens: int, on_delta: OnDelta | None = None
    ) -> Completion:
        options: dict[str, Any] = {
            "model": self.model,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": max_tokens,
            "stop": STOP_STRINGS,
        }
        if self.stream:
            options["stream"] = True
            options["stream_options"] = {"include_usage": True}
        body = self._encoder.body(messages, options)
        try:
            if self.stream:
                return await self._with_retries(lambda: self._stream_once(body, on_delta))
            return await self._with_retries(lambda: self._post_once(body))
        except _NotFound as exc:
            raise await self._explain_not_found(exc) from None

    async def _explain_not_found(self, exc: _NotFound) -> LLMError:
        """A 404 for a chat request: the URL lacks /v1, or the model is not served here."""
        try:
            served = await self.served_models()
        except LLMError as listing:
            return listing if listing.exit_code == 2 else LLMError(str(exc))
        if served and self.model not in served:
            return model_not_served(self.base_url, self.model, served)
        return LLMError(str(exc))

    async def list_models(self) -> list[dict[str, Any]]:
        async def once() -> list[dict[str, Any]]:
            response = await self._request("GET", f"{self.base_url}/models")
            data = self._json(response).get("data", [])
            return list(data) if isinstance(data, list) else []

        try:
            return await self._with_retries(once)
        except _NotFound:
            raise not_found(self.base_url, "/models") from None

    async def served_models(self) -> list[str]:
        """The model names the server lists at /v1/models."""
        return [str(entry.get("id")) for entry in await self.list_models()]

    async def max_model_len(self) -> int | None:
        for entry in await self.list_models():
            if entry.get("id") == self.model and isinstance(entry.get("max_model_len"), int):
                return int(entry["max_model_len"])
        return None

    async def tokenize(self, messages: Sequence[Message]) -> int:
        """Exact prompt size after the server's chat template (vLLM's /tokenize)."""

        async def once() -> int:
            response = await self._request(
                "POST",
                f"{self.server_root}/tokenize",
                json={
                    "model": self.model,
                    "messages": [m.model_dump() for m in messages],
                    "add_generation_prompt": True,
                },
            )
            return int(self._json(response)["count"])

        return await self._with_retries(once)

    async def health(self) -> bool:
        """False when the server is unreachable or says it is not ready (5xx). A server
        without a /health route (404: not vLLM) counts as healthy."""
        try:
            async with self._http.lease() as http:
                response = await http.get(f"{self.server_root}/health")
        except httpx.TransportError:
            return False
        self._note(response)
        return response.status_code < 500

    def _note(self, response: httpx.Response) -> None:
        if response.headers.get(SIMULATOR_HEADER) == "1":
            self.simulated = True

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise not_json_answer(self.base_url, str(response.url), response.status_code,
                                  response.headers.get("content-type", "")) from None

    def _check(self, url: str, status: int, headers: httpx.Headers, body: str) -> None:
        """A web page instead of an API answer is named in one line (not retried); other
        errors as `_raise_for_status` says."""
        if status < 500 and is_html(headers.get("content-type", ""), body):
            raise web_page_answer(self.base_url, url, status, body)
        _raise_for_status(status, body, headers)

    async def _with_retries(self, attempt: Callable[[], Awaitable[Any]]) -> Any:
        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, _RetryableStatus) and exc.retry_after is not None:
                return exc.retry_after
            return backoff_seconds(state.attempt_number)

        try:
            async for attempt_state in AsyncRetrying(
                retry=retry_if_exception(_is_retryable),
                stop=stop_after_attempt(self.retries + 1),
                wait=wait,
                reraise=True,
            ):
                with attempt_state:
                    return await attempt()
        except httpx.TransportError as exc:
            raise LLMUnavailable(self.base_url, type(exc).__name__ + _detail(exc)) from None
        except _RetryableStatus as exc:
            raise LLMUnavailable(self.base_url, str(exc)) from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async with self._http.lease() as http:
            response = await http.request(method, url, **kwargs)
        self._note(response)
        self._check(url, response.status_code, response.headers, response.text)
        return response

    async def _post_once(self, body: bytes) -> Completion:
        response = await self._request("POST", f"{self.base_url}/chat/completions",
                                       content=body, headers=JSON_HEADERS)
        data = self._json(response)
        try:
            choice = data["choices"][0]
            message = choice["message"]
        except (KeyError, IndexError, TypeError):
            raise LLMError(f"unexpected completion from {self.base_url}: {str(data)[:200]}") from None  # noqa: E501
        return Completion(
            content=message.get("content") or "",
            reasoning=message.get("reasoning_content") or message.get("reasoning"),
            usage=_usage(data.get("usage")),
            finish_reason=choice.get("finish_reason"),
        )

    async def _stream_once(self, body: bytes, on_delta: OnDelta | None) -> Completion:
        url = f"{self.base_url}/chat/completions"
        content: list[str] = []
        reasoning: list[str] = []
        usage = Usage()
        finish_reason: str | None = None
        sent = time.monotonic()
        first_token: float | None = None
        async with self._http.lease() as http, http.stream(
                "POST", url, content=body, headers=JSON_HEADERS) as response:
            self._note(response)
            if response.status_code >= 400 or "html" in response.headers.get("content-type", ""):
                answer = (await response.aread()).decode("utf-8", "replace")
                self._check(url, response.status_code, response.headers, answer)
            done = False
            async for event in _events(response, url):  # read to the end: keeps the connection
                if done or not event.data:
                    continue
                if event.data == "[DONE]":
                    done = True
                    continue
                chunk = json.loads(event.data)
                if chunk.get("usage"):
                    usage = _usage(chunk["usage"])
                for choice in chunk.get("choices") or []:
                    delta = choice.get("delta") or {}
                    think = delta.get("reasoning_content") or delta.get("reasoning")
                    if first_token is None and (think or delta.get("content")):
                        first_token = round(time.monotonic() - sent, 4)
                    if think:
                        reasoning.append(think)
                    text = delta.get("content")
                    if text:
                        content.append(text)
                        if on_delta is not None:
                            result = on_delta(text)
                            if result is not None:
                                await result
                    finish_reason = choice.get("finish_reason") or finish_reason
        return Completion(
            content="".join(content),
            reasoning="".join(reasoning) or None,
            usage=usage,
            finish_reason=finish_reason,
            first_token_seconds=first_token,
        )


async def _events(response: httpx.Response, url: str) -> AsyncIterator[ServerSentEvent]:
    """The response's server-sent events. httpx-sse splits lines on CR, LF and CRLF only, as
    the event-stream format says (httpx's own `aiter_lines` also splits on U+2028 and the
    like, which JSON leaves unescaped), after httpx has undone any gzip or deflate."""
    try:
        async for event in EventSource(response).aiter_sse():
            yield event
    except SSEError:
        kind = response.headers.get("content-type", "").split(";", 1)[0].strip()
        raise LLMError(f"{url} answered a streamed chat request with {kind or 'no content type'}"
                       ", not an event stream; for a server that cannot stream, set stream = false "
                       "(RUMINATION_STREAM=false)") from None


def _detail(exc: Exception) -> str:
    text = str(exc)
    return f" ({text})" if text else ""


def _usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    details = raw.get("prompt_tokens_details")  # vLLM: only with --enable-prompt-tokens-details
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return Usage(
        prompt_tokens=int(raw.get("prompt_tokens") or 0),
        completion_tokens=int(raw.get("completion_tokens") or 0),
        cached_prompt_tokens=int(cached or 0),
    )


def _raise_for_status(status: int, body: str, headers: httpx.Headers) -> None:
    if status < 400:
        return
    if status == 429 or status >= 500:
        raise _RetryableStatus(status, _parse_retry_after(headers.get("retry-after")), body)
    message = _error_message(body)
    if status == 400 and any(marker in message for marker in CONTEXT_ERROR_MARKERS):
        raise ContextLengthExceeded(message)
    error = _NotFound if status == 404 else LLMError
    raise error(f"LLM server answered HTTP {status}: {message}")
