"""LLMClient over real sockets: raw asyncio servers on 127.0.0.1 that write HTTP/1.1 by hand,
so keep-alive, TLS, proxies, timeouts, gzip and line endings are what httpx really sees."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from rumination.errors import LLMUnavailable
from rumination.llm import client as llm
from rumination.llm import tls
from rumination.llm.client import Completion, LLMClient
from rumination.llm.pools import SHARD_SIZE
from rumination.llm.servers import KNOWN
from rumination.models import Message

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
                   "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
SSE_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n")
# the content deltas of every answer below: the 'é' is cut between two chunks
PIECES = ["<think>h\u00e9", "</think>", "{}"]


@pytest.fixture(autouse=True)
def no_proxy_no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(llm, "backoff_seconds", lambda attempt: 0.0)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def events(end: bytes = b"\n") -> list[bytes]:
    """The answer's server-sent events as vLLM writes them, each line ended by `end`."""
    datas = [json.dumps({"choices": [{"delta": {"content": p}}]}) for p in PIECES]
    datas.append(json.dumps({"choices": [{"delta": {}, "finish_reason": "stop"}],
                             "usage": {"prompt_tokens": 7, "completion_tokens": 3}}))
    return [b"data: " + data.encode() + end + end for data in [*datas, "[DONE]"]]


def sse_answer(end: bytes = b"\n", gzip: bool = False) -> bytes:
    """A whole chunked response: the events, cut across chunks (mid-line and mid-character),
    gzip-encoded with a flush after every event when `gzip` (a compressed live stream)."""
    parts = events(end)
    head = SSE_HEAD
    if gzip:
        compressor = zlib.compressobj(wbits=31)
        parts = [compressor.compress(p) + compressor.flush(zlib.Z_SYNC_FLUSH) for p in parts]
        parts[-1] += compressor.flush()
        head += b"Content-Encoding: gzip\r\n"
    raw = b"".join(parts)
    cuts = [0, *range(17, len(raw), 41), len(raw)]
    return head + b"\r\n" + b"".join(chunk(raw[a:b]) for a, b in zip(cuts, cuts[1:], strict=False)
                                     if raw[a:b]) + b"0\r\n\r\n"


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """The request head (the body, by Content-Length, is read and dropped)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    await reader.readexactly(length)
    return head


class Server:
    """A server on 127.0.0.1 calling the handler once per connection."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away
        finally:
            writer.close()

    @asynccontextmanager
    async def running(self, ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[str]:
        """Yields the server's base URL (…/v1)."""
        listener = await asyncio.start_server(self.serve, "127.0.0.1", 0, ssl=ssl_context,
                                              backlog=512)
        port = listener.sockets[0].getsockname()[1]
        async with listener:
            yield f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}/v1"


def answering(server_heads: list[bytes], answer: bytes, *, keep_alive: bool = True) -> Handler:
    """Answers every request on a connection with `answer`, or only the first (then the server
    closes the connection, as an idle keep-alive timeout does)."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            server_heads.append(await read_request(reader))
            writer.write(answer)
            await writer.drain()
            if not keep_alive:
                return
    return handle


async def chat(url: str, times: int = 1, pause: float = 0.0, **options: Any) -> list[Completion]:
    client = LLMClient(url, "m", **{"retries": 0, "timeout_s": 5.0, "profile": KNOWN["vllm"],
                                    **options})
    completions = []
    try:
        for _ in range(times):
            await asyncio.sleep(pause)
            completions.append(await client.chat([Message(role="user", content="q")],
                                                 max_tokens=10))
    finally:
        await client.aclose()
    return completions


def assert_whole(completion: Completion) -> None:
    assert completion.content == "".join(PIECES)
    assert completion.finish_reason == "stop"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (7, 3)


def test_requests_share_one_kept_alive_connection() -> None:
    heads: list[bytes] = []
    server = Server(answering(heads, sse_answer()))

    async def main() -> list[Completion]:
        async with server.running() as url:
            return await chat(url, times=3, api_key="k")

    for completion in asyncio.run(main()):
        assert_whole(completion)
    assert server.connections == 1
    assert all(b"\r\nauthorization: bearer k\r\n" in head.lower() for head in heads)
    assert all(head.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n") for head in heads)


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
@pytest.mark.parametrize("gzip", [False, True], ids=["identity", "gzip"])
def test_event_streams_with_any_line_ending_plain_or_gzip(end: bytes, gzip: bool) -> None:
    heads: list[bytes] = []
    server = Server(answering(heads, sse_answer(end, gzip)))

    async def main() -> list[Completion]:
        async with server.running() as url:
            return await chat(url, times=2)

    for completion in asyncio.run(main()):
        assert_whole(completion)
    assert server.connections == 1  # a gzip stream read whole keeps its connection too
    assert b"gzip" in heads[0].lower().split(b"accept-encoding:", 1)[1].split(b"\r\n", 1)[0]


def test_a_connection_the_server_closed_while_idle_is_replaced() -> None:
    server = Server(answering([], sse_answer(), keep_alive=False))

    async def main() -> list[Completion]:
        async with server.running() as url:
            return await chat(url, times=2, pause=0.05)  # the close reaches the client

    for completion in asyncio.run(main()):
        assert_whole(completion)
    assert server.connections == 2


def test_an_idle_connection_past_its_expiry_is_not_reused(monkeypatch: pytest.MonkeyPatch,
                                                          ) -> None:
    monkeypatch.setattr(llm, "KEEPALIVE_EXPIRY_S", 0.05)
    server = Server(answering([], sse_answer()))

    async def main() -> list[Completion]:
        async with server.running() as url:
            return await chat(url, times=2, pause=0.2)

    assert len(asyncio.run(main())) == 2
    assert server.connections == 2


def test_concurrent_streams_do_not_queue_for_a_connection() -> None:
    """A batch's runs share one client: more streams at once than httpx's default cap of 100
    connections all get one. The server answers none until every request has arrived."""
    streams = 120
    arrived: list[bytes] = []
    everyone = asyncio.Event()

    async def wait_for_all(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        arrived.append(await read_request(reader))
        if len(arrived) == streams:
            everyone.set()
        await everyone.wait()
        writer.write(sse_answer())
        await writer.drain()
        await reader.read()

    server = Server(wait_for_all)

    async def main() -> list[Completion]:
        async with server.running() as url:
            client = LLMClient(url, "m", retries=0, profile=KNOWN["vllm"])
            try:
                return await asyncio.wait_for(asyncio.gather(*(
                    client.chat([Message(role="user", content="q")], max_tokens=10)
                    for _ in range(streams))), timeout=20)
            finally:
                await client.aclose()

    completions = asyncio.run(main())
    assert len(completions) == streams
    assert server.connections == streams


def test_a_second_wave_of_streams_reuses_the_pools_connections() -> None:
    """The streams are spread over pools of at most SHARD_SIZE (httpcore's bookkeeping grows
    with the square of a pool's size); when a wave ends, the next reuses its connections."""
    streams = 40
    arrived = 0
    everyone = asyncio.Event()

    async def wait_for_all_then_answer(reader: asyncio.StreamReader,
                                       writer: asyncio.StreamWriter) -> None:
        nonlocal arrived
        while True:
            await read_request(reader)
            arrived += 1
            if arrived == streams:
                everyone.set()
            await everyone.wait()
            writer.write(sse_answer())
            await writer.drain()

    server = Server(wait_for_all_then_answer)

    async def wave(client: LLMClient) -> None:
        everyone.clear()
        nonlocal arrived
        arrived = 0
        await asyncio.wait_for(asyncio.gather(*(
            client.chat([Message(role="user", content="q")], max_tokens=10)
            for _ in range(streams))), timeout=20)

    async def main() -> int:
        async with server.running() as url:
            client = LLMClient(url, "m", retries=0, profile=KNOWN["vllm"])
            try:
                await wave(client)
                await wave(client)
                return client._http.shards
            finally:
                await client.aclose()

    shards = asyncio.run(main())
    assert shards == -(-streams // SHARD_SIZE)
    assert server.connections == streams


async def cut_mid_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.write(SSE_HEAD + b"\r\n" + chunk(events()[0]))
    await writer.drain()  # then the connection closes mid-body


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    await reader.read()  # until the client gives up and closes


@pytest.mark.parametrize(("handler", "error"), [
    (cut_mid_stream, "RemoteProtocolError"),
    (silent, "ReadTimeout"),
])
def test_transport_failures_are_retried_then_llm_unavailable(handler: Handler, error: str,
                                                             ) -> None:
    server = Server(handler)

    async def main() -> None:
        async with server.running() as url:
            with pytest.raises(LLMUnavailable, match=f"unreachable at {url}: {error}"):
                await chat(url, retries=1, timeout_s=0.3)

    asyncio.run(main())
    assert server.connections == 2  # tried again, on a new connection


def test_connection_refused_is_llm_unavailable() -> None:
    async def main() -> None:
        async with Server(silent).running() as url:
            pass  # closed: nothing listens on that port now
        with pytest.raises(LLMUnavailable, match="ConnectError"):
            await chat(url)

    asyncio.run(main())


def test_429_waits_its_retry_after_then_streams_on_the_same_connection() -> None:
    body = b'{"error": {"message": "busy"}}'
    busy = (b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 0.3\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body))
    arrivals: list[float] = []

    async def busy_then_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                               ) -> None:
        for answer in (busy, sse_answer()):
            await read_request(reader)
            arrivals.append(time.monotonic())
            writer.write(answer)
            await writer.drain()
        await reader.read()

    server = Server(busy_then_answer)

    async def main() -> list[Completion]:
        async with server.running() as url:
            return await chat(url, retries=2)

    assert_whole(asyncio.run(main())[0])
    assert arrivals[1] - arrivals[0] >= 0.3  # Retry-After decided the wait (backoff is 0 here)
    assert server.connections == 1  # the 429 was read whole: its connection was kept


def test_proxy_variables_are_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loopback server plays an HTTP proxy: the request reaches it in absolute form."""
    heads: list[bytes] = []
    server = Server(answering(heads, sse_answer()))

    async def main() -> list[Completion]:
        async with server.running() as proxy_url:
            monkeypatch.setenv("HTTP_PROXY", proxy_url.removesuffix("/v1"))
            return await chat("http://gpu-box.invalid:8000/v1")

    assert_whole(asyncio.run(main())[0])
    assert heads[0].startswith(b"POST http://gpu-box.invalid:8000/v1/chat/completions HTTP/1.1")


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (made by the openssl command): (cert, key)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


def test_https_verifies_the_server(certificate: tuple[Path, Path],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Trusted through SSL_CERT_FILE the self-signed server answers; by default it is refused."""
    cert, key = certificate
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)
    server = Server(answering([], sse_answer()))

    async def main() -> None:
        async with server.running(server_side) as url:
            monkeypatch.setenv("SSL_CERT_FILE", str(cert))
            assert_whole((await chat(url))[0])
            monkeypatch.delenv("SSL_CERT_FILE")
            with pytest.raises(LLMUnavailable, match="certificate verify failed"):
                await chat(url)

    try:
        asyncio.run(main())
    finally:
        tls.cache_clear()
