"""The lean HTTP/1.1 client for chat streams, against raw asyncio servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from rumination.llm.chat_http import ChatHTTP, proxied
from rumination.llm.client import LLMClient
from rumination.models import Message

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]
TIMEOUT = httpx.Timeout(5.0, connect=2.0)
SSE_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """The request head and its body (by Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    return head, await reader.readexactly(length)


@asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """A server on 127.0.0.1 calling `handler(reader, writer, connection_number)` once per
    connection; yields its URL and the list of connection numbers it has seen."""
    connections: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(len(connections))
        try:
            await handler(reader, writer, connections[-1])
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    listener = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    async with listener:
        yield f"http://127.0.0.1:{port}/v1", connections


def client(url: str, timeout: httpx.Timeout = TIMEOUT) -> ChatHTTP:
    return ChatHTTP(url, headers={"Authorization": "Bearer k"}, timeout=timeout)


async def sse_forever(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
    """Answers every request on the connection with three events split across chunks."""
    while True:
        head, body = await read_request(reader)
        assert b"Authorization: Bearer k" in head and b"Host: 127.0.0.1:" in head
        writer.write(SSE_HEAD + chunk(b'data: {"n": 1}\r\n\r\nda') + chunk(b'ta: "h\xc3')
                     + chunk(b'\xa9" ' + body + b"\n\n") + chunk(b"data: [DONE]\n\n")
                     + b"0\r\n\r\n")
        await writer.drain()


def test_lines_across_chunks_and_one_connection_kept_for_the_next_request() -> None:
    async def main() -> None:
        async with server(sse_forever) as (url, connections):
            chat = client(url)
            for body in (b"first", b"second"):
                async with chat.post("/v1/chat/completions", body, {}) as response:
                    assert response.status_code == 200
                    assert response.headers["content-type"] == "text/event-stream"
                    lines = [line async for line in response.aiter_lines()]
                assert lines == ['data: {"n": 1}', "", f'data: "hé" {body.decode()}', "",
                                 "data: [DONE]", ""]
            assert connections == [0]
            await chat.aclose()

    asyncio.run(main())


async def answer_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            number: int) -> None:
    """One JSON answer by Content-Length, then the server ends the connection (as an idle
    keep-alive timeout does)."""
    await read_request(reader)
    body = b'{"error": {"message": "bad"}}'
    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%b" % (len(body), body))
    await writer.drain()


def test_a_connection_the_server_closed_while_idle_is_replaced() -> None:
    async def main() -> None:
        async with server(answer_then_close) as (url, connections):
            chat = client(url)
            for _ in range(2):
                async with chat.post("/v1/chat/completions", b"{}", {}) as response:
                    assert response.status_code == 400
                    assert await response.aread() == b'{"error": {"message": "bad"}}'
                await asyncio.sleep(0.05)  # the close reaches the client
            assert connections == [0, 1]

    asyncio.run(main())


def test_a_response_left_unread_does_not_leave_its_connection_for_reuse() -> None:
    async def main() -> None:
        async with server(sse_forever) as (url, connections):
            chat = client(url)
            for _ in range(2):
                async with chat.post("/v1/chat/completions", b"x", {}) as response:
                    assert response.status_code == 200  # the body is never read
            assert connections == [0, 1]
            await chat.aclose()

    asyncio.run(main())


async def cut_mid_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         _: int) -> None:
    await read_request(reader)
    writer.write(SSE_HEAD + chunk(b"data: {}\n\n"))
    await writer.drain()


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
    await read_request(reader)
    await asyncio.sleep(5)


@pytest.mark.parametrize(("handler", "error"), [
    (cut_mid_stream, httpx.RemoteProtocolError),
    (silent, httpx.ReadTimeout),
])
def test_failures_are_httpx_transport_errors(handler: Handler, error: type[Exception]) -> None:
    async def main() -> None:
        async with server(handler) as (url, _):
            chat = client(url, httpx.Timeout(0.3, connect=2.0))
            with pytest.raises(error):
                async with chat.post("/v1/chat/completions", b"{}", {}) as response:
                    async for _line in response.aiter_lines():
                        pass
            assert issubclass(error, httpx.TransportError)

    asyncio.run(main())


def test_connection_refused_is_a_connect_error() -> None:
    async def main() -> None:
        async with server(sse_forever) as (url, _):
            pass  # closed: nothing listens on that port now
        with pytest.raises(httpx.ConnectError):
            async with client(url).post("/v1/chat/completions", b"{}", {}):
                pass

    asyncio.run(main())


def test_proxied_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
                 "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert not proxied("http://gpu-box:8000/v1")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    assert proxied("http://gpu-box:8000/v1")
    assert not proxied("https://gpu-box:8000/v1")
    monkeypatch.setenv("NO_PROXY", "gpu-box")
    assert not proxied("http://gpu-box:8000/v1")
    monkeypatch.setenv("NO_PROXY", "")
    assert LLMClient("http://gpu-box:8000/v1", "m")._chat_http is None  # httpx honours it
    monkeypatch.delenv("HTTP_PROXY")
    assert LLMClient("http://gpu-box:8000/v1", "m")._chat_http is not None


def test_llm_client_streams_over_it_and_retries_a_429(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first request gets 429 with Retry-After: 0, the second a streamed answer with
    usage; both on the lean path (no transport given)."""
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)

    async def busy_then_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                               _: int) -> None:
        await read_request(reader)
        body = b'{"error": {"message": "busy"}}'
        writer.write(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 0\r\n"
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%b"
                     % (len(body), body))
        await read_request(reader)
        events = [b'{"choices": [{"delta": {"content": "<think>ok</think>"}}]}',
                  b'{"choices": [{"delta": {"content": "{}"}, "finish_reason": "stop"}]}',
                  b'{"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2}}',
                  b"[DONE]"]
        writer.write(SSE_HEAD + b"".join(chunk(b"data: %b\n\n" % e) for e in events)
                     + b"0\r\n\r\n")
        await writer.drain()
        await reader.read()  # until the client closes

    async def main() -> None:
        async with server(busy_then_answer) as (url, connections):
            llm = LLMClient(url, "m", retries=2)
            assert llm._chat_http is not None
            completion = await llm.chat([Message(role="user", content="q")], max_tokens=10)
            await llm.aclose()
        assert completion.content == "<think>ok</think>{}"
        assert completion.finish_reason == "stop"
        assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (7, 2)
        assert connections == [0]  # the 429 was read whole: its connection was kept

    asyncio.run(main())


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


def test_https_verifies_the_server_against_the_given_context(
    certificate: tuple[Path, Path],
) -> None:
    cert, key = certificate
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)

    async def main() -> None:
        listener = await asyncio.start_server(
            lambda r, w: sse_forever(r, w, 0), "127.0.0.1", 0, ssl=server_side)
        url = f"https://127.0.0.1:{listener.sockets[0].getsockname()[1]}/v1"
        async with listener:
            trusting = ChatHTTP(url, headers={"Authorization": "Bearer k"}, timeout=TIMEOUT,
                                ssl_context=ssl.create_default_context(cafile=str(cert)))
            async with trusting.post("/v1/chat/completions", b"tls", {}) as response:
                lines = [line async for line in response.aiter_lines()]
            assert lines[2] == 'data: "hé" tls'
            await trusting.aclose()
            with pytest.raises(httpx.ConnectError, match="certificate verify failed"):
                async with client(url).post("/v1/x", b"", {}):
                    pass  # the default context does not trust a self-signed certificate

    asyncio.run(main())


def test_an_idle_connection_past_its_expiry_is_not_reused(monkeypatch: pytest.MonkeyPatch,
                                                          ) -> None:
    monkeypatch.setattr("rumination.llm.chat_http.KEEPALIVE_EXPIRY_S", 0.05)

    async def main() -> None:
        async with server(sse_forever) as (url, connections):
            chat = client(url)
            for pause in (0.0, 0.2):
                await asyncio.sleep(pause)
                async with chat.post("/v1/chat/completions", b"x", {}) as response:
                    await response.aread()
            assert connections == [0, 1]
            await chat.aclose()

    asyncio.run(main())


def test_a_header_that_cannot_be_sent_is_an_httpx_error() -> None:
    async def main() -> None:
        async with server(sse_forever) as (url, _):
            chat = ChatHTTP(url, headers={"Authorization": "Bearer k\n"}, timeout=TIMEOUT)
            with pytest.raises(httpx.LocalProtocolError, match="cannot send this request"):
                async with chat.post("/v1/chat/completions", b"x", {}):
                    pass

    asyncio.run(main())


def test_a_request_that_ends_after_aclose_closes_its_connection() -> None:
    async def main() -> None:
        async with server(sse_forever) as (url, _):
            chat = client(url)
            async with chat.post("/v1/chat/completions", b"x", {}) as response:
                await chat.aclose()
                await response.aread()
            assert chat._idle == []

    asyncio.run(main())
