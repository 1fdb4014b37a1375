"""Remote search backends (SearXNG, Wikipedia, Tavily, Brave, Elasticsearch/OpenSearch)
against respx-mocked services answering with each service's documented JSON shapes.

The first part runs the same checks on every backend (hits, empty results, refused
credentials, rate limits, timeouts, secrets); the second part checks each service's own
request and error bodies; the last part checks a real run and `rumination backends`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from typer.testing import CliRunner

from rumination import Researcher, Settings
from rumination.agent.backends import available_backends, create_backend
from rumination.cli import app
from rumination.errors import BackendError, ConfigError
from rumination.models import Page, SearchHit
from rumination.reading.fetch import PageFetcher
from rumination.search_backends import http
from rumination.search_backends.brave import BraveBackend
from rumination.search_backends.elasticsearch import ElasticsearchBackend
from rumination.search_backends.http import HttpBackend, retry_after_seconds
from rumination.search_backends.searxng import SearxngBackend
from rumination.search_backends.tavily import TavilyBackend
from rumination.search_backends.wikipedia import WikipediaBackend
from rumination.testing import ScriptedModel

FIXTURES = Path(__file__).parent / "fixtures" / "backends"
KEY = "sk-live-5ecret-k3y-do-not-leak"
UA = "rumination-tests/1.0 (tests@example.org)"
WIKI_API = "https://en.wikipedia.org/w/api.php"
ES_SEARCH = "http://es.test:9200/docs/_search"
BRAVE_API = "https://api.search.brave.com/res/v1/web/search"
TAVILY_API = "https://api.tavily.com/search"
FLASK_403 = (
    "<!doctype html>\n<html lang=en>\n<title>403 Forbidden</title>\n<h1>Forbidden</h1>\n"
    "<p>You don&#39;t have the permission to access the requested resource.</p>\n"
)


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data


@dataclass
class Service:
    cls: type[HttpBackend]
    defaults: dict[str, Any]
    method: str
    url: str
    ok: str
    empty: dict[str, Any]
    titles: list[str]
    refused: httpx.Response
    refused_says: str


SERVICES = {
    "searxng": Service(
        SearxngBackend, {"url": "http://searx.test/"}, "GET", "http://searx.test/search",
        "searxng.json", {"query": "q", "number_of_results": 0, "results": [], "answers": [],
                         "suggestions": [], "unresponsive_engines": []},
        ["Kelp forest - Wikipedia", "What is a kelp forest?"],
        httpx.Response(403, html=FLASK_403), "search: formats: [html, json]",
    ),
    "wikipedia": Service(
        WikipediaBackend, {}, "GET", WIKI_API, "wikipedia_search.json",
        {"batchcomplete": True, "query": {"searchinfo": {"totalhits": 0}, "search": []}},
        ["Kelp forest", "Sea otter"],
        httpx.Response(403, text="Please set a user-agent and respect our robot policy "
                       "https://w.wiki/4wJS."), "set user_agent",
    ),
    "tavily": Service(
        TavilyBackend, {"api_key": KEY}, "POST", TAVILY_API, "tavily.json",
        {"query": "q", "answer": None, "images": [], "results": [], "response_time": 0.4},
        ["Sea otters and kelp forests - NOAA", "Keystone species: the sea otter"],
        httpx.Response(401, json={"detail": {"error": "Unauthorized: missing or invalid "
                                                      "API key."}}),
        "the API key was refused (HTTP 401: Unauthorized: missing or invalid API key.); "
        "check RUMINATION_TAVILY_API_KEY (or TAVILY_API_KEY)",
    ),
    "brave": Service(
        BraveBackend, {"api_key": KEY}, "GET", BRAVE_API, "brave.json",
        {"type": "search", "query": {"original": "q"}, "mixed": {"type": "mixed", "main": []}},
        ["Kelp forest - Wikipedia", "Kelp Forest Habitat | Kelp facts"],
        httpx.Response(401, json={"type": "ErrorResponse", "error": {
            "id": "5f7e", "status": 401, "code": "UNAUTHORIZED",
            "detail": "Unauthorized.", "meta": {}}, "time": 1754364294}),
        "the API key was refused (HTTP 401: Unauthorized.); check RUMINATION_BRAVE_API_KEY",
    ),
    "elasticsearch": Service(
        ElasticsearchBackend, {"url": "http://es.test:9200", "index": "docs", "api_key": KEY},
        "POST", ES_SEARCH, "elasticsearch.json",
        {"took": 1, "timed_out": False, "hits": {"total": {"value": 0, "relation": "eq"},
                                                 "max_score": None, "hits": []}},
        ["Kelp forests", "Sea urchin barrens"],
        httpx.Response(401, json={"error": {"root_cause": [{
            "type": "security_exception",
            "reason": "unable to authenticate with provided credentials"}],
            "type": "security_exception",
            "reason": "unable to authenticate with provided credentials"}, "status": 401}),
        "check api_key, or username and password",
    ),
}
KEYED = ["tavily", "brave", "elasticsearch"]


@pytest.fixture(autouse=True)
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Retry waits, recorded instead of slept; no conventional key variables leak in."""
    recorded: list[float] = []

    async def record(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(http, "sleep", record)
    for name in ("TAVILY_API_KEY", "BRAVE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return recorded


@pytest.fixture(params=list(SERVICES))
def service(request: pytest.FixtureRequest) -> Service:
    return SERVICES[request.param]


def make(service: Service, **options: Any) -> Any:
    return service.cls(service.cls.options(**{**service.defaults, **options}), user_agent=UA)


def call(backend: Any, method: str, *args: Any, **kwargs: Any) -> Any:
    async def go() -> Any:
        try:
            return await getattr(backend, method)(*args, **kwargs)
        finally:
            await backend.aclose()

    return asyncio.run(go())


def search(backend: Any, query: str = "kelp forest", limit: int = 10, **kw: Any) -> Any:
    hits: list[SearchHit] = call(backend, "search", query, limit=limit, **kw)
    return hits


def fails(backend: Any, method: str = "search", *args: Any) -> str:
    with pytest.raises(BackendError) as caught:
        call(backend, method, *(args or ("kelp forest",)), **({"limit": 10}
                                                               if method == "search" else {}))
    return str(caught.value)


def route(mock: respx.MockRouter, service: Service) -> respx.Route:
    return mock.route(method=service.method, url__startswith=service.url)


def sent(route: respx.Route) -> httpx.Request:
    return route.calls.last.request


# Every backend


def test_hits_are_parsed_and_the_limit_honoured(
    service: Service, respx_mock: respx.MockRouter
) -> None:
    api = route(respx_mock, service).respond(json=fixture(service.ok))
    hits = search(make(service), limit=2)
    assert [hit.title for hit in hits] == service.titles
    assert all(hit.url.startswith("https://") and hit.snippet for hit in hits)
    assert not any("<" in hit.snippet or "&amp;" in hit.snippet for hit in hits)
    assert sent(api).headers["user-agent"] == UA
    assert api.call_count == 1


def test_an_empty_result_is_no_hits(service: Service, respx_mock: respx.MockRouter) -> None:
    route(respx_mock, service).respond(json=service.empty)
    assert search(make(service)) == []


def test_refused_credentials_say_what_to_fix_without_retrying(
    service: Service, respx_mock: respx.MockRouter, waits: list[float]
) -> None:
    api = route(respx_mock, service).mock(return_value=service.refused)
    message = fails(make(service))
    assert message.startswith(f"search backend {service.cls.name!r}: ")
    assert service.refused_says in message and "\n" not in message
    assert api.call_count == 1 and waits == []


@pytest.mark.parametrize("status", [429, 503])
def test_rate_limits_and_server_errors_are_retried_after_the_wait_asked(
    service: Service, status: int, respx_mock: respx.MockRouter, waits: list[float]
) -> None:
    busy = httpx.Response(status, headers={"Retry-After": "2"}, json={"error": "busy"})
    api = route(respx_mock, service)
    api.side_effect = [busy, httpx.Response(200, json=fixture(service.ok))]
    assert len(search(make(service), limit=2)) == 2
    assert api.call_count == 2 and waits == [2.0]


def test_an_exhausted_rate_limit_is_an_error(
    service: Service, respx_mock: respx.MockRouter, waits: list[float]
) -> None:
    api = route(respx_mock, service).respond(429, json={"error": "too many requests"})
    message = fails(make(service))
    assert "rate limited (HTTP 429) after 3 tries; space calls with min_interval_s" in message
    assert api.call_count == 3 and len(waits) == 2
    assert all(0 < wait <= 30 for wait in waits)


def test_timeouts_are_retried_then_reported(
    service: Service, respx_mock: respx.MockRouter
) -> None:
    api = route(respx_mock, service).mock(side_effect=httpx.ReadTimeout("read timed out"))
    message = fails(make(service, timeout_s=7))
    assert f"timed out after 7 s at {service.url} after 3 tries" in message
    assert "raise timeout_s" in message
    assert api.call_count == 3


def test_a_connect_timeout_then_an_answer_is_a_success(
    service: Service, respx_mock: respx.MockRouter, waits: list[float]
) -> None:
    api = route(respx_mock, service)
    api.side_effect = [httpx.ConnectTimeout("timed out"), httpx.Response(200, json=fixture(
        service.ok))]
    assert [hit.title for hit in search(make(service), limit=2)] == service.titles
    assert len(waits) == 1


def test_retries_zero_means_one_try(service: Service, respx_mock: respx.MockRouter) -> None:
    api = route(respx_mock, service).mock(side_effect=httpx.ConnectError("refused"))
    message = fails(make(service, retries=0))
    assert f"cannot reach {service.url} (ConnectError) after 1 try" in message
    assert api.call_count == 1


def test_a_wait_longer_than_max_wait_fails_at_once(
    service: Service, respx_mock: respx.MockRouter, waits: list[float]
) -> None:
    api = route(respx_mock, service).respond(429, headers={"Retry-After": "120"})
    message = fails(make(service, max_wait_s=30))
    assert "asks to wait 120 s, more than max_wait_s (30 s)" in message
    assert api.call_count == 1 and waits == []


@pytest.mark.parametrize("name", KEYED)
def test_api_keys_never_reach_messages_logs_or_reprs(
    name: str, respx_mock: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    service = SERVICES[name]
    api = route(respx_mock, service)
    messages = []
    for answer in (
        httpx.Response(401, json={"detail": {"error": f"bad key {KEY}"}}),
        httpx.Response(400, json={"error": {"reason": f"key {KEY} malformed"}}),
        httpx.Response(500, text=f"upstream rejected {KEY}"),
        httpx.Response(429, headers={"Retry-After": "1"}),
        httpx.ReadTimeout(f"timed out for {KEY}"),
    ):
        api.mock(side_effect=[answer] * 3)
        backend = make(service)
        assert KEY not in repr(backend) and KEY not in repr(backend.opts)
        messages.append(fails(backend))
    assert KEY in json.dumps(dict(sent(api).headers))  # it is sent, where it belongs
    assert all(KEY not in message for message in messages)
    assert "***" in messages[0] and "***" in messages[1]
    assert caplog.records and KEY not in caplog.text


def test_calls_are_spaced_by_min_interval(respx_mock: respx.MockRouter) -> None:
    respx_mock.get(url__startswith="http://searx.test/search").respond(
        json=fixture("searxng.json")
    )
    backend = make(SERVICES["searxng"], min_interval_s=0.05)
    # when each call passes the spacing gate: timing the mocked handler instead would add the
    # event loop's scheduling jitter, which on a loaded machine exceeds the interval itself
    gate, opened = backend._spacing.wait, []

    async def timed_wait() -> None:
        await gate()
        opened.append(time.monotonic())

    backend._spacing.wait = timed_wait  # type: ignore[method-assign]

    async def three() -> None:
        await asyncio.gather(*(backend.search(f"q{i}", limit=3) for i in range(3)))
        await backend.aclose()

    asyncio.run(three())
    gaps = [later - earlier for earlier, later in zip(opened, opened[1:], strict=False)]
    assert len(opened) == 3 and all(gap >= 0.045 for gap in gaps)


def test_retry_after_takes_seconds_or_an_http_date() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("-1") == 0.0
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=5), usegmt=True)
    assert 3.5 < (retry_after_seconds(soon) or 0) <= 5.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_an_answer_that_is_not_json_is_an_error(respx_mock: respx.MockRouter) -> None:
    respx_mock.get(url__startswith="http://searx.test/search").respond(html="<html>hi</html>")
    message = fails(make(SERVICES["searxng"]))
    assert "expected a JSON object from http://searx.test/search, got text/html" in message


def test_from_settings_reads_options_and_user_agent(respx_mock: respx.MockRouter) -> None:
    api = respx_mock.get(url__startswith="http://searx.test/search").respond(
        json=fixture("searxng.json"))
    settings = Settings(backend="searxng", user_agent=UA,
                        backends={"searxng": {"url": "http://searx.test", "timeout_s": 3}})
    backend: Any = create_backend(settings)
    assert isinstance(backend, SearxngBackend) and backend.opts.timeout_s == 3
    assert len(search(backend, limit=1)) == 1
    assert sent(api).headers["user-agent"] == UA


# SearXNG


def test_searxng_sends_the_json_format_language_and_options(
    respx_mock: respx.MockRouter,
) -> None:
    api = respx_mock.get(url__startswith="http://searx.test/search").respond(
        json=fixture("searxng.json"))
    backend = make(SERVICES["searxng"], categories="science,general", safesearch=1)
    hits = search(backend, "kelp forest", language="de-DE")
    assert dict(sent(api).url.params) == {
        "q": "kelp forest", "format": "json", "pageno": "1", "language": "de-DE",
        "categories": "science,general", "safesearch": "1",
    }
    assert hits[0].snippet.endswith("of the world's coastlines.")


def test_searxng_reports_engines_that_failed_when_nothing_came_back(
    respx_mock: respx.MockRouter,
) -> None:
    body = {"query": "q", "results": [],
            "unresponsive_engines": [["google", "timeout"], ["duckduckgo", "CAPTCHA"]]}
    respx_mock.get(url__startswith="http://searx.test/search").respond(json=body)
    message = fails(make(SERVICES["searxng"]))
    assert "no results, and these engines failed: google (timeout), duckduckgo (CAPTCHA)" in (
        message)


# Wikipedia


def test_wikipedia_builds_article_urls_and_cleans_snippets(respx_mock: respx.MockRouter) -> None:
    api = respx_mock.get(url__startswith=WIKI_API).respond(json=fixture("wikipedia_search.json"))
    hits = search(make(SERVICES["wikipedia"]), "kelp forest", limit=5)
    assert [hit.url for hit in hits] == [
        "https://en.wikipedia.org/wiki/Kelp_forest",
        "https://en.wikipedia.org/wiki/Sea_otter",
        "https://en.wikipedia.org/wiki/Bose%E2%80%93Einstein_condensate",
    ]
    assert hits[0].snippet == ("Kelp forests are underwater areas with a high density of kelp, "
                               "which covers a large part of the world's coastlines & shores")
    params = sent(api).url.params
    assert (params["action"], params["list"], params["srsearch"]) == ("query", "search",
                                                                      "kelp forest")
    assert (params["srlimit"], params["format"], params["formatversion"]) == ("5", "json", "2")


def test_wikipedia_percent_encodes_titles(respx_mock: respx.MockRouter) -> None:
    titles = ["C++", "AC/DC", "What's up? & more", "Zürich"]
    body = {"query": {"search": [{"ns": 0, "title": t, "snippet": ""} for t in titles]}}
    respx_mock.get(url__startswith=WIKI_API).respond(json=body)
    urls = [hit.url.removeprefix("https://en.wikipedia.org/wiki/")
            for hit in search(make(SERVICES["wikipedia"]))]
    assert urls == ["C%2B%2B", "AC/DC", "What's_up%3F_%26_more", "Z%C3%BCrich"]


@pytest.mark.parametrize(("option", "given", "host"), [
    ("en", "de", "de.wikipedia.org"), ("fr", None, "fr.wikipedia.org"),
    ("en", "pt-BR", "pt.wikipedia.org"), ("en", "zh-yue", "zh-yue.wikipedia.org"),
])
def test_wikipedia_language_of_the_search_wins_over_the_option(
    option: str, given: str | None, host: str, respx_mock: respx.MockRouter
) -> None:
    api = respx_mock.get(url__startswith=f"https://{host}/w/api.php").respond(
        json=fixture("wikipedia_search.json"))
    hits = search(make(SERVICES["wikipedia"], language=option), language=given)
    assert api.call_count == 1 and hits[0].url == f"https://{host}/wiki/Kelp_forest"


def test_wikipedia_refuses_a_language_that_is_no_host_name(respx_mock: respx.MockRouter) -> None:
    message = fails(make(SERVICES["wikipedia"], language="evil.example/x"))
    assert "is not a Wikipedia language code" in message and not respx_mock.calls


def test_wikipedia_api_errors_in_a_200_answer_are_errors(
    respx_mock: respx.MockRouter, waits: list[float]
) -> None:
    body = {"error": {"code": "nosrsearch", "info": "The \"srsearch\" parameter must be set.",
                      "docref": "See https://en.wikipedia.org/w/api.php for API usage."},
            "servedby": "mw-api-ext.eqiad.main-7d9b6c5f9-abcde"}
    api = respx_mock.get(url__startswith=WIKI_API).respond(json=body)
    message = fails(make(SERVICES["wikipedia"]))
    assert 'the wiki answered nosrsearch: The "srsearch" parameter must be set.' in message
    assert api.call_count == 1 and waits == []


def test_wikipedia_serves_articles_as_plain_text(respx_mock: respx.MockRouter) -> None:
    api = respx_mock.get(url__startswith=WIKI_API).respond(json=fixture("wikipedia_extract.json"))
    url = "https://en.wikipedia.org/wiki/Kelp_forest#Morphology"
    page = call(make(SERVICES["wikipedia"]), "fetch", url)
    assert page == Page(url=url, title="Kelp forest", text=fixture("wikipedia_extract.json")[
        "query"]["pages"][0]["extract"])
    params = sent(api).url.params
    assert (params["prop"], params["explaintext"], params["titles"]) == ("extracts", "1",
                                                                         "Kelp forest")
    assert params["redirects"] == "1"


@pytest.mark.parametrize(("url", "host", "title"), [
    ("https://de.m.wikipedia.org/wiki/Seeotter", "de.wikipedia.org", "Seeotter"),
    ("https://en.wikipedia.org/wiki/Bose%E2%80%93Einstein_condensate", "en.wikipedia.org",
     "Bose–Einstein condensate"),
    ("https://en.wikipedia.org/w/index.php?title=AC/DC&oldid=1", "en.wikipedia.org", "AC/DC"),
])
def test_wikipedia_reads_the_title_and_wiki_from_the_url(
    url: str, host: str, title: str, respx_mock: respx.MockRouter
) -> None:
    body = {"query": {"pages": [{"pageid": 1, "ns": 0, "title": title, "extract": "Text."}]}}
    api = respx_mock.get(url__startswith=f"https://{host}/w/api.php").respond(json=body)
    page = call(make(SERVICES["wikipedia"]), "fetch", url)
    assert page is not None and page.title == title
    assert sent(api).url.params["titles"] == title


def test_wikipedia_leaves_other_urls_and_missing_pages_to_the_web(
    respx_mock: respx.MockRouter,
) -> None:
    backend = make(SERVICES["wikipedia"])
    for url in ("https://example.org/wiki/Kelp", "https://en.wikipedia.org/",
                "https://wikipedia.org.evil.example/wiki/Kelp"):
        assert call(make(SERVICES["wikipedia"]), "fetch", url) is None
    assert not respx_mock.calls
    missing = {"query": {"pages": [{"ns": 0, "title": "Nonexistent kelp", "missing": True}]}}
    respx_mock.get(url__startswith=WIKI_API).respond(json=missing)
    assert call(backend, "fetch", "https://en.wikipedia.org/wiki/Nonexistent_kelp") is None


def test_wikipedia_works_with_any_mediawiki(respx_mock: respx.MockRouter) -> None:
    api_url = "https://wiki.example.org/api.php"
    api = respx_mock.get(url__startswith=api_url)
    api.side_effect = [httpx.Response(200, json=fixture("wikipedia_search.json")),
                       httpx.Response(200, json=fixture("wikipedia_extract.json"))]
    backend = make(SERVICES["wikipedia"], api_url=api_url)

    async def search_then_read() -> Page | None:
        hits = await backend.search("kelp", limit=1, language="de")
        assert hits[0].url == "https://wiki.example.org/index.php?title=Kelp_forest"
        page = await backend.fetch(hits[0].url)
        await backend.aclose()
        return page

    page = asyncio.run(search_then_read())
    assert page is not None and page.title == "Kelp forest"
    assert sent(api).url.params["titles"] == "Kelp forest"


# Tavily


def test_tavily_posts_the_query_with_a_bearer_key(respx_mock: respx.MockRouter) -> None:
    api = respx_mock.post(TAVILY_API).respond(json=fixture("tavily.json"))
    backend = make(SERVICES["tavily"], search_depth="advanced",
                   include_domains="noaa.gov, nationalgeographic.org")
    hits = search(backend, "sea otters kelp", limit=50)
    assert json.loads(sent(api).content) == {
        "query": "sea otters kelp", "max_results": 20, "search_depth": "advanced",
        "topic": "general", "include_answer": False, "include_raw_content": False,
        "include_domains": ["noaa.gov", "nationalgeographic.org"],
    }
    assert sent(api).headers["authorization"] == f"Bearer {KEY}"
    assert hits[1].snippet.endswith("in the kelp forest & its loss leads to urchin barrens.")


@pytest.mark.parametrize(("status", "error", "says"), [
    (432, "This request exceeds your plan's set usage limit. Please upgrade your plan or "
          "contact support@tavily.com", "the plan's usage limit is reached (HTTP 432: This"),
    (433, "This request exceeds the pay-as-you-go limit. You can increase your limit on the "
          "Tavily dashboard.", "the pay-as-you-go limit is reached (HTTP 433: This request"),
    (400, "Invalid topic. Must be 'general' or 'news'.",
     "the service refused the request (HTTP 400: Invalid topic. Must be 'general' or 'news'.)"),
])
def test_tavily_error_bodies_are_explained(
    status: int, error: str, says: str, respx_mock: respx.MockRouter
) -> None:
    api = respx_mock.post(TAVILY_API).respond(status, json={"detail": {"error": error}})
    assert says in fails(make(SERVICES["tavily"]))
    assert api.call_count == 1


def test_tavily_validation_errors_show_the_first_problem(respx_mock: respx.MockRouter) -> None:
    body = {"detail": [{"type": "missing", "loc": ["body", "query"], "msg": "Field required"}]}
    respx_mock.post(TAVILY_API).respond(422, json=body)
    assert "(HTTP 422: Field required)" in fails(make(SERVICES["tavily"]))


@pytest.mark.parametrize(("name", "conventional"), [("tavily", "TAVILY_API_KEY"),
                                                     ("brave", "BRAVE_API_KEY")])
def test_the_services_own_key_variable_is_the_last_resort(
    name: str, conventional: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError) as caught:
        create_backend(Settings(backend=name))
    assert f"RUMINATION_{name.upper()}_API_KEY" in str(caught.value)
    for variable, value in [(conventional, "from-conventional"),
                            (f"RUMINATION_{name.upper()}_API_KEY", "from-rumination")]:
        monkeypatch.setenv(variable, value)
        backend: Any = create_backend(Settings(backend=name))
        assert backend.opts.api_key.get_secret_value() == value
        asyncio.run(backend.aclose())


# Brave


def test_brave_sends_the_token_count_and_language(respx_mock: respx.MockRouter) -> None:
    api = respx_mock.get(url__startswith=BRAVE_API).respond(json=fixture("brave.json"))
    hits = search(make(SERVICES["brave"], country="US"), "kelp forest", 50, language="ja-JP")
    request = sent(api)
    assert request.headers["x-subscription-token"] == KEY
    assert request.headers["accept"] == "application/json"
    assert dict(request.url.params) == {"q": "kelp forest", "count": "20",
                                        "search_lang": "jp", "country": "US"}
    assert hits[0].snippet == ("Kelp forests are underwater areas with a high density of kelp "
                               "& other algae.")


def test_brave_says_an_invalid_token_is_the_key(respx_mock: respx.MockRouter) -> None:
    body = {"type": "ErrorResponse", "error": {
        "id": "ade84851", "status": 422, "code": "SUBSCRIPTION_TOKEN_INVALID",
        "detail": "The provided subscription token is invalid.", "meta": {}}, "time": 1754364294}
    respx_mock.get(url__startswith=BRAVE_API).respond(422, json=body)
    assert ("the API key was refused (HTTP 422: The provided subscription token is invalid.); "
            "check RUMINATION_BRAVE_API_KEY (or BRAVE_API_KEY)") in fails(make(SERVICES["brave"]))


def test_brave_validation_errors_are_not_blamed_on_the_key(respx_mock: respx.MockRouter) -> None:
    body = {"type": "ErrorResponse", "error": {
        "id": "ade84852", "status": 422, "code": "VALIDATION",
        "detail": "Unable to validate request parameter(s)", "meta": {}}, "time": 1754364294}
    respx_mock.get(url__startswith=BRAVE_API).respond(422, json=body)
    message = fails(make(SERVICES["brave"]))
    assert "the service refused the request (HTTP 422: Unable to validate request" in message


def brave_429(remaining: str, reset: str) -> httpx.Response:
    body = {"type": "ErrorResponse", "error": {
        "id": "9f1c", "status": 429, "code": "RATE_LIMITED",
        "detail": "Request rate limit exceeded for plan.",
        "meta": {"plan": "Free", "rate_limit": 1, "rate_current": 2, "quota_limit": 2000,
                 "quota_current": 10, "component": "rate_limiter"}}, "time": 1754364294}
    headers = {"X-RateLimit-Limit": "1, 2000", "X-RateLimit-Policy": "1;w=1, 2000;w=2592000",
               "X-RateLimit-Remaining": remaining, "X-RateLimit-Reset": reset}
    return httpx.Response(429, headers=headers, json=body)


def test_brave_waits_for_the_rate_limit_window_that_ran_out(
    respx_mock: respx.MockRouter, waits: list[float]
) -> None:
    api = respx_mock.get(url__startswith=BRAVE_API)
    api.side_effect = [brave_429("0, 1990", "1, 2419200"),
                       httpx.Response(200, json=fixture("brave.json"))]
    assert len(search(make(SERVICES["brave"]), limit=3)) == 3
    assert waits == [1.0]


def test_brave_an_exhausted_monthly_quota_fails_at_once(
    respx_mock: respx.MockRouter, waits: list[float]
) -> None:
    api = respx_mock.get(url__startswith=BRAVE_API).mock(
        return_value=brave_429("1, 0", "1, 2419200"))
    message = fails(make(SERVICES["brave"]))
    assert "rate limited (HTTP 429); the service asks to wait 2419200 s" in message
    assert api.call_count == 1 and waits == []


# Elasticsearch / OpenSearch


def test_elasticsearch_query_highlights_and_api_key(respx_mock: respx.MockRouter) -> None:
    api = respx_mock.post(ES_SEARCH).respond(json=fixture("elasticsearch.json"))
    hits = search(make(SERVICES["elasticsearch"]), "kelp", limit=3)
    body = json.loads(sent(api).content)
    assert body["size"] == 3
    assert body["query"] == {"multi_match": {"query": "kelp", "fields": ["title^2", "body"]}}
    assert body["_source"] == ["title", "url"] and "body" in body["highlight"]["fields"]
    assert sent(api).headers["authorization"] == f"ApiKey {KEY}"
    assert hits[0].snippet == ("Kelp forests grow in cold, nutrient-rich coastal water. … "
                               "Sea otters protect kelp by eating urchins.")
    assert hits[2].url == "elasticsearch://docs/otters-3"


def test_elasticsearch_custom_fields_and_basic_auth(
    respx_mock: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUMINATION_ELASTICSEARCH_FIELDS", "headline^3, text")
    settings = Settings(backend="elasticsearch", backends={"elasticsearch": {
        "url": "https://search.example:9200", "index": "news-*", "title_field": "headline",
        "body_field": "text", "url_field": "meta.link", "username": "reader",
        "password": KEY}})
    api = respx_mock.post("https://search.example:9200/news-*/_search").respond(json={
        "hits": {"hits": [{"_index": "news-1", "_id": "7", "_source": {
            "headline": "Otters <b>back</b>", "meta": {"link": "https://news.example/7"}},
            "highlight": {"text": ["They are <em>back</em>."]}}]}})
    hits = search(create_backend(settings), "otters")
    assert hits == [SearchHit(title="Otters back", url="https://news.example/7",
                              snippet="They are back.")]
    body = json.loads(sent(api).content)
    assert body["query"]["multi_match"]["fields"] == ["headline^3", "text"]
    credentials = base64.b64encode(f"reader:{KEY}".encode()).decode()
    assert sent(api).headers["authorization"] == f"Basic {credentials}"


def test_elasticsearch_credentials_are_one_way_or_the_other() -> None:
    options = {"url": "http://es.test:9200", "index": "docs", "api_key": KEY, "username": "u",
               "password": "p"}
    with pytest.raises(ConfigError, match="api_key or username and password, not both"):
        create_backend(Settings(backend="elasticsearch", backends={"elasticsearch": options}))


def test_elasticsearch_names_an_index_that_is_not_there(respx_mock: respx.MockRouter) -> None:
    cause = {"type": "index_not_found_exception", "reason": "no such index [docs]",
             "resource.type": "index_or_alias", "resource.id": "docs", "index_uuid": "_na_",
             "index": "docs"}
    respx_mock.post(ES_SEARCH).respond(404, json={"error": {"root_cause": [cause], **cause},
                                                  "status": 404})
    assert ("index 'docs' not found at http://es.test:9200 (HTTP 404: no such index [docs]); "
            "check the index option (RUMINATION_ELASTICSEARCH_INDEX)"
            ) in fails(make(SERVICES["elasticsearch"]))


def test_elasticsearch_reports_the_root_cause(respx_mock: respx.MockRouter) -> None:
    body = {"error": {
        "root_cause": [{"type": "query_shard_exception",
                        "reason": "failed to create query: For input string: \"kelp\"",
                        "index": "docs"}],
        "type": "search_phase_execution_exception", "reason": "all shards failed",
        "phase": "query", "grouped": True}, "status": 400}
    respx_mock.post(ES_SEARCH).respond(400, json=body)
    assert "(HTTP 400: failed to create query: For input string: \"kelp\")" in fails(
        make(SERVICES["elasticsearch"]))


def test_elasticsearch_serves_documents_by_url(respx_mock: respx.MockRouter) -> None:
    found = {"hits": {"total": {"value": 1, "relation": "eq"}, "hits": [{
        "_index": "docs", "_id": "kelp-1", "_source": {
            "title": "Kelp forests", "url": "https://docs.example.org/kelp",
            "body": "Kelp forests grow in cold, nutrient-rich coastal water."}}]}}
    api = respx_mock.post(ES_SEARCH).respond(json=found)
    page = call(make(SERVICES["elasticsearch"]), "fetch", "https://docs.example.org/kelp")
    assert page == Page(url="https://docs.example.org/kelp", title="Kelp forests",
                        text="Kelp forests grow in cold, nutrient-rich coastal water.")
    should = json.loads(sent(api).content)["query"]["bool"]["should"]
    assert should == [{"term": {"url": "https://docs.example.org/kelp"}},
                      {"term": {"url.keyword": "https://docs.example.org/kelp"}}]


def test_elasticsearch_fetch_of_an_unknown_url_is_left_to_the_web(
    respx_mock: respx.MockRouter,
) -> None:
    respx_mock.post(ES_SEARCH).respond(json=SERVICES["elasticsearch"].empty)
    assert call(make(SERVICES["elasticsearch"]), "fetch", "https://elsewhere.example/") is None


def test_elasticsearch_serves_documents_without_a_url_by_id(
    respx_mock: respx.MockRouter,
) -> None:
    doc = {"_index": "docs", "_id": "otters-3", "_source": {"title": "Sea otters",
                                                           "body": "Otters eat urchins."}}
    api = respx_mock.post(ES_SEARCH).respond(json={"hits": {"hits": [doc]}})
    page = call(make(SERVICES["elasticsearch"]), "fetch", "elasticsearch://docs/otters-3")
    assert page is not None and page.text == "Otters eat urchins."
    assert json.loads(sent(api).content)["query"] == {"ids": {"values": ["otters-3"]}}


def test_elasticsearch_password_never_shows(
    respx_mock: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    respx_mock.post(ES_SEARCH).respond(401, text=f"bad password {KEY}")
    service = SERVICES["elasticsearch"]
    backend = make(service, api_key=None, username="reader", password=KEY)
    assert KEY not in repr(backend.opts)
    message = fails(backend)
    assert KEY not in message and KEY not in caplog.text and "bad password ***" in message


# A real run, and the command line


def test_a_backend_failure_in_a_run_is_an_observation_and_the_run_goes_on(
    respx_mock: respx.MockRouter, tmp_path: Path
) -> None:
    api = respx_mock.get(url__startswith=BRAVE_API)
    api.side_effect = [SERVICES["brave"].refused, httpx.Response(200, json=fixture("brave.json"))]
    model = ScriptedModel([
        '<think>Search.</think>\n{"name": "search", "arguments": {"query": "kelp forest"}}',
        '<think>Again.</think>\n{"name": "search", "arguments": {"query": "kelp forests"}}',
        '<think>Enough.</think>\n{"name": "finish", "arguments": {}}',
        '{"name": "finish", "arguments": {}}\n# Kelp\n\nKelp forests are dense【0†source】.\n',
    ])
    researcher = Researcher(
        Settings(run_store=str(tmp_path / "runs.db"), prefetch=0),
        llm=model, backend=make(SERVICES["brave"]), fetcher=PageFetcher(),
    )
    report = asyncio.run(researcher.run("What are kelp forests?"))
    observations = [m.content for m in model.requests[-1] if m.role == "observation"]
    assert observations[0].startswith('The search for "kelp forest" failed: search backend '
                                      "'brave': the API key was refused (HTTP 401")
    assert observations[1].startswith("【0†Kelp forest - Wikipedia")
    assert api.call_count == 2
    assert report.citations[0].url == "https://en.wikipedia.org/wiki/Kelp_forest"


def test_rumination_backends_lists_each_backend_with_its_options() -> None:
    result = CliRunner().invoke(app, ["backends"])
    assert result.exit_code == 0, result.output
    for name, needle in [
        ("searxng", "url (required; RUMINATION_SEARXNG_URL)"),
        ("wikipedia", "language (default 'en'; RUMINATION_WIKIPEDIA_LANGUAGE)"),
        ("tavily", "api_key (required; RUMINATION_TAVILY_API_KEY) - Tavily API key (else "
                   "TAVILY_API_KEY)"),
        ("brave", "api_key (required; RUMINATION_BRAVE_API_KEY)"),
        ("elasticsearch", "index (required; RUMINATION_ELASTICSEARCH_INDEX)"),
    ]:
        assert f"{name}\t{available_backends()[name][0]}" in result.output
        assert f"    {needle}" in result.output
        assert f"min_interval_s (default 0.0; RUMINATION_{name.upper()}_MIN_INTERVAL_S)" in (
            result.output)
    assert "OpenSearch" in available_backends()["elasticsearch"][0]


def test_a_service_url_must_be_http() -> None:
    settings = Settings(backend="searxng", backends={"searxng": {"url": "searx.test"}})
    with pytest.raises(ConfigError, match="option url: .*expected an http:// or https:// URL"):
        create_backend(settings)
