"""ShardedClient: requests go to the first pool with room; a new pool opens only when every
open one is full."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import httpx

from rumination.llm.pools import ShardedClient


def test_pools_fill_to_their_size_before_another_opens() -> None:
    async def main() -> list[int]:
        pools = ShardedClient(httpx.AsyncClient, shard_size=2)
        seen: list[int] = []
        async with AsyncExitStack() as held:
            for _ in range(5):
                client = await held.enter_async_context(pools.lease())
                seen.append(id(client))
            opened = pools.shards
        async with pools.lease() as client:  # all returned: the first pool again
            seen.append(id(client))
        await pools.aclose()
        return [opened, len(set(seen[:5])), int(seen[5] == seen[0])]

    opened, distinct, back_to_first = asyncio.run(main())
    assert opened == 3
    assert distinct == 3
    assert back_to_first == 1


def test_a_freed_place_in_an_earlier_pool_is_taken_first() -> None:
    async def main() -> tuple[bool, bool, int]:
        pools = ShardedClient(httpx.AsyncClient, shard_size=2)
        async with AsyncExitStack() as held:
            first = await held.enter_async_context(pools.lease())
            async with pools.lease():
                second = await held.enter_async_context(pools.lease())  # the first is full
            refill = await held.enter_async_context(pools.lease())
        opened = pools.shards
        await pools.aclose()
        return second is not first, refill is first, opened

    second_elsewhere, refilled_first, opened = asyncio.run(main())
    assert second_elsewhere
    assert refilled_first
    assert opened == 2


def test_without_a_size_one_pool_serves_everything() -> None:
    async def main() -> int:
        pools = ShardedClient(httpx.AsyncClient, shard_size=None)
        async with AsyncExitStack() as held:
            for _ in range(50):
                await held.enter_async_context(pools.lease())
            opened = pools.shards
        await pools.aclose()
        return opened

    assert asyncio.run(main()) == 1
