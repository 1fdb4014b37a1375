"""Several small httpx connection pools in place of one large one.

httpcore (1.0.x) walks every pooled connection on each request and each response close, and
for each idle one walks them all again, so its bookkeeping grows with the square of the
pool's size. A batch at concurrency 128 sharing one pool spent 42% of the harness's time
there (docs/benchmarks.md, "Batch throughput"). Leasing requests to pools of at most
`SHARD_SIZE` requests in flight keeps each pool small; a new pool opens only when every
open one is full, so a single run uses one pool and one keep-alive connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx

SHARD_SIZE = 16


class ShardedClient:
    """Hands each request the first `httpx.AsyncClient` with room for it. Filling pools in
    order (rather than spreading by load) keeps a wave of requests on the connections the
    last wave opened."""

    def __init__(self, make_client: Callable[[], httpx.AsyncClient], *,
                 shard_size: int | None = SHARD_SIZE) -> None:
        """`shard_size=None` keeps one client (a custom transport cannot be shared safely)."""
        self._make_client = make_client
        self._shard_size = shard_size
        self._clients: list[httpx.AsyncClient] = []
        self._in_flight: list[int] = []

    @property
    def shards(self) -> int:
        return len(self._clients)

    @asynccontextmanager
    async def lease(self) -> AsyncIterator[httpx.AsyncClient]:
        index = self._pick()
        self._in_flight[index] += 1
        try:
            yield self._clients[index]
        finally:
            self._in_flight[index] -= 1

    def _pick(self) -> int:
        for index, in_flight in enumerate(self._in_flight):
            if self._shard_size is None or in_flight < self._shard_size:
                return index
        self._clients.append(self._make_client())
        self._in_flight.append(0)
        return len(self._clients) - 1

    async def aclose(self) -> None:
        clients, self._clients, self._in_flight = self._clients, [], []
        for client in clients:
            await client.aclose()
