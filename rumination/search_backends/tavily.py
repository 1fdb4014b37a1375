"""The `tavily` backend: Tavily's search API (POST https://api.tavily.com/search).

Needs an API key (option `api_key`: [backends.tavily] api_key, RUMINATION_TAVILY_API_KEY,
or Tavily's own TAVILY_API_KEY when neither is set). Tavily has no language parameter.
"""

from __future__ import annotations

from typing import Any, Literal

import httpx
from pydantic import Field, SecretStr

from rumination.agent.backends import CommaList
from rumination.models import SearchHit
from rumination.search_backends.http import HttpBackend, KeyOptions, hits_from, present, status_text

API_URL = "https://api.tavily.com/search"
# Tavily's own statuses beyond the usual ones.
_PLAN_LIMITS = {432: "the plan's usage limit is reached", 433: "the pay-as-you-go limit is reached"}


class TavilyOptions(KeyOptions):
    key_env = "TAVILY_API_KEY"
    api_key: SecretStr = Field(description="Tavily API key (else TAVILY_API_KEY)")
    search_depth: Literal["basic", "advanced"] = "basic"
    topic: Literal["general", "news", "finance"] = "general"
    include_domains: CommaList = Field([], description="only these domains")
    exclude_domains: CommaList = Field([], description="never these domains")


class TavilyBackend(HttpBackend):
    """Search with Tavily (a search API for LLM agents)."""

    name = "tavily"
    requires = "a Tavily API key (api_key, RUMINATION_TAVILY_API_KEY or TAVILY_API_KEY)"
    options = TavilyOptions
    opts: TavilyOptions

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.opts.api_key.get_secret_value()}"}

    async def search(
        self, query: str, *, limit: int, language: str | None = None
    ) -> list[SearchHit]:
        body: dict[str, Any] = {
            "query": query,
            "max_results": max(0, min(limit, 20)),
            "search_depth": self.opts.search_depth,
            "topic": self.opts.topic,
            "include_answer": False,
            "include_raw_content": False,
            **present(include_domains=self.opts.include_domains,
                      exclude_domains=self.opts.exclude_domains),
        }
        data = await self.post_json(API_URL, body)
        return hits_from(data.get("results"), snippet="content", limit=limit)

    def explain(self, response: httpx.Response, detail: str) -> str:
        status = response.status_code
        if status in _PLAN_LIMITS:
            said = status_text(status, detail)
            return f"{_PLAN_LIMITS[status]} ({said}); see the Tavily dashboard"
        return super().explain(response, detail)
