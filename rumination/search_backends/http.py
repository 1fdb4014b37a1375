"""What the remote search backends share: one httpx client per backend, retries, spacing,
and errors that say what to fix.

`HttpBackend` is the base. A backend module declares its options (a subclass of
`HttpOptions`), builds its request and reads the response; this module does the rest:

- timeouts (`timeout_s`), a User-Agent (`settings.user_agent`), JSON in and out;
- retries (`retries`) on connect errors, timeouts, 429 and 5xx, waiting what the service
  asks (Retry-After in seconds or as an HTTP date, or the backend's own header) up to
  `max_wait_s`, else a jittered backoff; other 4xx answers are not retried;
- spacing (`min_interval_s`): calls of one backend start at least that far apart;
- every failure becomes a one-line `BackendError` naming what to fix. Secret options
  (`SecretStr`) never reach a message, a log line or a repr.
"""

from __future__ import annotations

import asyncio
import html
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Self

import httpx
from pydantic import AfterValidator, Field, SecretStr, model_validator
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from rumination.agent.backends import BackendOptions, backend_options, env_name
from rumination.errors import BackendError
from rumination.llm.retrying import backoff_seconds, retry_after_seconds
from rumination.models import Page, SearchHit
from rumination.reading.untrusted import one_line

if TYPE_CHECKING:
    from rumination.settings import Settings

log = logging.getLogger(__name__)

# What waits between tries. Tests replace it to record the waits instead of sleeping them.
sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

DEFAULT_USER_AGENT = "rumination (+deep-research harness)"


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
    return value.rstrip("/")


HttpUrl = Annotated[str, AfterValidator(_http_url)]
"""A service URL option: http(s) only, without a trailing slash."""


class HttpOptions(BackendOptions):
    """Options every remote backend has."""

    timeout_s: float = Field(10.0, gt=0, description="seconds to wait for an answer")
    retries: int = Field(2, ge=0, le=10, description="tries after the first on connect "
                         "errors, timeouts, HTTP 429 and 5xx")
    max_wait_s: float = Field(30.0, ge=0, description="longest wait before a retry; a "
                              "service asking for longer fails at once")
    min_interval_s: float = Field(0.0, ge=0, description="start calls at least this many "
                                  "seconds apart (the service's rate limit)")


class KeyOptions(HttpOptions):
    """Options of a service reached with an API key. `key_env` names the service's own
    variable, read when neither the config nor RUMINATION_<NAME>_API_KEY gives the key."""

    key_env: ClassVar[str] = ""
    api_key: SecretStr

    @model_validator(mode="before")
    @classmethod
    def _conventional_key(cls, data: Any) -> Any:
        conventional = os.environ.get(cls.key_env) if cls.key_env else None
        if isinstance(data, dict) and data.get("api_key") is None and conventional:
            return {**data, "api_key": conventional}
        return data


class Spacing:
    """Calls at least `seconds` apart, across concurrent tasks."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if self.seconds <= 0:
            return
        async with self._lock:
            delay = self._next - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self._next = time.monotonic() + self.seconds


async def _pause(seconds: float) -> None:
    await sleep(seconds)  # looked up at each call, so that tests can replace `sleep`


class _Transient(Exception):
    """A failure worth another try."""

    def __init__(self, what: str, hint: str, retry_after: float | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.hint = hint
        self.retry_after = retry_after


_TAG = re.compile(r"<[^>]*>")


def strip_html(text: Any) -> str:
    """Plain text of a snippet: tags removed, entities unescaped, white space folded."""
    return " ".join(html.unescape(_TAG.sub("", str(text or ""))).split())


def present(**values: Any) -> dict[str, Any]:
    """The values that are set (neither None nor empty): optional request parameters."""
    return {key: value for key, value in values.items() if value not in (None, "", [])}


def hits_from(results: Any, *, snippet: str, limit: int) -> list[SearchHit]:
    """Hits from a list of result objects with `title`, `url` and a `snippet` key (whose
    HTML is stripped); results without a URL are skipped, at most `limit` are kept."""
    hits = []
    for result in results if isinstance(results, list) else []:
        if isinstance(result, dict) and result.get("url"):
            url = str(result["url"])
            title = strip_html(result.get("title")) or url
            hits.append(SearchHit(title=title, url=url, snippet=strip_html(result.get(snippet))))
    return hits[:limit]


def error_detail(response: httpx.Response) -> str:
    """The service's own words from an error body (JSON shapes of the common APIs, or text)."""
    try:
        found = _message_in(response.json())
    except ValueError:
        found = None
    return one_line(found or strip_html(response.text), 200)


def error_field(response: httpx.Response, key: str) -> str:
    """`error.<key>` of a JSON error body ({"error": {"type": ...}}), or ""."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return ""
    return str(error.get(key) or "") if isinstance(error, dict) else ""


def _message_in(data: Any) -> str | None:
    if isinstance(data, str):
        return data
    if isinstance(data, list) and data:
        return _message_in(data[0])
    if isinstance(data, dict):
        for key in ("error", "root_cause", "detail", "reason", "info", "message", "msg"):
            found = _message_in(data.get(key))
            if found:
                return found
    return None


def status_text(status: int, detail: str) -> str:
    """`HTTP 401: what the service said` (or just `HTTP 401`)."""
    return f"HTTP {status}: {detail}" if detail else f"HTTP {status}"


def _where(url: httpx.URL) -> str:
    return str(url.copy_with(query=None, fragment=None))


def _plural(n: int) -> str:
    return f"{n} try" if n == 1 else f"{n} tries"


class HttpBackend:
    """Base of the backends that search over HTTP; subclasses set `name`, `requires`,
    `options` and implement `search` (and `fetch` when they can serve documents)."""

    name: str
    requires: str
    options: type[HttpOptions] = HttpOptions
    opts: HttpOptions

    def __init__(
        self,
        options: HttpOptions,
        *,
        user_agent: str = DEFAULT_USER_AGENT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.opts = options
        self._spacing = Spacing(options.min_interval_s)
        self._http = httpx.AsyncClient(
            headers={"User-Agent": user_agent, "Accept": "application/json", **self.headers()},
            timeout=httpx.Timeout(options.timeout_s, connect=min(options.timeout_s, 10.0)),
            transport=transport,
            **self.client_options(),
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        options = backend_options(settings, cls.name, cls.options)
        return cls(options, user_agent=settings.user_agent)

    # Hooks a backend may override.

    def headers(self) -> dict[str, str]:
        """Headers sent with every request (authentication)."""
        return {}

    def client_options(self) -> dict[str, Any]:
        """More httpx.AsyncClient arguments (auth, verify)."""
        return {}

    def retry_after(self, response: httpx.Response) -> float | None:
        """Seconds the service asks to wait before the next try, if it says."""
        return retry_after_seconds(response.headers.get("retry-after"))

    def explain(self, response: httpx.Response, detail: str) -> str:
        """The message for an error answer that is not retried."""
        if response.status_code in (401, 403) and isinstance(self.opts, KeyOptions):
            return self.key_refused(response.status_code, detail)
        return f"the service refused the request ({status_text(response.status_code, detail)})"

    # Shared machinery.

    def key_refused(self, status: int, detail: str) -> str:
        variable = env_name(self.name, "api_key")
        fallback = getattr(self.options, "key_env", "")
        where = f"{variable} (or {fallback})" if fallback else variable
        return f"the API key was refused ({status_text(status, detail)}); check {where}"

    def scrub(self, text: str) -> str:
        """`text` with the value of every secret option masked."""
        for _, value in self.opts:
            if isinstance(value, SecretStr) and value.get_secret_value():
                text = text.replace(value.get_secret_value(), "***")
        return text

    def fail(self, message: str) -> BackendError:
        """A BackendError for this backend, secrets masked."""
        return BackendError(self.name, self.scrub(message))

    async def get_json(self, url: str, params: dict[str, Any]) -> dict[str, Any]:
        return await self.request_json("GET", url, params=params)

    async def post_json(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.request_json("POST", url, json=body)

    async def request_json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        """The JSON object answered, after retries; BackendError when there is none."""
        tries = self.opts.retries + 1
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(_Transient),
                stop=stop_after_attempt(tries),
                wait=self._wait,
                sleep=_pause,
                before_sleep=self._log_retry,
                reraise=True,
            ):
                with attempt:
                    return await self._once(method, url, **kwargs)
        except _Transient as exc:
            raise self.fail(f"{exc.what} after {_plural(tries)}{exc.hint}") from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _once(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        await self._spacing.wait()
        try:
            response = await self._http.request(method, url, **kwargs)
        except httpx.TimeoutException:
            where = _where(httpx.URL(url))
            raise _Transient(f"timed out after {self.opts.timeout_s:g} s at {where}",
                             "; raise timeout_s or check the service") from None
        except httpx.TransportError as exc:
            where = _where(httpx.URL(url))
            raise _Transient(f"cannot reach {where} ({type(exc).__name__})",
                             "; check the url and the network") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise self._transient(response)
        if response.status_code >= 400:
            raise self.fail(self.explain(response, error_detail(response)))
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            kind = response.headers.get("content-type", "no content type")
            raise self.fail(f"expected a JSON object from {_where(response.url)}, got {kind}")
        return data

    def _transient(self, response: httpx.Response) -> Exception:
        status = response.status_code
        wait = self.retry_after(response)
        if status == 429:
            what, hint = "rate limited (HTTP 429)", "; space calls with min_interval_s"
        else:
            detail = self.scrub(error_detail(response))
            what, hint = f"server error ({status_text(status, detail)})", ""
        if wait is not None and wait > self.opts.max_wait_s:
            return self.fail(f"{what}; the service asks to wait {wait:.0f} s, more than "
                             f"max_wait_s ({self.opts.max_wait_s:g} s)")
        return _Transient(what, hint, wait)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            return exc.retry_after
        return min(backoff_seconds(state.attempt_number), self.opts.max_wait_s)

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning("%s: %s; try %d of %d in %.1f s", self.name, exc,
                    state.attempt_number + 1, self.opts.retries + 1, wait)

    async def fetch(self, url: str) -> Page | None:
        """None: the browser fetches the page from the web."""
        return None

    async def aclose(self) -> None:
        await self._http.aclose()
