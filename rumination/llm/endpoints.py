"""Several vLLM endpoints behind one pool: runs spread over healthy servers, each run sticks
to its server, a dead server is rested and tried again later.

    pool = EndpointPool.from_settings(settings)          # one LLMClient per URL
    async with pool.lease(run_id) as llm:                 # llm: a ChatModel for one run
        completion = await llm.chat(messages, max_tokens=4096)
    await pool.aclose()

A lease for a run id goes to the healthy endpoint that id ranks first (rendezvous hashing:
the same on every machine, so a run resumed by another worker goes back to the server holding
its prefix cache, and a dead server moves only its own runs); a lease without one goes to the
healthy endpoint with the fewest runs in flight (ties: the order given). Either way the run
keeps its endpoint for its whole life, so vLLM's prefix cache sees every turn of that run.
When a call fails with LLMUnavailable (the client already retried), that endpoint is marked
down for `cooldown_s`, the lease moves to another healthy endpoint (the run id's next choice)
and the call is sent again there. With none left, LLMUnavailable names every URL. A down
endpoint is offered again once its cooldown has passed and its /health answers.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from rumination.errors import LLMUnavailable
from rumination.llm.chat_template import RUMINATION_TEMPLATE
from rumination.llm.client import ChatModel, Completion, LLMClient, OnDelta
from rumination.models import Message
from rumination.settings import Settings

T = TypeVar("T")


@dataclass
class Endpoint:
    url: str
    client: ChatModel
    in_flight: int = 0
    down_until: float = 0.0
    failures: int = 0
    last_error: str | None = None


class EndpointPool:
    def __init__(
        self,
        urls: Sequence[str],
        factory: Callable[[str], ChatModel],
        *,
        cooldown_s: float = 30.0,
        check_health: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not urls:
            raise ValueError("an endpoint pool needs at least one URL")
        unique = dict.fromkeys(u.rstrip("/") for u in urls)  # in order, each once
        self.endpoints = [Endpoint(url, factory(url)) for url in unique]
        self.cooldown_s = cooldown_s
        self.check_health = check_health
        self.clock = clock

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> EndpointPool:
        kwargs.setdefault("cooldown_s", settings.endpoint_cooldown_s)
        return cls(settings.llm_urls, lambda url: settings_client(url, settings), **kwargs)

    @property
    def urls(self) -> list[str]:
        return [e.url for e in self.endpoints]

    def is_down(self, endpoint: Endpoint) -> bool:
        return endpoint.down_until > self.clock()

    @asynccontextmanager
    async def lease(self, key: str | None = None) -> AsyncIterator[PooledModel]:
        """One run's model: bound to one endpoint until that endpoint fails. `key` (the run
        id) picks the endpoint by rendezvous hashing instead of by load."""
        model = PooledModel(self, await self._acquire(exclude=(), key=key), key)
        try:
            yield model
        finally:
            model.endpoint.in_flight -= 1

    async def aclose(self) -> None:
        for endpoint in self.endpoints:
            await endpoint.client.aclose()

    async def __aenter__(self) -> EndpointPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def mark_down(self, endpoint: Endpoint, reason: str) -> None:
        endpoint.down_until = self.clock() + self.cooldown_s
        endpoint.failures += 1
        endpoint.last_error = reason

    async def _acquire(self, exclude: Sequence[str], key: str | None = None) -> Endpoint:
        """The healthy endpoint `key` ranks first (else the least loaded), with its in-flight
        count already taken."""
        order = {e.url: i for i, e in enumerate(self.endpoints)}
        candidates = sorted(
            (e for e in self.endpoints if e.url not in exclude and not self.is_down(e)),
            key=(lambda e: -rendezvous_score(key, e.url)) if key is not None
            else (lambda e: (e.in_flight, order[e.url])),
        )
        for endpoint in candidates:
            endpoint.in_flight += 1  # reserve before awaiting, so concurrent leases spread
            if await self._healthy(endpoint):
                return endpoint
            endpoint.in_flight -= 1
            self.mark_down(endpoint, "health check failed")
        raise LLMUnavailable(", ".join(self.urls), "every endpoint is down (" + "; ".join(
            f"{e.url}: {e.last_error or 'excluded'}" for e in self.endpoints) + ")")  # fmt: skip

    async def _healthy(self, endpoint: Endpoint) -> bool:
        health = getattr(endpoint.client, "health", None)
        if not self.check_health or health is None:
            return True
        return bool(await health())


class PooledModel:
    """A ChatModel bound to one endpoint of a pool, failing over when that endpoint dies.

    A streamed call that fails mid-way is sent again from the start on the next endpoint, so
    `on_delta` may see the beginning of an answer twice (as with the client's own retries)."""

    def __init__(self, pool: EndpointPool, endpoint: Endpoint, key: str | None = None) -> None:
        self.pool = pool
        self.endpoint = endpoint
        self.key = key
        self.model = endpoint.client.model
        self.failovers = 0

    @property
    def url(self) -> str:
        return self.endpoint.url

    @property
    def simulated(self) -> bool:
        """True when the endpoint said it is rumination's protocol simulator."""
        return bool(getattr(self.endpoint.client, "simulated", False))

    async def chat(
        self, messages: Sequence[Message], *, max_tokens: int, on_delta: OnDelta | None = None
    ) -> Completion:
        def call(client: Any) -> Awaitable[Completion]:
            if isinstance(client, LLMClient):  # keeps this run on one llama-server slot
                return client.chat(messages, max_tokens=max_tokens, on_delta=on_delta,
                                   affinity=self.key)
            return client.chat(messages, max_tokens=max_tokens, on_delta=on_delta)

        return await self._call(call)

    async def max_model_len(self) -> int | None:
        return await self._call(lambda c: c.max_model_len())

    async def tokenize(self, messages: Sequence[Message]) -> int:
        return await self._call(lambda c: _method(c, "tokenize")(messages))

    async def health(self) -> bool:
        health = getattr(self.endpoint.client, "health", None)
        return True if health is None else bool(await health())

    async def aclose(self) -> None:
        """Nothing to close: the pool owns the clients (close the pool instead)."""

    async def _call(self, call: Callable[[Any], Awaitable[T]]) -> T:
        tried: list[str] = []
        while True:
            endpoint = self.endpoint
            try:
                return await call(endpoint.client)
            except LLMUnavailable as exc:
                self.pool.mark_down(endpoint, exc.reason)
                tried.append(endpoint.url)
                replacement = await self.pool._acquire(exclude=tried, key=self.key)
                endpoint.in_flight -= 1
                self.endpoint = replacement
                self.model = replacement.client.model
                self.failovers += 1


def settings_client(url: str, s: Settings) -> LLMClient:
    """The client research uses for one server URL. In rumination mode the harness may render
    the model's own template (the completions wire); write mode talks to any chat model."""
    template = RUMINATION_TEMPLATE if s.mode == "rumination" else None
    return LLMClient(
        url, s.model, api_key=s.api_key, temperature=s.temperature, top_p=s.top_p,
        timeout_s=s.request_timeout_s, connect_timeout_s=s.connect_timeout_s,
        retries=s.retries, stream=s.stream, wire=s.wire, template=template,
        slot_affinity=s.slot_affinity,
    )  # fmt: skip


def rendezvous_score(key: str, url: str) -> int:
    """How strongly `key` prefers `url`: the same number in every process and machine."""
    digest = hashlib.blake2b(f"{key}\n{url}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _method(client: Any, name: str) -> Callable[..., Awaitable[Any]]:
    method = getattr(client, name, None)
    if method is None:  # TokenCounter reads this as "no /tokenize": it estimates instead
        raise NotImplementedError(f"{type(client).__name__} has no {name}()")
    return method
