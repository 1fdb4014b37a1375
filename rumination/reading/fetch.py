"""Fetch a web page safely and turn it into readable text.

Rules (DESIGN.md section 5): only http(s); a host is refused when it names the local machine
(`localhost`, `*.localhost`) or when any address it stands for is private, loopback,
link-local, multicast, reserved, unspecified or a cloud metadata address. IPv4 written as one
number, in octal or in hex (`2130706433`, `0x7f.1`, `0177.0.0.1`) is read the way the C
resolver reads it before the check, and IPv6 forms that embed an IPv4 address (mapped,
6to4, NAT64) are judged by that address. The check runs again on every redirect hop
(redirects are followed by hand).

DNS rebinding: the default transport resolves the host when it opens a connection, checks
every address and connects to a checked address itself (httpcore network backend), so the
address that was checked is the address connected to; the Host header and TLS SNI keep the
host name. Environment proxies are not used (a proxy would resolve names itself). With a
custom `transport` (tests, special deployments) the check runs before each request instead.

`allow_hosts` lists host names, IP addresses or networks (`10.0.0.0/8`) that may be fetched
although they are private, for intranet deployments.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import zlib
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from rumination.errors import FetchError, FetchRefused, PageTooLarge
from rumination.llm.tls import verifying_context
from rumination.models import Page
from rumination.reading.extract import page_from_bytes
from rumination.reading.httpcache import HttpCache

if TYPE_CHECKING:
    from rumination.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_REDIRECTS = 5
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # the well-known prefix: public IPv4 behind it
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
# what inet_aton reads as an IPv4 address: 1 to 4 parts, each decimal, 0x-hex or 0-octal
_NUMERIC_HOST = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}", re.I)
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*", re.I)


def is_public(ip: IPAddress) -> bool:
    """True when `ip` may be fetched without an explicit allowance."""
    if ip in METADATA_ADDRESSES:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_public(ip.ipv4_mapped)
        if ip in _NAT64:
            return is_public(ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF))
        embedded = [a for a in (ip.sixtofour, *(ip.teredo or ())) if a is not None]
        if ip.is_site_local or not all(is_public(a) for a in embedded):
            return False
    return ip.is_global and not (
        ip.is_multicast or ip.is_reserved or ip.is_unspecified or ip.is_loopback
        or ip.is_link_local or ip.is_private
    )


def normal_host(host: str) -> str:
    """Lower case, no trailing dots, IDNA-mapped the way the resolver will see it."""
    host = host.rstrip(".").lower()
    try:
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return host


def literal_address(host: str) -> IPAddress | None:
    """The address `host` spells (any form the C resolver accepts), or None for a name."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if not _NUMERIC_LABEL.fullmatch(host.rsplit(".", 1)[-1]):
        return None  # a name: no top-level domain is a number
    try:
        if _NUMERIC_HOST.fullmatch(host):
            return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        pass
    raise FetchRefused(f"{host} is not a valid IP address")


class HostPolicy:
    """Which hosts and addresses may be connected to."""

    def __init__(self, allow_hosts: Iterable[str] = ()) -> None:
        self.names: set[str] = set()
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in allow_hosts:
            entry = entry.strip()
            if not entry:
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                self.names.add(normal_host(entry))

    def allows_address(self, ip: IPAddress) -> bool:
        if is_public(ip):
            return True
        mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
        return any(ip in net or (mapped is not None and mapped in net) for net in self.networks)

    def check_host(self, host: str) -> IPAddress | None:
        """Checks that need no DNS: local names and address literals. Returns the literal."""
        name = normal_host(host)
        if name in self.names:
            return None
        ip = literal_address(name)
        if ip is None:
            if name in _LOCAL_NAMES or name.endswith(".localhost"):
                raise FetchRefused(f"{host} names the local machine")
            return None
        if not self.allows_address(ip):
            shown = host if _is_plain_literal(host) else str(ip)
            raise FetchRefused(f"{host} resolves to a non-public address ({shown})")
        return ip

    async def resolve(self, host: str, port: int) -> list[str]:
        """Every address of `host`, each checked; refused when any of them is not allowed."""
        literal = self.check_host(host)
        if literal is not None:
            return [str(literal)]
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except (socket.gaierror, UnicodeError):
            raise FetchError(f"the host {host} could not be resolved") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if normal_host(host) not in self.names:
            for address in sorted(addresses):
                if not self.allows_address(ipaddress.ip_address(address.split("%", 1)[0])):
                    raise FetchRefused(f"{host} resolves to a non-public address ({address})")
        return addresses


def _is_plain_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _split(url: str) -> tuple[str, int]:
    """Host and port of an http(s) URL, or FetchRefused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # bad port, broken IPv6 literal
        raise FetchRefused(f"not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise FetchRefused(f"only http and https URLs can be opened, not {parts.scheme or '?'}:")
    if not parts.hostname:
        raise FetchRefused("the URL has no host")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


async def check_url(
    url: str, allow_hosts: Iterable[str] | HostPolicy = frozenset(), *, resolve: bool = True
) -> None:
    """Raise FetchRefused unless `url` is http(s) and its host stands only for allowed
    addresses. `resolve=False` does the checks that need no DNS (the connection does the rest).
    """
    policy = allow_hosts if isinstance(allow_hosts, HostPolicy) else HostPolicy(allow_hosts)
    host, port = _split(url)
    if policy.check_host(host) is None and resolve and normal_host(host) not in policy.names:
        await policy.resolve(host, port)


class _CheckedNetwork(httpcore.AsyncNetworkBackend):
    """Resolves and checks each host when connecting, then connects to a checked address."""

    def __init__(self, policy: HostPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        failure: Exception | None = None
        for address in await self._policy.resolve(host, port):
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure or httpcore.ConnectError(f"no address for {host}")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise FetchRefused("unix sockets are not fetched")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _h2_installed() -> bool:
    try:
        import h2  # noqa: F401
    except ImportError:
        return False
    return True


_HTTP2 = _h2_installed()


def _checked_transport(policy: HostPolicy) -> httpx.AsyncBaseTransport:
    """httpx's own transport over a connection pool that connects through _CheckedNetwork."""
    context = verifying_context(http2=_HTTP2)
    transport = httpx.AsyncHTTPTransport(verify=context, trust_env=False, http2=_HTTP2)
    if not isinstance(getattr(transport, "_pool", None), httpcore.AsyncConnectionPool):
        raise RuntimeError(
            "this httpx version keeps its pool elsewhere; update rumination.reading.fetch")
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=_CheckedNetwork(policy),
        http1=True,
        http2=_HTTP2,  # offered in the TLS handshake; the server chooses
    )
    return transport


Downloaded = tuple[str, str, bytes]
"""Final URL, content type and body of a fetch."""


@dataclass(frozen=True)
class Answer:
    """One HTTP exchange of `PageFetcher.request`."""

    status: int
    headers: httpx.Headers
    body: bytes
    location: str | None = None
    """The absolute redirect target when the answer is a redirect."""


class Renderer(Protocol):
    """Turns a fetched document into a Page, maybe in a browser (reading.browser_render)."""

    async def read(self, url: str, content_type: str, body: bytes) -> Page: ...

    async def aclose(self) -> None: ...


class PageFetcher:
    """One shared HTTP client for a run's page fetches: pooled connections, HTTP/2 where the
    server offers it, at most `per_host` requests to one host at a time.

    Limits: `connect_timeout_s` to open a connection, `read_timeout_s` between two reads,
    `timeout_s` for the whole fetch with every redirect; `max_bytes` for the body both as
    sent and once decompressed (the decoder never produces more than that, so a gzip bomb
    costs nothing); at most `max_redirects` redirects, each hop checked like the first URL.
    """

    def __init__(
        self,
        *,
        timeout_s: float = 20.0,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 15.0,
        max_bytes: int = 5_000_000,
        max_redirects: int = MAX_REDIRECTS,
        user_agent: str = "rumination",
        allow_hosts: Iterable[str] = (),
        per_host: int = 4,
        cache: HttpCache | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.timeout_s = timeout_s
        self.connect_timeout_s = min(connect_timeout_s, timeout_s)
        self.read_timeout_s = min(read_timeout_s, timeout_s)
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self.allow_hosts = frozenset(allow_hosts)
        self._policy = HostPolicy(self.allow_hosts)
        self.per_host = per_host
        self.cache = cache
        self.renderer: Renderer | None = None
        """Reads fetched documents, maybe in a browser (set by browser_render.page_fetcher)."""
        self._host_slots: dict[str, asyncio.Semaphore] = {}
        # our own transport checks at connect time; a custom one is checked before each request
        self._checks_on_connect = transport is None
        self._http = httpx.AsyncClient(
            headers={"User-Agent": user_agent, "Accept-Encoding": ", ".join(_ENCODINGS)},
            timeout=httpx.Timeout(
                connect=self.connect_timeout_s, read=self.read_timeout_s,
                write=self.read_timeout_s, pool=self.connect_timeout_s,
            ),
            follow_redirects=False,
            trust_env=False,
            transport=transport or _checked_transport(self._policy),
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> PageFetcher:
        """The plain fetcher the settings describe; `reading.browser_render.page_fetcher` adds
        the browser the `browser` setting asks for."""
        s = settings
        return cls(
            timeout_s=s.fetch_timeout_s, connect_timeout_s=s.fetch_connect_timeout_s,
            read_timeout_s=s.fetch_read_timeout_s, max_bytes=s.fetch_max_bytes,
            max_redirects=s.fetch_max_redirects, user_agent=s.user_agent,
            allow_hosts=s.fetch_allow_hosts, per_host=s.fetch_per_host,
            cache=HttpCache.from_settings(s),
        )

    async def aclose(self) -> None:
        if self.renderer is not None:
            await self.renderer.aclose()
        await self._http.aclose()
        if self.cache is not None:
            self.cache.close()

    async def fetch(self, url: str) -> Page:
        """The page at `url`, read as text; rendered in the browser when `renderer` decides
        so (its own time budget starts after the fetch's)."""
        url, content_type, body = await self._timed(self._download(url))
        if self.renderer is not None:
            return await self.renderer.read(url, content_type, body)
        # extraction is CPU work: a thread keeps the loop free for prefetches and streams
        return await asyncio.to_thread(page_from_bytes, url, content_type, body)

    async def _timed(self, download: Awaitable[Downloaded]) -> Downloaded:
        try:
            return await asyncio.wait_for(download, self.timeout_s)
        except TimeoutError:
            raise FetchError(f"timed out after {self.timeout_s:g} s") from None
        except httpx.ConnectTimeout:
            raise FetchError(f"could not connect within {self.connect_timeout_s:g} s") from None
        except httpx.ReadTimeout:
            raise FetchError(f"the server sent nothing for {self.read_timeout_s:g} s") from None
        except httpx.InvalidURL as exc:
            raise FetchRefused(f"not a valid URL ({exc})") from None
        except httpx.HTTPError as exc:
            raise FetchError(f"{type(exc).__name__}: {exc}") from None

    async def _download(self, url: str) -> Downloaded:
        """Final URL, content type and body, redirects followed and checked."""
        asked = url
        cached = await self.cache.lookup(url) if self.cache is not None else None
        if cached is not None:
            # the address rules hold for cached pages too (they may have changed since)
            for hop in dict.fromkeys((url, cached.final_url)):
                await check_url(hop, self._policy, resolve=True)
            return cached.final_url, cached.content_type, cached.body
        for _ in range(self.max_redirects + 1):
            answer = await self.request(url)
            if answer.location is not None:
                url = answer.location
                continue
            if answer.status >= 400:
                raise FetchError(f"the server answered HTTP {answer.status}")
            content_type = answer.headers.get("content-type", "")
            if self.cache is not None:
                await self.cache.store(asked, url, content_type, answer.body, answer.headers)
            return url, content_type, answer.body
        raise FetchError(f"more than {self.max_redirects} redirects")

    async def request(
        self, url: str, *, method: str = "GET", headers: Iterable[tuple[str, str]] = (),
        content: bytes | None = None, max_bytes: int | None = None, error_body: bool = False,
    ) -> Answer:
        """One request under the address rules, no redirect followed (`location` says where
        one points), the body capped at `max_bytes` (default: the fetcher's cap). The body of
        an error status is read only with `error_body`."""
        await check_url(url, self._policy, resolve=not self._checks_on_connect)
        async with self._host_slot(url), self._http.stream(
            method, url, headers=list(headers), content=content
        ) as response:
            location = response.headers.get("location")
            if response.is_redirect and location is not None:
                return Answer(response.status_code, response.headers, b"", urljoin(url, location))
            if response.status_code >= 400 and not error_body:
                return Answer(response.status_code, response.headers, b"")
            body = await self._read_capped(response, max_bytes or self.max_bytes)
            return Answer(response.status_code, response.headers, body)

    def _host_slot(self, url: str) -> asyncio.Semaphore:
        """At most `per_host` requests to one host at a time (prefetches included)."""
        host = (urlsplit(url).hostname or "").lower()
        return self._host_slots.setdefault(host, asyncio.Semaphore(self.per_host))

    async def _read_capped(self, response: httpx.Response, max_bytes: int) -> bytes:
        """The decoded body; FetchRefused as soon as it (or what is sent) passes max_bytes."""
        too_big = f"the page is larger than {max_bytes} bytes"
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise PageTooLarge(too_big)
        if response.is_stream_consumed:  # built in memory (httpx.MockTransport), decoded
            if len(response.content) > max_bytes:
                raise PageTooLarge(too_big)
            return response.content
        decoder = _Decoder(response.headers.get("content-encoding", ""), max_bytes)
        chunks: list[bytes] = []
        sent = 0
        async for chunk in response.aiter_raw():
            sent += len(chunk)
            if sent > max_bytes:
                raise PageTooLarge(too_big)
            chunks.append(decoder.feed(chunk))
        chunks.append(decoder.flush())
        return b"".join(chunks)


_ENCODINGS = ("gzip", "deflate")


class _Decoder:
    """Undoes a Content-Encoding without ever holding more than `limit` decoded bytes."""

    def __init__(self, header: str, limit: int) -> None:
        self.encoding = header.strip().lower()
        if self.encoding == "x-gzip":
            self.encoding = "gzip"
        if self.encoding not in (*_ENCODINGS, "", "identity"):
            raise FetchError(f"unsupported content encoding {header.strip()}")
        self.limit = limit
        self.size = 0
        self._zlib = self._new()
        self._started = False
        self._members = 0  # gzip members finished
        self._ignoring = False

    def _new(self) -> Any:
        if self.encoding == "gzip":
            return zlib.decompressobj(zlib.MAX_WBITS | 16)
        return zlib.decompressobj(zlib.MAX_WBITS) if self.encoding == "deflate" else None

    def feed(self, data: bytes) -> bytes:
        if self._zlib is None:
            return data  # identity: the raw cap is the cap
        out = []
        while data and not self._ignoring:
            try:
                out.append(self._inflate(data))
            except FetchRefused:
                raise
            except FetchError:
                if not self._members:
                    raise
                self._ignoring = True  # junk after a whole gzip member: dropped, as browsers do
                break
            rest = self._zlib.unused_data
            if not (self._zlib.eof and rest and self.encoding == "gzip"):
                break
            self._members += 1
            self._zlib, data = self._new(), rest  # the next gzip member
        return b"".join(out)

    def _inflate(self, data: bytes) -> bytes:
        room = self.limit - self.size + 1  # one byte more than allowed proves it is too big
        try:
            out: bytes = self._zlib.decompress(data, room)
        except zlib.error:
            if self.encoding != "deflate" or self._started:
                raise FetchError(f"the {self.encoding} data of the page is broken") from None
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)  # deflate sent without its header
            out = self._inflate(data)
            self.size -= len(out)  # counted by the inner call
        self._started = True
        self.size += len(out)
        if self.size > self.limit:
            raise PageTooLarge(f"the page is larger than {self.limit} bytes once decompressed")
        return out

    def flush(self) -> bytes:
        return b"" if self._zlib is None or self._ignoring else self._inflate(b"")
