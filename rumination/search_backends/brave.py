"""The `brave` backend: the Brave Search API (GET https://api.search.brave.com/res/v1/web/search).

Needs a subscription token (option `api_key`: [backends.brave] api_key,
RUMINATION_BRAVE_API_KEY, or BRAVE_API_KEY when neither is set). Plans cap queries per
second (1 on the smallest): set min_interval_s to match. Brave's rate-limit headers
(X-RateLimit-Remaining / -Reset) are honoured like Retry-After.
"""

from __future__ import annotations

from typing import Literal

import httpx
from pydantic import Field, SecretStr

from rumination.models import SearchHit
from rumination.search_backends.http import HttpBackend, KeyOptions, error_field, hits_from, present

API_URL = "https://api.search.brave.com/res/v1/web/search"
_LANGUAGES = {"ja": "jp"}  # Brave's search_lang codes that differ from ISO 639-1


class BraveOptions(KeyOptions):
    key_env = "BRAVE_API_KEY"
    api_key: SecretStr = Field(description="Brave Search API subscription token "
                               "(else BRAVE_API_KEY)")
    country: str | None = Field(None, description="two-letter country code, e.g. US")
    safesearch: Literal["off", "moderate", "strict"] | None = None


class BraveBackend(HttpBackend):
    """Search with the Brave Search API (web results)."""

    name = "brave"
    requires = "a Brave Search API key (api_key, RUMINATION_BRAVE_API_KEY or BRAVE_API_KEY)"
    options = BraveOptions
    opts: BraveOptions

    def headers(self) -> dict[str, str]:
        return {"X-Subscription-Token": self.opts.api_key.get_secret_value()}

    async def search(
        self, query: str, *, limit: int, language: str | None = None
    ) -> list[SearchHit]:
        primary = (language or "").split("-")[0].lower()
        params = {"q": query, "count": max(1, min(limit, 20)), **present(
            search_lang=_LANGUAGES.get(primary, primary), country=self.opts.country,
            safesearch=self.opts.safesearch)}
        data = await self.get_json(API_URL, params)
        web = data.get("web")
        results = web.get("results") if isinstance(web, dict) else None
        return hits_from(results, snippet="description", limit=limit)

    def retry_after(self, response: httpx.Response) -> float | None:
        """X-RateLimit-Reset lists seconds to the reset of each window (per second, per
        month); wait for the windows X-RateLimit-Remaining says are used up."""
        resets = _numbers(response.headers.get("x-ratelimit-reset"))
        left = _numbers(response.headers.get("x-ratelimit-remaining"))
        spent = [reset for reset, remaining in zip(resets, left, strict=False) if remaining <= 0]
        if spent or resets:
            return max(spent) if spent else min(resets)
        return super().retry_after(response)

    def explain(self, response: httpx.Response, detail: str) -> str:
        if "TOKEN" in error_field(response, "code"):  # 422 SUBSCRIPTION_TOKEN_INVALID
            return self.key_refused(response.status_code, detail)
        return super().explain(response, detail)


def _numbers(header: str | None) -> list[float]:
    try:
        return [float(part) for part in (header or "").split(",") if part.strip()]
    except ValueError:
        return []
