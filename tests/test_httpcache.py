"""rumination.reading.httpcache: the optional on-disk page cache shared by runs."""

from __future__ import annotations

from email.utils import formatdate
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from rumination.errors import ConfigError, FetchRefused
from rumination.reading.fetch import PageFetcher
from rumination.reading.httpcache import HttpCache, freshness_lifetime
from rumination.settings import Settings

if TYPE_CHECKING:
    from conftest import LocalWeb

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def http_date(seconds: float) -> str:
    return formatdate(seconds, usegmt=True)


@pytest.mark.parametrize(
    ("headers", "lifetime"),
    [
        ({}, 0.0),
        ({"cache-control": "max-age=600"}, 600.0),
        ({"cache-control": "public, max-age=600", "age": "100"}, 500.0),
        ({"cache-control": "private, max-age=60"}, 60.0),  # this is a private cache
        ({"cache-control": "max-age=600, no-store"}, 0.0),
        ({"cache-control": "no-cache, max-age=600"}, 0.0),
        ({"cache-control": "max-age=600", "vary": "*"}, 0.0),
        ({"cache-control": "max-age=junk"}, 0.0),
        ({"cache-control": "max-age=\"30\""}, 30.0),
        ({"date": http_date(NOW), "expires": http_date(NOW + 3600)}, 3600.0),
        ({"date": http_date(NOW), "expires": "0"}, 0.0),  # invalid Expires means expired
        ({"expires": http_date(NOW + 120)}, 120.0),  # no Date: the time it arrived
        ({"cache-control": "max-age=5", "expires": http_date(NOW + 3600)}, 5.0),
        ({"date": http_date(NOW), "last-modified": http_date(NOW - 10_000)}, 1000.0),
        ({"date": http_date(NOW), "last-modified": http_date(NOW + 50)}, 0.0),
    ],
)
def test_freshness_follows_the_response_headers(headers: dict[str, str], lifetime: float) -> None:
    assert freshness_lifetime(headers, NOW) == pytest.approx(lifetime)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


async def test_a_page_is_served_while_fresh_then_dropped(tmp_path: Path) -> None:
    clock = Clock()
    cache = HttpCache(tmp_path / "c.db", max_age_s=86400, clock=clock)
    kept = await cache.store("https://Example.test/a#x", "https://example.test/b",
                             "text/plain", b"body", {"cache-control": "max-age=60"})
    assert kept
    hit = await cache.lookup("https://example.test/a")
    assert hit is not None and (hit.final_url, hit.body) == ("https://example.test/b", b"body")
    clock.now += 61
    assert await cache.lookup("https://example.test/a") is None
    cache.close()


async def test_the_max_age_setting_caps_what_headers_allow(tmp_path: Path) -> None:
    clock = Clock()
    cache = HttpCache(tmp_path / "c.db", max_age_s=30, clock=clock)
    await cache.store("https://e.test/", "https://e.test/", "text/plain", b"x",
                      {"cache-control": "max-age=31536000"})
    clock.now += 29
    assert await cache.lookup("https://e.test/") is not None
    clock.now += 2
    assert await cache.lookup("https://e.test/") is None
    cache.close()


async def test_uncacheable_responses_are_not_kept(tmp_path: Path) -> None:
    cache = HttpCache(tmp_path / "c.db")
    assert not await cache.store("https://e.test/", "https://e.test/", "text/plain", b"x",
                                 {"cache-control": "no-store, max-age=60"})
    assert not await cache.store("https://e.test/", "https://e.test/", "text/plain", b"x", {})
    assert await cache.lookup("https://e.test/") is None
    cache.close()


async def test_the_oldest_pages_go_when_the_cache_is_full(tmp_path: Path) -> None:
    clock = Clock()
    cache = HttpCache(tmp_path / "c.db", max_bytes=2500, clock=clock)
    for name in ("one", "two", "three"):
        clock.now += 1
        await cache.store(f"https://e.test/{name}", f"https://e.test/{name}", "text/plain",
                          b"x" * 1000, {"cache-control": "max-age=600"})
    assert await cache.lookup("https://e.test/one") is None
    assert await cache.lookup("https://e.test/two") is not None
    assert await cache.lookup("https://e.test/three") is not None
    cache.close()


async def test_a_file_that_is_not_a_cache_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ConfigError, match="cannot use the HTTP cache"):
        HttpCache(path)


def test_settings_turn_the_cache_on(tmp_path: Path) -> None:
    assert HttpCache.from_settings(Settings()) is None
    cache = HttpCache.from_settings(
        Settings(http_cache=True, http_cache_path=str(tmp_path / "h.db"), http_cache_max_age_s=9)
    )
    assert cache is not None and cache.max_age_s == 9 and cache.path == tmp_path / "h.db"
    cache.close()


async def test_a_second_run_reads_cached_pages_without_a_request(
    local_web: LocalWeb, tmp_path: Path
) -> None:
    cached = local_web.page("/cached", "<title>Kept</title><p>Kelp keeps.</p>",
                            headers={"Cache-Control": "max-age=600"})
    fresh = local_web.page("/fresh", "<title>Fresh</title><p>Never kept.</p>",
                           headers={"Cache-Control": "no-store"})
    for _run in range(2):
        fetcher = PageFetcher(allow_hosts=["127.0.0.1"], cache=HttpCache(tmp_path / "h.db"))
        try:
            assert (await fetcher.fetch(cached)).title == "Kept"
            assert (await fetcher.fetch(fresh)).title == "Fresh"
        finally:
            await fetcher.aclose()
    assert [path for path, _host in local_web.requests] == ["/cached", "/fresh", "/fresh"]


async def test_cached_pages_still_obey_the_address_rules(
    local_web: LocalWeb, tmp_path: Path
) -> None:
    url = local_web.page("/intranet", "<p>Internal.</p>", headers={"Cache-Control": "max-age=600"})
    allowed = PageFetcher(allow_hosts=["127.0.0.1"], cache=HttpCache(tmp_path / "h.db"))
    await allowed.fetch(url)
    await allowed.aclose()
    public_only = PageFetcher(cache=HttpCache(tmp_path / "h.db"))
    try:
        with pytest.raises(FetchRefused):
            await public_only.fetch(url)
    finally:
        await public_only.aclose()
    assert len(local_web.requests) == 1
