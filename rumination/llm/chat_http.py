"""A lean HTTP/1.1 client for the model server's streamed chat completions.

Around every streamed request httpx's layers (httpx, httpcore, anyio) spent about 2 ms of CPU
on a small machine: most of what the harness added between one model response and the next
request (bench/turns.py). This client speaks HTTP/1.1 through h11 (the parser httpx itself
uses) over asyncio streams kept alive between requests, and nothing more. `LLMClient` uses it
for chat requests when no custom transport is given and no proxy applies to the server's
address; every other request, and those cases, go through httpx.

Failures are raised as httpx's own transport exceptions (ConnectError, ReadTimeout, ...), so
retries and error messages treat both paths alike.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.request
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import h11
import httpx

_READ_SIZE = 65536
# an idle connection older than this is not reused: servers close theirs (uvicorn, which vLLM
# runs on, after 5 s), and a request sent as that close crosses it would fail
KEEPALIVE_EXPIRY_S = 4.0
_NO_READ_TIMEOUT = 86400.0  # httpx.Timeout(read=None): wait, but not forever


def proxied(url: str) -> bool:
    """True when the environment routes `url` through a proxy (httpx would honour it)."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(parts.hostname or "")


class _Connection:
    """One keep-alive connection: an h11 state machine over an asyncio stream."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(our_role=h11.CLIENT)
        self.idle_since = 0.0  # the event loop's clock

    def reusable(self, now: float) -> bool:
        return (self.h11.our_state is h11.IDLE and not self.writer.is_closing()
                and not self.reader.at_eof() and now - self.idle_since < KEEPALIVE_EXPIRY_S)

    def close(self) -> None:
        self.writer.close()

    async def next_event(self, read_timeout: float) -> h11.Event:
        """The next HTTP event from the server, reading the socket as h11 needs."""
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpx.RemoteProtocolError(str(exc)) from None
            if event is not h11.NEED_DATA:
                return event  # type: ignore[return-value]
            try:
                async with asyncio.timeout(read_timeout):
                    data = await self.reader.read(_READ_SIZE)
            except TimeoutError:
                raise httpx.ReadTimeout(f"no data from the server in {read_timeout:g} s") from None
            except OSError as exc:
                raise httpx.ReadError(str(exc) or type(exc).__name__) from None
            self.h11.receive_data(data)  # b"" marks the end of the stream


class StreamedResponse:
    """A response being read: status and headers at once, the body as lines or whole."""

    def __init__(self, connection: _Connection, response: h11.Response, read_timeout: float,
                 ) -> None:
        self.status_code = response.status_code
        self.headers = httpx.Headers([(k.decode("latin-1"), v.decode("latin-1"))
                                      for k, v in response.headers])
        self.complete = False
        self._connection = connection
        self._read_timeout = read_timeout

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        while not self.complete:
            event = await self._connection.next_event(self._read_timeout)
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self.complete = True
            elif isinstance(event, h11.ConnectionClosed):
                raise httpx.RemoteProtocolError("the server closed the connection mid-response")

    async def aiter_lines(self) -> AsyncIterator[str]:
        """Lines without their ending (LF or CRLF), decoded as UTF-8 (as SSE is)."""
        pending = b""
        async for data in self.aiter_bytes():
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.removesuffix(b"\r").decode("utf-8", "replace")
        if pending:
            yield pending.removesuffix(b"\r").decode("utf-8", "replace")

    async def aread(self) -> bytes:
        return b"".join([data async for data in self.aiter_bytes()])


class ChatHTTP:
    """Keep-alive HTTP/1.1 POSTs to one server (scheme, host and port of `base_url`)."""

    def __init__(self, base_url: str, *, headers: Mapping[str, str], timeout: httpx.Timeout,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(base_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if self._https else 80)
        host = f"[{self._host}]" if ":" in self._host else self._host  # IPv6 keeps its brackets
        default_port = parts.port is None or parts.port == (443 if self._https else 80)
        self._headers = [("Host", host if default_port else f"{host}:{self._port}"),
                         ("Accept", "*/*"), ("Accept-Encoding", "identity"),
                         ("User-Agent", "rumination"), *headers.items()]
        self._timeout = timeout
        self._ssl = (ssl_context or ssl.create_default_context()) if self._https else None
        self._idle: list[_Connection] = []
        self._closed = False

    async def _connect(self) -> _Connection:
        try:
            async with asyncio.timeout(self._timeout.connect):
                reader, writer = await asyncio.open_connection(
                    self._host, self._port, ssl=self._ssl, limit=_READ_SIZE * 4)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"no connection to {self._host}:{self._port} in "
                                       f"{self._timeout.connect:g} s") from None
        except OSError as exc:  # ssl.SSLError included
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from None
        return _Connection(reader, writer)

    async def _checkout(self) -> _Connection:
        now = asyncio.get_running_loop().time()
        while self._idle:
            connection = self._idle.pop()
            if connection.reusable(now):
                return connection
            connection.close()  # the server ended it while it was idle, or soon will
        return await self._connect()

    @asynccontextmanager
    async def post(self, path: str, body: bytes, headers: Mapping[str, str],
                   ) -> AsyncIterator[StreamedResponse]:
        """POSTs `body` to `path`; the response is kept for the next request once read whole."""
        connection = await self._checkout()
        response: StreamedResponse | None = None
        try:
            self._write_request(connection, path, body, headers)
            try:
                async with asyncio.timeout(self._timeout.write):
                    await connection.writer.drain()
            except TimeoutError:
                raise httpx.WriteTimeout(f"the server took no data in {self._timeout.write:g} s"
                                         ) from None
            except OSError as exc:
                raise httpx.WriteError(str(exc) or type(exc).__name__) from None
            response = await self._response(connection)
            yield response
        finally:
            self._release(connection, response)

    def _write_request(self, connection: _Connection, path: str, body: bytes,
                       headers: Mapping[str, str]) -> None:
        try:
            request = h11.Request(method="POST", target=path, headers=[
                *self._headers, *headers.items(), ("Content-Length", str(len(body)))])
            for event in (request, h11.Data(data=body), h11.EndOfMessage()):
                connection.writer.write(connection.h11.send(event) or b"")
        except h11.LocalProtocolError as exc:  # e.g. a newline in an API key
            raise httpx.LocalProtocolError(f"cannot send this request: {exc}") from None

    async def _response(self, connection: _Connection) -> StreamedResponse:
        read_timeout = self._timeout.read or _NO_READ_TIMEOUT
        event = await connection.next_event(read_timeout)
        while isinstance(event, h11.InformationalResponse):  # 100 Continue and the like
            event = await connection.next_event(read_timeout)
        if not isinstance(event, h11.Response):
            raise httpx.RemoteProtocolError("the server closed the connection without a response")
        return StreamedResponse(connection, event, read_timeout)

    def _release(self, connection: _Connection, response: StreamedResponse | None) -> None:
        state = connection.h11
        if not self._closed and response is not None and response.complete \
                and state.our_state is h11.DONE and state.their_state is h11.DONE:
            state.start_next_cycle()
            connection.idle_since = asyncio.get_running_loop().time()
            self._idle.append(connection)
        else:
            connection.close()  # read in part, or the server asked to close: not reusable

    async def aclose(self) -> None:
        """Closes the idle connections, and those of requests still running as they end."""
        self._closed = True
        while self._idle:
            self._idle.pop().close()
