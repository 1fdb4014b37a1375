"""The `elasticsearch` backend: full-text search of one index of an Elasticsearch or
OpenSearch cluster (POST {url}/{index}/_search), and its documents' text for `click`.

Needs the cluster URL and the index (options `url`, `index`); documents hold a title, a
URL and a body (field names are options). Credentials: `api_key` (Elasticsearch) or
`username` and `password` (both). A hit without a URL gets elasticsearch://INDEX/ID.
"""

from __future__ import annotations

import ssl
from typing import Any, Self
from urllib.parse import quote

import httpx
from pydantic import Field, SecretStr, model_validator

from rumination.agent.backends import CommaList, env_name
from rumination.models import Page, SearchHit
from rumination.search_backends.http import (
    HttpBackend,
    HttpOptions,
    HttpUrl,
    error_field,
    status_text,
    strip_html,
)

DOC_SCHEME = "elasticsearch://"


class ElasticsearchOptions(HttpOptions):
    url: HttpUrl = Field(description="cluster URL, e.g. http://localhost:9200")
    index: str = Field(description="index name (or a comma-separated list or pattern)")
    fields: CommaList | None = Field(None, description="fields to match, with boosts "
                                     "(default: title_field^2, body_field)")
    title_field: str = "title"
    url_field: str = Field("url", description="a keyword field, or one with a .keyword "
                           "subfield (found by exact match when a page is clicked)")
    body_field: str = "body"
    api_key: SecretStr | None = Field(None, description="Elasticsearch API key (encoded)")
    username: str | None = None
    password: SecretStr | None = None
    verify_tls: bool = True
    ca_file: str | None = Field(None, description="CA certificates of a self-signed cluster")

    @model_validator(mode="after")
    def _one_way_in(self) -> Self:
        if self.api_key and self.username:
            raise ValueError("give api_key or username and password, not both")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        return self


class ElasticsearchBackend(HttpBackend):
    """Search an Elasticsearch/OpenSearch index; serves its documents' bodies."""

    name = "elasticsearch"
    requires = "an Elasticsearch or OpenSearch cluster (options url, index)"
    options = ElasticsearchOptions
    opts: ElasticsearchOptions

    def headers(self) -> dict[str, str]:
        key = self.opts.api_key
        return {"Authorization": f"ApiKey {key.get_secret_value()}"} if key else {}

    def client_options(self) -> dict[str, Any]:
        o = self.opts
        auth = None
        if o.username and o.password:
            auth = httpx.BasicAuth(o.username, o.password.get_secret_value())
        verify: bool | ssl.SSLContext = o.verify_tls
        if o.ca_file and o.verify_tls:
            verify = ssl.create_default_context(cafile=o.ca_file)
        return {"auth": auth, "verify": verify}

    async def search(
        self, query: str, *, limit: int, language: str | None = None
    ) -> list[SearchHit]:
        o = self.opts
        highlight = {"fragment_size": 200, "number_of_fragments": 2, "no_match_size": 200}
        body = {
            "size": max(1, min(limit, 100)),
            "query": {"multi_match": {
                "query": query, "fields": o.fields or [f"{o.title_field}^2", o.body_field]}},
            "_source": [o.title_field, o.url_field],
            "highlight": {"fields": {o.body_field: highlight}},
        }
        return [self._hit(hit) for hit in await self._hits(o.index, body)][:limit]

    async def fetch(self, url: str) -> Page | None:
        """The body of the document whose URL field is `url` (or elasticsearch://INDEX/ID)."""
        o = self.opts
        index, query = o.index, {"bool": {"minimum_should_match": 1, "should": [
            {"term": {field: url}} for field in (o.url_field, f"{o.url_field}.keyword")]}}
        if url.startswith(DOC_SCHEME):
            index, _, doc_id = url.removeprefix(DOC_SCHEME).partition("/")
            query = {"ids": {"values": [doc_id]}}
        body = {"size": 1, "query": query, "_source": [o.title_field, o.url_field, o.body_field]}
        hits = await self._hits(index, body)
        source = hits[0].get("_source") if hits else None
        text = _field(source or {}, o.body_field)
        if not text:
            return None
        title = strip_html(_field(source or {}, o.title_field)) or url
        return Page(url=url, title=title, text=str(text))

    def explain(self, response: httpx.Response, detail: str) -> str:
        said = status_text(response.status_code, detail)
        if error_field(response, "type") == "index_not_found_exception":
            return (f"index {self.opts.index!r} not found at {self.opts.url} ({said}); "
                    f"check the index option ({env_name(self.name, 'index')})")
        if response.status_code in (401, 403):
            return (f"the cluster refused the request ({said}); check api_key, or "
                    "username and password, and their read privilege on the index")
        return super().explain(response, detail)

    async def _hits(self, index: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        url = f"{self.opts.url}/{quote(index, safe=',*')}/_search"
        hits = (await self.post_json(url, body)).get("hits", {}).get("hits")
        return [hit for hit in hits if isinstance(hit, dict)] if isinstance(hits, list) else []

    def _hit(self, hit: dict[str, Any]) -> SearchHit:
        source = hit.get("_source") or {}
        url = _field(source, self.opts.url_field)
        url = str(url) if url else f"{DOC_SCHEME}{hit.get('_index')}/{hit.get('_id')}"
        fragments = (hit.get("highlight") or {}).get(self.opts.body_field) or []
        return SearchHit(title=strip_html(_field(source, self.opts.title_field)) or url,
                         url=url, snippet=strip_html(" … ".join(map(str, fragments))))


def _field(source: dict[str, Any], path: str) -> Any:
    """A _source value by field name, dotted paths included (meta.title)."""
    if path in source:
        return source[path]
    value: Any = source
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value
