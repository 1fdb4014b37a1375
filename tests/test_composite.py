"""Composite backends: fallback (in order) and merge (reciprocal rank fusion), with fakes."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest

import rumination.agent.backends
from rumination.agent.backends import SearchBackend, available_backends
from rumination.errors import BackendError, ConfigError, UsageError
from rumination.models import Page, SearchHit
from rumination.search_backends.composite import (
    FallbackBackend,
    MergeBackend,
    reciprocal_rank_fusion,
)
from rumination.settings import Settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeBackend:
    """An in-memory child: fixed hits and pages, or a BackendError for everything."""

    def __init__(
        self,
        name: str,
        urls: list[str] | None = None,
        *,
        error: str | None = None,
        pages: dict[str, Page] | None = None,
        close_error: Exception | None = None,
    ) -> None:
        self.name = name
        self.hits = [
            SearchHit(title=f"{name}: {url}", url=url, snippet=f"from {name}") for url in urls or []
        ]
        self.error = error
        self.pages = pages or {}
        self.close_error = close_error
        self.searches: list[tuple[str, int, str | None]] = []
        self.fetches: list[str] = []
        self.closed = 0

    async def search(
        self, query: str, *, limit: int, language: str | None = None
    ) -> list[SearchHit]:
        self.searches.append((query, limit, language))
        if self.error:
            raise BackendError(self.name, self.error)
        return self.hits[:limit]

    async def fetch(self, url: str) -> Page | None:
        self.fetches.append(url)
        if self.error:
            raise BackendError(self.name, self.error)
        return self.pages.get(url)

    async def aclose(self) -> None:
        self.closed += 1
        if self.close_error:
            raise self.close_error


def urls(hits: list[SearchHit]) -> list[str]:
    return [hit.url for hit in hits]


def page(url: str) -> Page:
    return Page(url=url, title="t", text="body")


# ---- fallback ---------------------------------------------------------------------------------


async def test_fallback_returns_the_first_non_empty_result_in_order() -> None:
    empty, second, third = FakeBackend("a"), FakeBackend("b", ["u://b1"]), FakeBackend("c", ["u://c"])
    fallback = FallbackBackend([empty, second, third])
    hits = await fallback.search("kelp", limit=5, language="en")
    assert urls(hits) == ["u://b1"]
    assert empty.searches == second.searches == [("kelp", 5, "en")]
    assert third.searches == []
    assert isinstance(fallback, SearchBackend)


async def test_fallback_skips_a_failing_backend_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken, working = FakeBackend("a", error="HTTP 503"), FakeBackend("b", ["u://b"])
    with caplog.at_level(logging.WARNING):
        hits = await FallbackBackend([broken, working]).search("q", limit=3)
    assert urls(hits) == ["u://b"]
    assert "HTTP 503" in caplog.text


async def test_fallback_lists_every_reason_when_all_fail() -> None:
    fallback = FallbackBackend([FakeBackend("a", error="timed out"), FakeBackend("b", error="403")])
    with pytest.raises(BackendError) as caught:
        await fallback.search("q", limit=3)
    assert str(caught.value) == (
        "search backend 'fallback': every backend failed: "
        "search backend 'a': timed out; search backend 'b': 403"
    )


async def test_fallback_with_nothing_found_is_empty_not_an_error() -> None:
    assert await FallbackBackend([FakeBackend("a"), FakeBackend("b")]).search("q", limit=3) == []
    mixed = FallbackBackend([FakeBackend("a", error="down"), FakeBackend("b")])
    assert await mixed.search("q", limit=3) == []  # one backend answered: there is nothing


async def test_fetch_asks_each_child_in_order_until_one_holds_the_page() -> None:
    url = "corpus://t/kelp"
    web, broken, corpus, later = (
        FakeBackend("web"), FakeBackend("x", error="down"),
        FakeBackend("local", pages={url: page(url)}), FakeBackend("late", pages={url: page("no")}),
    )
    for composite in (FallbackBackend([web, broken, corpus, later]), MergeBackend([web, corpus])):
        fetched = await composite.fetch(url)
        assert fetched is not None and fetched.url == url
    assert later.fetches == []
    assert await FallbackBackend([web]).fetch("https://elsewhere.example/") is None
    with pytest.raises(BackendError, match="every backend failed"):
        await FallbackBackend([broken]).fetch(url)


# ---- merge ------------------------------------------------------------------------------------


def test_reciprocal_rank_fusion_on_a_hand_computed_example() -> None:
    a = FakeBackend("A", ["u://a", "u://b", "u://c"]).hits
    b = FakeBackend("B", ["u://b", "u://c", "u://d"]).hits
    fused = reciprocal_rank_fusion([a, b], k=60)
    # a: 1/61; b: 1/62 + 1/61; c: 1/63 + 1/62; d: 1/63
    assert [(hit.url, score) for hit, score in fused] == [
        ("u://b", 1 / 62 + 1 / 61),
        ("u://c", 1 / 63 + 1 / 62),
        ("u://a", 1 / 61),
        ("u://d", 1 / 63),
    ]
    # b and c are both ranked higher by B: their title and snippet come from B
    assert [hit.title for hit, _ in fused] == ["B: u://b", "B: u://c", "A: u://a", "B: u://d"]
    # with k = 0 one first place (a: 1/1) beats two middling places (c: 1/3 + 1/2)
    fused_k0 = reciprocal_rank_fusion([a, b], k=0)
    assert [(hit.url, score) for hit, score in fused_k0] == [
        ("u://b", 1 / 2 + 1 / 1),
        ("u://a", 1 / 1),
        ("u://c", 1 / 3 + 1 / 2),
        ("u://d", 1 / 3),
    ]


async def test_merge_returns_the_fused_top_limit() -> None:
    a = FakeBackend("A", ["u://a", "u://b", "u://c"])
    b = FakeBackend("B", ["u://b", "u://c", "u://d"])
    hits = await MergeBackend([a, b]).search("q", limit=3, language="de")
    assert urls(hits) == ["u://b", "u://c", "u://a"]
    assert a.searches == b.searches == [("q", 3, "de")]
    await MergeBackend([a, b], child_limit=10).search("q", limit=3)
    assert a.searches[-1] == ("q", 10, None)


def test_fusion_recognises_one_document_by_its_normalized_url() -> None:
    # normalize_url lowercases scheme and host, drops default ports and fragments, and writes an
    # empty path as "/". It keeps http and https apart, and "/x" apart from "/x/".
    first = FakeBackend("A", ["https://Example.org/x#intro", "https://example.org"]).hits
    second = FakeBackend(
        "B",
        ["https://example.org:443/x", "https://example.org/", "http://example.org/x",
         "https://example.org/x/"],
    ).hits
    fused = reciprocal_rank_fusion([first, second], k=60)
    assert urls([hit for hit, _ in fused]) == [
        "https://Example.org/x#intro",  # 1/61 + 1/61, kept as A wrote it (A ranked it first)
        "https://example.org",  # 1/62 + 1/62
        "http://example.org/x",
        "https://example.org/x/",
    ]
    repeated = FakeBackend("A", ["u://a", "u://a#again", "u://b"]).hits
    assert [s for _, s in reciprocal_rank_fusion([repeated])] == pytest.approx([1 / 61, 1 / 63])


class Rendezvous(FakeBackend):
    """Answers only once its partner has started too: a sequential merge would never finish."""

    def __init__(self, name: str, mine: asyncio.Event, partner: asyncio.Event) -> None:
        super().__init__(name, [f"u://{name}"])
        self.mine, self.partner = mine, partner

    async def search(
        self, query: str, *, limit: int, language: str | None = None
    ) -> list[SearchHit]:
        self.mine.set()
        await self.partner.wait()
        return await super().search(query, limit=limit, language=language)


async def test_merge_queries_its_backends_concurrently() -> None:
    first, second = asyncio.Event(), asyncio.Event()
    merge = MergeBackend([Rendezvous("a", first, second), Rendezvous("b", second, first)])
    hits = await asyncio.wait_for(merge.search("q", limit=5), timeout=10)
    assert urls(hits) == ["u://a", "u://b"]


async def test_merge_uses_the_backends_that_answered_and_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    merge = MergeBackend([FakeBackend("a", error="quota exceeded"), FakeBackend("b", ["u://b"])])
    with caplog.at_level(logging.WARNING, logger="rumination.search_backends.composite"):
        hits = await merge.search("q", limit=5)
    assert urls(hits) == ["u://b"]
    assert "search backend 'a': quota exceeded" in caplog.text


async def test_merge_fails_with_every_reason_when_all_fail() -> None:
    merge = MergeBackend([FakeBackend("a", error="down"), FakeBackend("b", error="429")])
    with pytest.raises(BackendError, match="every backend failed: .*'a': down; .*'b': 429"):
        await merge.search("q", limit=5)


async def test_merge_raises_a_framework_bug_as_it_is() -> None:
    class Buggy(FakeBackend):
        async def search(
            self, query: str, *, limit: int, language: str | None = None
        ) -> list[SearchHit]:
            raise KeyError("bug")

    with pytest.raises(KeyError):
        await MergeBackend([Buggy("a"), FakeBackend("b", ["u://b"])]).search("q", limit=5)


async def test_aclose_closes_every_child_even_when_one_raises() -> None:
    children = [FakeBackend("a", close_error=RuntimeError("stuck")), FakeBackend("b")]
    for composite in (FallbackBackend(children), MergeBackend(children)):
        with pytest.raises(RuntimeError, match="stuck"):
            await composite.aclose()
    assert [child.closed for child in children] == [2, 2]


# ---- building from settings -------------------------------------------------------------------


class FakeRegistry:
    """Entry points for fake leaf backends plus the real composites; records what it made."""

    def __init__(self, leaves: list[str]) -> None:
        self.leaves = leaves
        self.made: dict[str, list[FakeBackend]] = defaultdict(list)

    def _make(self, name: str) -> FakeBackend:
        backend = FakeBackend(name, [f"u://{name}"])
        self.made[name].append(backend)
        return backend

    def _leaf(self, name: str) -> Any:
        return SimpleNamespace(requires="", from_settings=lambda settings: self._make(name))

    def entry_points(self) -> dict[str, Any]:
        points: dict[str, Any] = {
            name: SimpleNamespace(load=lambda name=name: self._leaf(name)) for name in self.leaves
        }
        points["fallback"] = SimpleNamespace(load=lambda: FallbackBackend)
        points["merge"] = SimpleNamespace(load=lambda: MergeBackend)
        return points

    def closes(self) -> dict[str, list[int]]:
        return {name: [b.closed for b in made] for name, made in self.made.items()}


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> FakeRegistry:
    fakes = FakeRegistry(["local", "web", "wiki"])
    monkeypatch.setattr(rumination.agent.backends, "_entry_points", fakes.entry_points)
    return fakes


async def test_from_settings_builds_children_in_the_configured_order(
    registry: FakeRegistry,
) -> None:
    settings = Settings(backend="fallback", backends={"fallback": {"backends": ["web", "local"]}})
    fallback = rumination.agent.backends.create_backend(settings)
    assert isinstance(fallback, FallbackBackend)
    assert [child.name for child in fallback.children] == ["web", "local"]
    assert urls(await fallback.search("q", limit=3)) == ["u://web"]
    await fallback.aclose()
    assert registry.closes() == {"web": [1], "local": [1]}


def test_backend_names_come_as_a_list_or_a_comma_separated_string(
    registry: FakeRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUMINATION_MERGE_BACKENDS", "wiki, local")
    monkeypatch.setenv("RUMINATION_MERGE_RRF_K", "10")
    merge = MergeBackend.from_settings(Settings())
    assert ([c.name for c in merge.children], merge.rrf_k) == (["wiki", "local"], 10)
    cli = Settings(backends={"fallback": {"backends": "local,web"}})
    assert [c.name for c in FallbackBackend.from_settings(cli).children] == ["local", "web"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "backend merge: option backends: Field required"),
        ({"backends": ["local"]}, "backend merge: option backends: List should have at least 2"),
        ({"backends": "local,local"}, "option backends: Value error, lists local more than once"),
        ({"backends": ["local", "web"], "rrf_k": -1}, "option rrf_k"),
    ],
)
def test_bad_merge_options_are_config_errors(
    registry: FakeRegistry, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        MergeBackend.from_settings(Settings(backends={"merge": options}))
    assert registry.made == {}


def test_an_unknown_child_is_a_usage_error_and_earlier_children_are_closed(
    registry: FakeRegistry,
) -> None:
    settings = Settings(backends={"fallback": {"backends": ["local", "nosuch"]}})
    with pytest.raises(UsageError, match="unknown search backend 'nosuch'"):
        FallbackBackend.from_settings(settings)
    assert registry.closes() == {"local": [1]}


async def test_inside_a_running_loop_earlier_children_are_closed_too(
    registry: FakeRegistry,
) -> None:
    settings = Settings(backends={"merge": {"backends": ["local", "web", "nosuch"]}})
    with pytest.raises(UsageError):
        MergeBackend.from_settings(settings)  # agent.py builds backends inside its event loop
    for _ in range(3):
        await asyncio.sleep(0)  # the closing was scheduled on this loop
    assert registry.closes() == {"local": [1], "web": [1]}


@pytest.mark.parametrize(
    ("backends", "cycle"),
    [
        ({"fallback": {"backends": ["fallback"]}}, "fallback -> fallback"),
        (
            {
                "fallback": {"backends": ["local", "merge"]},
                "merge": {"backends": ["web", "fallback"]},
            },
            "fallback -> merge -> fallback",
        ),
    ],
)
def test_a_composite_that_contains_itself_is_refused(
    registry: FakeRegistry, backends: dict[str, Any], cycle: str
) -> None:
    with pytest.raises(ConfigError, match=f"backend fallback contains itself: {cycle}$"):
        FallbackBackend.from_settings(Settings(backends=backends))
    assert all(closed == [1] for closed in registry.closes().values())  # nothing left open


async def test_a_backend_named_twice_is_built_once_and_closed_once(
    registry: FakeRegistry,
) -> None:
    settings = Settings(
        backends={
            "fallback": {"backends": ["merge", "local"]},
            "merge": {"backends": ["local", "wiki"]},
        }
    )
    fallback = FallbackBackend.from_settings(settings)
    merge = fallback.children[0]
    assert isinstance(merge, MergeBackend)
    assert merge.children[0] is fallback.children[1]
    assert {name: len(made) for name, made in registry.made.items()} == {"local": 1, "wiki": 1}
    await fallback.aclose()
    assert registry.closes() == {"local": [1], "wiki": [1]}


def test_rumination_backends_lists_the_composite_options() -> None:
    listed = available_backends()
    assert "backends (required; RUMINATION_FALLBACK_BACKENDS) - backends to try, in order" in (
        listed["fallback"]
    )
    rrf_k = "rrf_k (default 60; RUMINATION_MERGE_RRF_K)"
    assert any(line.startswith(rrf_k) for line in listed["merge"])
