"""Every request of a rendered page, answered by rumination's own fetcher or refused.

Chromium never talks to the network itself: Playwright routes each request (`**/*`) here,
and the gate makes it with `PageFetcher.request`, the plain fetcher's client, so the same
address rules hold with the same DNS pinning (the host is resolved, every address checked,
and a checked address connected to), then fulfils the request with the answer. What the gate
refuses is aborted. The document itself is served from the bytes the plain fetch already has.

- Images, media, fonts, beacons and event streams are not loaded (text does not need them);
  websockets are refused without a connection (`refuse_websocket`).
- Redirects are followed here, every hop checked: for a subresource the final answer is
  given; a navigation (document, iframe) gets a page that refreshes to the target, so the
  target is routed and checked like any navigation (Chromium, once told of a redirect,
  would follow it without asking the route again).
- What the page loads is capped at `max_bytes` in all, the document included.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

from rumination.errors import FetchError, FetchRefused, PageTooLarge
from rumination.reading.fetch import Answer, PageFetcher

if TYPE_CHECKING:
    from playwright.async_api import Request, Route, WebSocketRoute

NOT_LOADED = frozenset({"image", "media", "font", "ping", "eventsource", "texttrack", "manifest"})
_NOT_FORWARDED = frozenset({
    "host", "connection", "keep-alive", "content-length", "accept-encoding", "user-agent",
    "transfer-encoding", "upgrade", "te", "trailer", "proxy-authorization", "proxy-connection",
})
_NOT_RETURNED = frozenset({
    "content-encoding", "content-length", "transfer-encoding", "connection", "keep-alive",
})
_KEEPS_METHOD = frozenset({307, 308})


@dataclass
class RequestGate:
    """The route handler of one page's browser context, and what it saw."""

    fetcher: PageFetcher
    document_url: str
    document_type: str
    document: bytes
    max_bytes: int
    loaded: int = 0
    refused: list[str] = field(default_factory=list)
    refused_navigation: str | None = None
    over_cap: bool = False
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.loaded = len(self.document)

    async def handle(self, route: Route) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._handle(route)
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def refuse_websocket(self, socket: WebSocketRoute) -> None:
        self.refused.append(f"{socket.url}: websockets are not opened")
        with contextlib.suppress(Exception):
            await socket.close(code=1008, reason="refused")

    def cancel(self) -> None:
        """Stop the requests still under way (the page is done)."""
        for task in list(self._tasks):
            task.cancel()

    async def _handle(self, route: Route) -> None:
        request = route.request
        main_frame = _is_main_frame(request)
        if main_frame and same_document(request.url, self.document_url):
            await _fulfil(route, 200, {"content-type": self.document_type}, self.document)
            return
        if request.resource_type in NOT_LOADED:
            await _abort(route, "blockedbyclient")
            return
        try:
            answer = await self._follow(request)
        except FetchRefused as exc:
            self.refused.append(f"{request.url}: {exc}")
            if main_frame:
                self.refused_navigation = f"{request.url} ({exc})"
            await _abort(route, "blockedbyclient")
            return
        except (FetchError, httpx.HTTPError, OSError):
            await _abort(route, "failed")
            return
        if answer.location is not None:  # a navigation's redirect: see the module docstring
            target = html.escape(answer.location, quote=True)
            refresh = f'<meta http-equiv="refresh" content="0; url={target}">'
            await _fulfil(route, 200, {"content-type": "text/html"}, refresh.encode())
            return
        headers = {k: v for k, v in answer.headers.items() if k.lower() not in _NOT_RETURNED}
        await _fulfil(route, answer.status, headers, answer.body)

    async def _follow(self, request: Request) -> Answer:
        """The answer to `request`, redirects followed (a navigation's first one returned)."""
        url, method, content = request.url, request.method, request.post_data_buffer
        headers = [(k, v) for k, v in (await request.all_headers()).items()
                   if k.lower() not in _NOT_FORWARDED and not k.startswith(":")]
        for _ in range(self.fetcher.max_redirects + 1):
            room = self.max_bytes - self.loaded
            if room <= 0:
                self.over_cap = True
                raise FetchError(f"the page loaded more than {self.max_bytes} bytes")
            try:
                answer = await self.fetcher.request(
                    url, method=method, headers=headers, content=content, max_bytes=room,
                    error_body=True,
                )
            except PageTooLarge as exc:
                self.over_cap = True
                raise FetchError(str(exc)) from None
            self.loaded += len(answer.body)
            if answer.location is None or request.is_navigation_request():
                return answer
            url = answer.location
            if answer.status not in _KEEPS_METHOD:
                method, content = "GET", None
        raise FetchError(f"more than {self.fetcher.max_redirects} redirects")


def _is_main_frame(request: Request) -> bool:
    """A navigation of the page's top frame (a popup's first request has no frame yet: it
    belongs to a page that is closed as soon as it opens)."""
    from playwright.async_api import Error

    if not request.is_navigation_request():
        return False
    try:
        return request.frame.parent_frame is None
    except Error:
        return False


def same_document(a: str, b: str) -> bool:
    """Whether two URLs name one document (no fragment; an empty path is `/`)."""
    def key(url: str) -> tuple[str, str, str, str]:
        parts = urlsplit(url)
        return (parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", parts.query)
    return key(a) == key(b)


async def _fulfil(route: Route, status: int, headers: dict[str, str], body: bytes) -> None:
    from playwright.async_api import Error

    with contextlib.suppress(Error):  # the page may be gone already
        await route.fulfill(status=status, headers=headers, body=body)


async def _abort(route: Route, reason: str) -> None:
    from playwright.async_api import Error

    with contextlib.suppress(Error):
        await route.abort(reason)
