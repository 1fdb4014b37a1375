"""Async client for an OpenAI-compatible model server: vLLM, SGLang, llama.cpp's llama-server,
llama-cpp-python, Ollama, LM Studio.

It asks the server once what it is (llm/servers.py) and then takes the route that server can
serve the protocol on (llm/wire.py): the chat route with the `observation` role as is (vLLM
passes custom roles to the chat template), or /v1/completions with the prompt rendered here
from the model's own template. It streams, retries what is worth retrying (connect errors,
429, 5xx, honouring Retry-After) and never retries other 4xx answers. A server that answers
with an error of its own is quoted (ServerRefused, exit 2), never called unreachable. Usage the
server does not report is counted here: exactly through its tokenize route where it has one,
else estimated, and then marked `estimated`.
"""

from __future__ import annotations

import asyncio
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

from rumination.errors import ContextLengthExceeded, LLMError, LLMUnavailable, ServerRefused
from rumination.llm.chat_template import RUMINATION_TEMPLATE, render_chat_prompt
from rumination.llm.pools import SHARD_SIZE, ShardedClient
from rumination.llm.provenance import SIMULATOR_HEADER
from rumination.llm.request_body import JSON_HEADERS, MessageEncoder
from rumination.llm.retrying import backoff_seconds, retry_after_seconds
from rumination.llm.server_answers import (
    is_html,
    model_not_served,
    not_found,
    not_json_answer,
    server_message,
    web_page_answer,
)
from rumination.llm.servers import KNOWN, ServerProfile, probe_server, text_count_request
from rumination.llm.tls import verifying_context
from rumination.llm.tokens import estimate_messages, estimate_tokens
from rumination.llm.wire import Route, SlotAffinity, chat_messages, choose_route, server_options
from rumination.models import Message, Usage, Wire

# vLLM reads the model's own stop tokens from its generation config; other servers may not
STOP_STRINGS = ["<|observation|>", "<|user|>", "<|endoftext|>"]
CONTEXT_ERROR_PREFIX = "This model's maximum context length is"
# vLLM words a too-long request in several ways, depending on version and on which limit hit:
#   "This model's maximum context length is N tokens. However, your request has M input tokens…"
#   "'max_tokens' or 'max_completion_tokens' is too large: K. This model's maximum context length
#    is N tokens and your request has M input tokens…" (prompt + max_tokens over the window)
#   "You passed M input tokens and requested K output tokens. However, the model's context length
#    is only N tokens…" (newer releases)
# llama-cpp-python words its refusal like vLLM's first form; llama-server answers
#   {"error": {"type": "exceed_context_size_error", "n_prompt_tokens": M, "n_ctx": N, …}}
#   and SGLang "… is longer than the model's context length (N tokens)".
CONTEXT_ERROR_MARKERS = (CONTEXT_ERROR_PREFIX, "the model's context length is only",
                         "exceed_context_size_error", "longer than the model's context length",
                         "exceeds the available context size")
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
    cut: str | None = None  # why the harness cut this generation short (llm/runaway.py)


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
        super().__init__(f"HTTP {status}: {server_message(body)[:200]}")
        self.status = status
        self.body = body
        self.retry_after = retry_after


class _EmptyStream(Exception):
    """HTTP 200 with not one event: llama-cpp-python's answer to a streamed request it refuses
    (a prompt over its window). Asked again unstreamed, the server says what is wrong."""


class _NotFound(LLMError):
    """HTTP 404: explained by the caller (a URL without /v1, a model not served)."""


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, _RetryableStatus | httpx.TransportError)


def _parse_retry_after(value: str | None) -> float | None:
    seconds = retry_after_seconds(value)
    return None if seconds is None else min(seconds, 120.0)


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
        wire: Wire = "auto",
        template: str | None = None,
        profile: ServerProfile | None = None,
        slot_affinity: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """`template`: the model's chat template the harness may render itself (the rumination
        model's, `chat_template.RUMINATION_TEMPLATE`); None for any chat model (write mode,
        judges): then the chat route is taken. `profile`: the server, if already known."""
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.wire: Wire = wire
        self.template = template
        self._profile = profile
        self._probe_lock = asyncio.Lock()
        self._affinity = SlotAffinity() if slot_affinity else None
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

    async def server(self) -> ServerProfile:
        """What the server is and offers, asked once. A server whose model list cannot be
        read (an unknown OpenAI-compatible API) is taken as the generic kind."""
        if self._profile is not None:
            return self._profile
        async with self._probe_lock:
            if self._profile is None:
                try:
                    models = await self._with_retries(self._models_once)
                except _NotFound:  # no model list: an unknown server, asked no more
                    models = []
                async with self._http.lease() as http:
                    self._profile = await probe_server(http, self.base_url, self.model, models)
        return self._profile

    async def route(self) -> Route:
        """The route requests take: chat or completions (see llm/wire.py)."""
        if self.wire == "chat" or (self.wire == "auto" and self.template is None):
            return "chat"
        return choose_route(self.wire, await self.server(), self.template)

    async def chat(
        self, messages: Sequence[Message], *, max_tokens: int, on_delta: OnDelta | None = None,
        affinity: str | None = None,
    ) -> Completion:
        """One generation. `affinity` (a run id) keeps that run on one llama-server slot when
        the client was made with `slot_affinity`."""
        url, body, prompt = await self.request(messages, max_tokens=max_tokens,
                                               stream=self.stream, affinity=affinity)
        try:
            if self.stream:
                try:
                    completion = await self._with_retries(
                        lambda: self._stream_once(url, body, on_delta))
                except _EmptyStream:
                    unstreamed = _without_streaming(body)
                    completion = await self._with_retries(lambda: self._post_once(url,
                                                                                  unstreamed))
            else:
                completion = await self._with_retries(lambda: self._post_once(url, body))
        except _NotFound as exc:
            raise await self._explain_not_found(exc) from None
        if completion.usage.prompt_tokens == 0 and completion.usage.completion_tokens == 0:
            completion.usage = await self._counted_usage(messages, prompt, completion)
        return completion

    async def request(
        self, messages: Sequence[Message], *, max_tokens: int, stream: bool,
        affinity: str | None = None,
    ) -> tuple[str, bytes, str | None]:
        """The URL and JSON body of a generation request as this server takes it, and the
        prompt text when the harness rendered it (the completions route)."""
        # The server is asked what it is the first time that changes what is sent: the route
        # (a template of our own, or completions asked for) and roles it may refuse.
        needs_profile = (self.template is not None or self.wire == "completions"
                         or any(m.role == "observation" for m in messages))  # fmt: skip
        profile = await self.server() if needs_profile else (
            self._profile or KNOWN["openai-compatible"])
        route = await self.route()
        options: dict[str, Any] = {
            "model": self.model,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": max_tokens,
            "stop": STOP_STRINGS,
        }
        if stream:
            options["stream"] = True
            options["stream_options"] = {"include_usage": True}
        slot = self._affinity.slot(affinity, profile.slots) if self._affinity else None
        options.update(server_options(profile, route, slot))
        if route == "chat":
            body = self._encoder.body(chat_messages(messages, profile), options)
            return f"{self.base_url}/chat/completions", body, None
        prompt = render_chat_prompt(messages, self.template or RUMINATION_TEMPLATE)
        body = json.dumps({"prompt": prompt, **options}, ensure_ascii=False).encode()
        return f"{self.base_url}/completions", body, prompt

    async def _counted_usage(
        self, messages: Sequence[Message], prompt: str | None, completion: Completion
    ) -> Usage:
        """Usage the server did not send, counted through its tokenize route where it has
        one, else estimated (and then marked so)."""
        generated = (completion.reasoning or "") + completion.content
        exact = True
        try:
            prompt_tokens = (await self.count_text(prompt) if prompt is not None
                             else await self.tokenize(messages))  # fmt: skip
            completion_tokens = await self.count_text(generated) if generated else 0
        except (LLMError, NotImplementedError, KeyError, TypeError, ValueError):
            exact = False
            prompt_tokens = (estimate_tokens(prompt) if prompt is not None
                             else estimate_messages(messages))  # fmt: skip
            completion_tokens = estimate_tokens(generated)
        return Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                     cached_prompt_tokens=completion.usage.cached_prompt_tokens,
                     estimated=not exact)  # fmt: skip

    async def _explain_not_found(self, exc: _NotFound) -> LLMError:
        """A 404 for a chat request: the URL lacks /v1, or the model is not served here."""
        try:
            served = await self.served_models()
        except LLMError as listing:
            return listing if listing.exit_code == 2 else LLMError(str(exc))
        if served and self.model not in served:
            return model_not_served(self.base_url, self.model, served)
        return LLMError(str(exc))

    async def _models_once(self) -> list[dict[str, Any]]:
        response = await self._request("GET", f"{self.base_url}/models")
        data = self._json(response).get("data", [])
        return list(data) if isinstance(data, list) else []

    async def list_models(self) -> list[dict[str, Any]]:
        try:
            return list(await self._with_retries(self._models_once))
        except _NotFound:
            raise not_found(self.base_url, "/models") from None

    async def served_models(self) -> list[str]:
        """The model names the server lists at /v1/models."""
        return [str(entry.get("id")) for entry in await self.list_models()]

    async def max_model_len(self) -> int | None:
        """The served window, from wherever this server says it (see llm/servers.py)."""
        return (await self.server()).window

    async def tokenize(self, messages: Sequence[Message]) -> int:
        """Exact prompt size after the chat template: vLLM's /tokenize renders it; on servers
        that count text, the prompt rendered as the request's route renders it. Raises
        NotImplementedError where the server cannot count (the caller estimates)."""
        profile = await self.server()
        if profile.tokenizer == "messages":
            sent = chat_messages(messages, profile)

            async def once() -> int:
                response = await self._request("POST", f"{self.server_root}/tokenize", json={
                    "model": self.model, "messages": [m.model_dump() for m in sent],
                    "add_generation_prompt": True})  # fmt: skip
                return int(self._json(response)["count"])

            return int(await self._with_retries(once))
        if profile.tokenizer == "none":
            raise NotImplementedError(f"{profile.name} has no tokenize route")
        if await self.route() == "completions":
            return await self.count_text(render_chat_prompt(messages,
                                                            self.template or RUMINATION_TEMPLATE))
        if profile.is_llama_server:  # its own rendering of the messages, then counted
            rendered = await self._request("POST", f"{self.server_root}/apply-template", json={
                "messages": [m.model_dump() for m in chat_messages(messages, profile)]})
            return await self.count_text(str(self._json(rendered)["prompt"]))
        raise NotImplementedError(f"{profile.name} cannot count a chat prompt exactly")

    async def count_text(self, text: str) -> int:
        """Tokens of `text` as the served model's tokenizer reads it (special tokens parsed,
        none added), through the server's own route (llm/servers.py)."""
        profile = await self.server()
        found = text_count_request(profile, self.model, text)
        if found is None:
            raise NotImplementedError(f"{profile.name} has no tokenize route")
        path, payload, key = found

        async def once() -> int:
            response = await self._request("POST", self.server_root + path, json=payload)
            answer = self._json(response)[key]
            return len(answer) if isinstance(answer, list) else int(answer)

        return int(await self._with_retries(once))

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
            if exc.status in (429, 502, 503, 504):  # busy, loading, or a gateway with no server
                raise LLMUnavailable(self.base_url, str(exc)) from None
            raise ServerRefused(f"LLM server at {self.base_url} answered HTTP {exc.status}: "
                                f"{server_message(exc.body)}") from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async with self._http.lease() as http:
            response = await http.request(method, url, **kwargs)
        self._note(response)
        self._check(url, response.status_code, response.headers, response.text)
        return response

    async def _post_once(self, url: str, body: bytes) -> Completion:
        response = await self._request("POST", url, content=body, headers=JSON_HEADERS)
        data = self._json(response)
        try:
            choice = data["choices"][0]
            message = choice.get("message") or {"content": choice["text"]}  # chat | completions
        except (KeyError, IndexError, TypeError, AttributeError):
            raise LLMError(f"unexpected completion from {self.base_url}: {str(data)[:200]}") from None  # noqa: E501
        return Completion(
            content=message.get("content") or "",
            reasoning=message.get("reasoning_content") or message.get("reasoning"),
            usage=_usage(data.get("usage"), data.get("timings")),
            finish_reason=choice.get("finish_reason"),
        )

    async def _stream_once(self, url: str, body: bytes, on_delta: OnDelta | None) -> Completion:
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
            done = events = False
            async for event in _events(response, url):  # read to the end: keeps the connection
                events = True
                if done or not event.data:
                    continue
                if event.data == "[DONE]":
                    done = True
                    continue
                chunk = json.loads(event.data)
                if chunk.get("usage") or chunk.get("timings"):
                    usage = _usage(chunk.get("usage"), chunk.get("timings"))
                for choice in chunk.get("choices") or []:
                    delta = choice.get("delta") or {}
                    think = delta.get("reasoning_content") or delta.get("reasoning")
                    text = delta.get("content") or choice.get("text")  # chat | completions
                    if first_token is None and (think or text):
                        first_token = round(time.monotonic() - sent, 4)
                    if think:
                        reasoning.append(think)
                    if text:
                        content.append(text)
                        if on_delta is not None:
                            result = on_delta(text)
                            if result is not None:
                                await result
                    finish_reason = choice.get("finish_reason") or finish_reason
        if not events:
            raise _EmptyStream(url)
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


def _without_streaming(body: bytes) -> bytes:
    data = json.loads(body)
    data.pop("stream_options", None)
    data["stream"] = False
    return json.dumps(data, ensure_ascii=False).encode()


def _detail(exc: Exception) -> str:
    text = str(exc)
    return f" ({text})" if text else ""


def _usage(raw: Any, timings: Any = None) -> Usage:
    """Usage as sent; cached prompt tokens from `prompt_tokens_details` (vLLM: only with
    --enable-prompt-tokens-details) or llama-server's `timings.cache_n`."""
    timings = timings if isinstance(timings, dict) else {}
    if not isinstance(raw, dict):
        return Usage(cached_prompt_tokens=int(timings.get("cache_n") or 0))
    details = raw.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    cached = cached if cached else timings.get("cache_n")
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
    message = server_message(body)
    if status == 400 and any(marker in message for marker in CONTEXT_ERROR_MARKERS):
        raise ContextLengthExceeded(message)
    error = _NotFound if status == 404 else LLMError
    raise error(f"LLM server answered HTTP {status}: {message}")
