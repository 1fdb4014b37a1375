"""The `wikipedia` backend: full-text search of Wikipedia (or any MediaWiki) through the
MediaWiki Action API, and clean article text for `click` through TextExtracts.

Needs nothing: no key. Option `language` picks the Wikipedia (default en; a search's own
language wins), option `api_url` points at another MediaWiki's api.php instead. Wikimedia
asks for a descriptive User-Agent with a contact: set `user_agent` in the settings.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import httpx
from pydantic import Field

from rumination.models import Page, SearchHit
from rumination.search_backends.http import HttpBackend, HttpOptions, HttpUrl, strip_html

_WIKIPEDIA_HOST = re.compile(r"([a-z][a-z-]{1,15})\.(?:m\.)?wikipedia\.org")
_LANGUAGE = re.compile(r"[a-z][a-z-]{1,15}")


class WikipediaOptions(HttpOptions):
    language: str = Field("en", description="Wikipedia language edition, e.g. en, de, simple")
    api_url: HttpUrl | None = Field(None, description="another MediaWiki's api.php URL "
                                "(then language is not used)")


class WikipediaBackend(HttpBackend):
    """Search Wikipedia or another MediaWiki; serves its articles as plain text."""

    name = "wikipedia"
    requires = "nothing (public MediaWiki API); options language or api_url"
    options = WikipediaOptions
    opts: WikipediaOptions

    async def search(
        self, query: str, *, limit: int, language: str | None = None
    ) -> list[SearchHit]:
        api = self.opts.api_url or _wikipedia_api(self._language(language))
        params = {"list": "search", "srsearch": query, "srlimit": max(1, min(limit, 50)),
                  "srprop": "snippet"}
        data = await self._query(api, params)
        results = data.get("query", {}).get("search") or []
        return [
            SearchHit(title=str(r["title"]), url=_article_url(api, str(r["title"])),
                      snippet=strip_html(r.get("snippet")))
            for r in results[:limit] if isinstance(r, dict) and r.get("title")
        ]

    async def fetch(self, url: str) -> Page | None:
        """The article's plain text, for URLs of this wiki; None for any other URL."""
        found = self._article(url)
        if found is None:
            return None
        api, title = found
        params = {"prop": "extracts", "explaintext": 1, "redirects": 1, "titles": title}
        pages = (await self._query(api, params)).get("query", {}).get("pages") or [{}]
        page = pages[0]
        if page.get("missing") or not page.get("extract"):  # no such page, or no TextExtracts
            return None
        return Page(url=url, title=str(page.get("title") or title), text=str(page["extract"]))

    def explain(self, response: httpx.Response, detail: str) -> str:
        if response.status_code == 403:
            return (f"the wiki refused the request (HTTP 403: {detail}); Wikimedia wants a "
                    "descriptive User-Agent with a contact: set user_agent in the settings")
        return super().explain(response, detail)

    async def _query(self, api: str, params: dict[str, Any]) -> dict[str, Any]:
        """An action=query call; MediaWiki reports errors in a 200 answer."""
        base = {"action": "query", "format": "json", "formatversion": 2}
        data = await self.get_json(api, {**base, **params})
        error = data.get("error")
        if isinstance(error, dict):
            raise self.fail(f"the wiki answered {error.get('code')}: {error.get('info')}")
        return data

    def _language(self, language: str | None) -> str:
        code = (language or self.opts.language).strip().lower()
        code = re.sub(r"-[a-z]{2}$", "", code)  # en-us -> en; zh-yue stays
        if not _LANGUAGE.fullmatch(code):
            raise self.fail(f"{code!r} is not a Wikipedia language code (e.g. en, de, simple)")
        return code

    def _article(self, url: str) -> tuple[str, str] | None:
        """(api.php URL, title) when `url` is an article of this wiki."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if self.opts.api_url:
            api = self.opts.api_url
            if host != urlsplit(api).hostname:
                return None
        elif match := _WIKIPEDIA_HOST.fullmatch(host):
            api = _wikipedia_api(match.group(1))
        else:
            return None
        if parts.path.endswith("/index.php"):
            title = parse_qs(parts.query).get("title", [""])[0]
        else:
            title = unquote(parts.path.partition("/wiki/")[2])
        return (api, title.replace("_", " ")) if title else None


def _wikipedia_api(language: str) -> str:
    return f"https://{language}.wikipedia.org/w/api.php"


def _article_url(api: str, title: str) -> str:
    """The article's URL: /wiki/Title where api.php sits in /w/ (Wikimedia's layout),
    else index.php?title=Title beside api.php."""
    name = quote(title.replace(" ", "_"), safe="/:(),!*'$@;~")
    if api.endswith("/w/api.php"):
        return f"{api.removesuffix('/w/api.php')}/wiki/{name}"
    return f"{api.removesuffix('api.php')}index.php?title={name}"
