"""CPU per streamed chat request for httpx client options and ways of reading the stream.

The simulator runs in a process of its own (bench/simproc.py) at 0 ms/token and answers every
request with the same streamed turn (about a dozen events). Each variant sends `--requests`
requests one after the other on one client; the variants take turns for `--rounds` rounds
(the machine's noise is shared) and the table shows, per variant, the median over the rounds
of this process's CPU and of the wall time per request.

    python bench/http_options.py [--requests 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import time
from collections.abc import Awaitable, Callable

import httpx
from httpx_sse import EventSource
from simproc import fixed, simulator_process

from rumination.llm.client import KEEPALIVE_EXPIRY_S, LLMClient
from rumination.llm.request_body import JSON_HEADERS
from rumination.llm.tls import verifying_context
from rumination.models import Message
from rumination.testing import SimulatorConfig, simulate

MODEL = "sim"
MESSAGES = [Message(role="user", content="glacier moraine ablation")]
BODY = LLMClient("http://unused/v1", MODEL)._encoder.body(
    MESSAGES, {"model": MODEL, "max_tokens": 512, "stream": True,
               "stream_options": {"include_usage": True}})
Send = Callable[[], Awaitable[None]]


def pool(**options: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=60.0, **options)  # type: ignore[arg-type]


def transport(**options: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=60.0, transport=httpx.AsyncHTTPTransport(**options))  # type: ignore[arg-type]  # noqa: E501


CLIENTS: dict[str, Callable[[], httpx.AsyncClient]] = {
    "httpx defaults": pool,
    "LLMClient's: shared TLS context, uncapped pool, keep-alive 4 s": lambda: pool(
        verify=verifying_context(http2=False), limits=httpx.Limits(
            max_connections=None, max_keepalive_connections=None,
            keepalive_expiry=KEEPALIVE_EXPIRY_S)),
    "trust_env=False (no proxy lookup)": lambda: pool(trust_env=False),
    "transport: retries=0, HTTP/1.1 only": lambda: transport(retries=0, http1=True, http2=False),
    "transport: + TCP_NODELAY socket option": lambda: transport(
        retries=0, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]),
}


async def read_raw(response: httpx.Response) -> None:
    async for _ in response.aiter_raw():
        pass


async def read_lines(response: httpx.Response) -> None:
    async for _ in response.aiter_lines():
        pass


async def read_events(response: httpx.Response) -> None:
    async for _ in EventSource(response).aiter_sse():
        pass


def streaming(client: httpx.AsyncClient, url: str,
              read: Callable[[httpx.Response], Awaitable[None]]) -> Send:
    async def send() -> None:
        async with client.stream("POST", f"{url}/chat/completions", content=BODY,
                                 headers=JSON_HEADERS) as response:
            await read(response)
    return send


async def measure(make: Callable[[], tuple[Send, Callable[[], Awaitable[None]]]],
                  requests: int) -> tuple[float, float]:
    """(CPU ms, wall ms) per request, after a few requests to warm the connection up."""
    send, close = make()
    try:
        for _ in range(5):
            await send()
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(requests):
            await send()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        await close()
    return 1000 * cpu / requests, 1000 * wall / requests


def variants(url: str) -> dict[str, Callable[[], tuple[Send, Callable[[], Awaitable[None]]]]]:
    def with_client(build: Callable[[], httpx.AsyncClient],
                    read: Callable[[httpx.Response], Awaitable[None]] = read_events,
                    ) -> Callable[[], tuple[Send, Callable[[], Awaitable[None]]]]:
        def make() -> tuple[Send, Callable[[], Awaitable[None]]]:
            client = build()
            return streaming(client, url, read), client.aclose
        return make

    def llm_client() -> tuple[Send, Callable[[], Awaitable[None]]]:
        client = LLMClient(url, MODEL, retries=0)

        async def send() -> None:
            await client.chat(MESSAGES, max_tokens=512)
        return send, client.aclose

    table = {f"{name}, httpx-sse events": with_client(build) for name, build in CLIENTS.items()}
    table["httpx defaults, aiter_lines"] = with_client(pool, read_lines)
    table["httpx defaults, aiter_raw (no decoding)"] = with_client(pool, read_raw)
    table["LLMClient.chat (body, events, JSON, retries)"] = llm_client
    return table


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200, help="per variant and round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with simulator_process(fixed, (simulate,), SimulatorConfig(model=MODEL)) as sim:
        table = variants(sim.url)
        cpu: dict[str, list[float]] = {name: [] for name in table}
        wall: dict[str, list[float]] = {name: [] for name in table}
        for _ in range(args.rounds):
            for name, make in table.items():
                cpu_ms, wall_ms = asyncio.run(measure(make, args.requests))
                cpu[name].append(cpu_ms)
                wall[name].append(wall_ms)
    print(f"{args.requests} streamed requests per variant and round, {args.rounds} rounds; "
          "medians over the rounds")
    print(f"{'variant':<66} {'CPU ms/request':>14} {'wall ms/request':>15}")
    for name in table:
        print(f"{name:<66} {statistics.median(cpu[name]):>14.3f} "
              f"{statistics.median(wall[name]):>15.3f}")


if __name__ == "__main__":
    main()
