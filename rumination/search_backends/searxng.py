"""The `searxng` backend: a SearXNG instance's JSON API (GET /search?format=json).

Needs the instance URL (option `url`). The instance must allow the JSON format: in its
settings.yml, `search: formats: [html, json]`; otherwise it answers HTTP 403.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import Field

from rumination.models import SearchHit
from rumination.search_backends.http import HttpBackend, HttpOptions, HttpUrl, hits_from, present


class SearxngOptions(HttpOptions):
    url: HttpUrl = Field(description="base URL of the SearXNG instance, e.g. http://localhost:8888")
    categories: str | None = Field(None, description="comma-separated, e.g. general,science")
    engines: str | None = Field(None, description="comma-separated engine names")
    safesearch: int | None = Field(None, ge=0, le=2, description="0 off, 1 moderate, 2 strict")


class SearxngBackend(HttpBackend):
    """Search through a SearXNG instance (self-hosted metasearch)."""

    name = "searxng"
    requires = "a SearXNG instance with the JSON format enabled (option url)"
    options = SearxngOptions
    opts: SearxngOptions

    async def search(
        self, query: str, *, limit: int, language: str | None = None
    ) -> list[SearchHit]:
        params = {"q": query, "format": "json", "pageno": 1, **present(
            language=language, categories=self.opts.categories, engines=self.opts.engines,
            safesearch=self.opts.safesearch)}
        data = await self.get_json(f"{self.opts.url}/search", params)
        hits = hits_from(data.get("results"), snippet="content", limit=limit)
        if not hits and data.get("unresponsive_engines"):
            raise self.fail(f"no results, and these engines failed: {_failed(data)}")
        return hits

    def explain(self, response: httpx.Response, detail: str) -> str:
        if response.status_code == 403:
            return ("the instance refused format=json (HTTP 403): enable it in its "
                    "settings.yml under search: formats: [html, json]")
        return super().explain(response, detail)


def _failed(data: dict[str, Any]) -> str:
    pairs = [p for p in data.get("unresponsive_engines") or [] if isinstance(p, list) and p]
    return ", ".join(f"{p[0]} ({p[1]})" if len(p) > 1 else str(p[0]) for p in pairs)
