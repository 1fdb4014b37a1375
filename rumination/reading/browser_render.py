"""Read pages that only a browser can render: headless Chromium behind the fetch rules.

`PageRenderer.read` is the fetcher's last step. With `browser = auto` an HTML page is rendered
when the plain fetch looks like a script shell (reading.page_shell); with `always` every HTML
page is; other content types are read as fetched. A rendered page's DOM goes through the same
extraction as fetched HTML (extract.page_from_bytes) and comes back with `rendered` set. When
rendering fails, the plain page is used if it has text; otherwise the error says both.

Each page gets a fresh browser context (nothing persisted, no service workers, no downloads,
no permissions granted, popups closed) whose every request goes through a RequestGate
(reading.browser_gate). Limits: at most `pages` rendering at once; `timeout_s` from the start
of a render to reading its DOM, which happens earlier once the network is idle (500 ms
without a request, Playwright's `networkidle`) or the text has not changed for `settle_s`;
`max_bytes` for everything one page loads. One browser per renderer, started on first use,
closed by `aclose`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rumination.errors import ConfigError, FetchError, FetchRefused, PageTooLarge
from rumination.models import Page
from rumination.reading import browser_launch
from rumination.reading.browser_gate import RequestGate
from rumination.reading.extract import HTML_TYPES, decode, media_type, page_from_bytes
from rumination.reading.fetch import PageFetcher
from rumination.reading.page_shell import looks_like_script_shell

if TYPE_CHECKING:
    from playwright.async_api import Browser, Playwright
    from playwright.async_api import Page as BrowserPage

    from rumination.settings import Settings

READ_DOM_TIMEOUT_S = 3.0
REFUSALS_KEPT = 1000
_TEXT_LENGTH = "document.body ? document.body.innerText.length : -1"


@dataclass(frozen=True)
class Rendering:
    html: str
    """The DOM as HTML."""
    capped: bool
    """Some resource was not loaded: the page reached its byte cap."""


class PageRenderer:
    def __init__(
        self,
        fetcher: PageFetcher,
        *,
        mode: str = "auto",
        executable: str | None = None,
        timeout_s: float = 15.0,
        settle_s: float = 1.0,
        max_bytes: int = 10_000_000,
        pages: int = 2,
    ) -> None:
        self.fetcher = fetcher
        self.mode = mode
        self.executable = executable
        self.timeout_s = timeout_s
        self.settle_s = settle_s
        self.max_bytes = max_bytes
        self.rendered = 0
        """Pages rendered so far."""
        self.refused: deque[str] = deque(maxlen=REFUSALS_KEPT)
        """The latest requests of rendered pages that the address rules refused: `URL: reason`."""
        self._slots = asyncio.Semaphore(pages)
        self._launching = asyncio.Lock()
        self._driver: Playwright | None = None
        self._browser: Browser | None = None

    def wants(self, content_type: str, body: bytes) -> bool:
        """Whether this fetched document is to be rendered."""
        if media_type(content_type) not in HTML_TYPES:
            return False
        return self.mode == "always" or (
            self.mode == "auto" and looks_like_script_shell(decode(body, content_type, html=True))
        )

    async def read(self, url: str, content_type: str, body: bytes) -> Page:
        if not await asyncio.to_thread(self.wants, content_type, body):
            return await asyncio.to_thread(page_from_bytes, url, content_type, body)
        try:
            rendering = await self.render(url, content_type, body)
        except FetchError as exc:
            try:
                return await asyncio.to_thread(page_from_bytes, url, content_type, body)
            except FetchError as plain:
                raise type(exc)(f"{plain}; in a browser: {exc}") from None
        try:
            page = await asyncio.to_thread(
                page_from_bytes, url, "text/html; charset=utf-8", rendering.html.encode("utf-8")
            )
        except FetchError:
            why = f" (it loaded more than {self.max_bytes} bytes)" if rendering.capped else ""
            raise FetchError(
                f"no readable text on the page, even rendered in a browser{why}"
            ) from None
        return page.model_copy(update={"rendered": True})

    async def render(self, url: str, content_type: str, body: bytes) -> Rendering:
        """The page's DOM after its scripts ran; FetchRefused when the page navigated to a
        refused address, FetchError when it could not be rendered."""
        from playwright.async_api import Error

        async with self._slots:
            browser = await self._started()
            gate = RequestGate(self.fetcher, url, content_type or "text/html", body,
                               self.max_bytes)
            try:
                context = await browser.new_context(
                    service_workers="block", accept_downloads=False, permissions=[],
                )
            except Error as exc:
                raise FetchError(f"the browser failed: {_first_line(exc)}") from None
            try:
                await context.route("**/*", gate.handle)
                await context.route_web_socket("**/*", gate.refuse_websocket)
                page = await context.new_page()
                context.on("page", lambda other: _close_popup(other, keep=page))
                with contextlib.suppress(TimeoutError):  # the cap: the DOM as it stands
                    await asyncio.wait_for(self._settle(page, url), self.timeout_s)
                if gate.refused_navigation is not None:
                    raise FetchRefused(f"the page navigated to {gate.refused_navigation}")
                dom = await self._dom(page)
                self.rendered += 1
                return Rendering(dom, gate.over_cap)
            except Error as exc:
                reason = _first_line(exc)
                raise FetchError(f"the browser could not load the page: {reason}") from None
            finally:
                self.refused.extend(gate.refused)
                gate.cancel()
                with contextlib.suppress(Error):
                    await context.close()

    async def _settle(self, page: BrowserPage, url: str) -> None:
        """Load `url`, then wait for the network to be idle or the text to stay the same."""
        await page.goto(url, wait_until="domcontentloaded", timeout=0)
        waits = [
            asyncio.create_task(page.wait_for_load_state("networkidle", timeout=0)),
            asyncio.create_task(self._text_settled(page)),
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    async def _text_settled(self, page: BrowserPage) -> None:
        from playwright.async_api import Error

        last, still = None, 0.0
        step = min(0.25, self.settle_s)
        while still < self.settle_s:
            await asyncio.sleep(step)
            try:
                length = await page.evaluate(_TEXT_LENGTH)
            except Error:  # a navigation replaced the document: it is changing
                length = None
            still = still + step if length is not None and length == last else 0.0
            last = length

    async def _dom(self, page: BrowserPage) -> str:
        if page.url.startswith("chrome-error:"):
            raise FetchError("the browser could not load the page")
        try:
            dom = await asyncio.wait_for(page.content(), READ_DOM_TIMEOUT_S)
        except TimeoutError:
            raise FetchError(f"the page did not load within {self.timeout_s:g} s") from None
        if len(dom) > self.fetcher.max_bytes:  # characters: at least as many bytes
            raise PageTooLarge(f"the rendered page is larger than {self.fetcher.max_bytes} bytes")
        return dom

    async def _started(self) -> Browser:
        async with self._launching:
            if self._browser is None or not self._browser.is_connected():
                await self._stop()
                try:
                    self._driver, self._browser = await browser_launch.launch(self.executable)
                except Exception as exc:  # Playwright raises its own Error, or OSError
                    raise FetchError(f"the browser could not start: {_first_line(exc)}") from None
            return self._browser

    async def aclose(self) -> None:
        async with self._launching:
            await self._stop()

    async def _stop(self) -> None:
        browser, driver = self._browser, self._driver
        self._browser = self._driver = None
        with contextlib.suppress(Exception):
            if browser is not None:
                await browser.close()
        with contextlib.suppress(Exception):
            if driver is not None:
                await driver.stop()


def page_fetcher(settings: Settings) -> PageFetcher:
    """The run's fetcher, with the browser the `browser` setting asks for; ConfigError for
    `always` where no page can be rendered."""
    fetcher = PageFetcher.from_settings(settings)
    fetcher.renderer = renderer_for(settings, fetcher)
    return fetcher


def renderer_for(settings: Settings, fetcher: PageFetcher) -> PageRenderer | None:
    """The renderer the settings ask for; None for `never`, and for `auto` where Playwright
    or a browser is missing. `always` without them is a ConfigError naming what to install."""
    if settings.browser == "never":
        return None
    problem = browser_launch.unavailable(settings.browser_executable)
    if problem is not None:
        if settings.browser == "always":
            raise ConfigError(problem)
        return None
    return PageRenderer(
        fetcher, mode=settings.browser,
        executable=browser_launch.find_executable(settings.browser_executable),
        timeout_s=settings.browser_timeout_s, settle_s=settings.browser_settle_s,
        max_bytes=settings.browser_max_bytes, pages=settings.browser_pages,
    )


async def _close_popup(page: BrowserPage, *, keep: BrowserPage) -> None:
    if page is not keep:
        with contextlib.suppress(Exception):
            await page.close()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
