"""Several endpoints: two simulator servers on 127.0.0.1, one of them killed mid-batch."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rumination import Researcher, Settings
from rumination import cli as cli_mod
from rumination.errors import LLMUnavailable
from rumination.llm.client import ChatModel, LLMClient
from rumination.llm.endpoints import EndpointPool
from rumination.models import Message
from rumination.testing import SimulatorServer, simulate

FINISH = '<think>done</think>{"name": "finish", "arguments": {}}'
QUESTION = [Message(role="user", content="How do sea otters help kelp forests?")]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def servers() -> Iterator[list[SimulatorServer]]:
    started = [SimulatorServer(lambda m: FINISH).start() for _ in range(2)]
    yield started
    for server in started:
        server.stop()


def make_pool(urls: list[str], **kwargs: object) -> EndpointPool:
    def client(url: str) -> ChatModel:
        return LLMClient(url, "glm-z1-rumination-simulator", retries=0)

    return EndpointPool(urls, client, **kwargs)  # type: ignore[arg-type]


def test_runs_spread_over_endpoints_and_stick_to_theirs(servers: list[SimulatorServer]) -> None:
    a, b = servers

    async def main() -> list[str]:
        async with make_pool([a.url, b.url]) as pool:
            async with pool.lease() as first, pool.lease() as second:
                assert [e.in_flight for e in pool.endpoints] == [1, 1]
                for _ in range(3):
                    await first.chat(QUESTION, max_tokens=64)
                    await second.chat(QUESTION, max_tokens=64)
                urls = [first.url, second.url]
            assert [e.in_flight for e in pool.endpoints] == [0, 0]
            async with pool.lease() as third:  # both idle again: the first URL wins the tie
                urls.append(third.url)
            return urls

    assert asyncio.run(main()) == [a.url, b.url, a.url]
    assert len(a.requests) == len(b.requests) == 3  # each run's turns all went to one server


def test_endpoint_killed_mid_batch_runs_finish_on_the_other(
    servers: list[SimulatorServer],
) -> None:
    a, b = servers

    async def run(pool: EndpointPool, turns: int, killed: asyncio.Event) -> tuple[str, int]:
        async with pool.lease() as llm:
            start = llm.url
            for turn in range(turns):
                if turn == 1:
                    await killed.wait()
                await llm.chat(QUESTION, max_tokens=64)
            return start, llm.failovers

    async def main() -> tuple[list[tuple[str, int]], EndpointPool]:
        pool = make_pool([a.url, b.url], cooldown_s=60)
        killed = asyncio.Event()
        first = [asyncio.create_task(run(pool, 3, killed)) for _ in range(4)]
        await asyncio.sleep(0.2)  # every run has done its first turn
        await asyncio.to_thread(a.stop)
        killed.set()
        results = await asyncio.gather(*first)
        later = [await run(pool, 2, killed) for _ in range(3)]
        await pool.aclose()
        return results + later, pool

    results, pool = asyncio.run(main())
    starts = [start for start, _ in results]
    assert starts[:4].count(a.url) == 2 and starts[:4].count(b.url) == 2  # spread evenly
    assert [f for s, f in results[:4] if s == a.url] == [1, 1]  # moved once, mid-run
    assert starts[4:] == [b.url] * 3  # A rests: new runs go to B
    assert len(a.requests) == 2  # the first turns of the two runs that started there
    assert len(b.requests) == 2 * 3 + 2 * 2 + 3 * 2
    assert pool.is_down(pool.endpoints[0]) and pool.endpoints[0].failures >= 1


def test_a_rested_endpoint_is_tried_again_after_its_cooldown(
    servers: list[SimulatorServer],
) -> None:
    a, b = servers
    port = int(a.url.rsplit(":", 1)[1].split("/")[0])
    clock = Clock()

    async def main() -> list[str]:
        nonlocal a
        async with make_pool([a.url, b.url], cooldown_s=30, clock=clock) as pool:
            a.stop()
            async with pool.lease() as llm:  # A fails its health check: B
                await llm.chat(QUESTION, max_tokens=64)
                got = [llm.url]
            a = SimulatorServer(lambda m: FINISH, port=port).start()  # A is back
            servers[0] = a
            clock.now += 29
            async with pool.lease() as llm:  # still resting
                got.append(llm.url)
            clock.now += 2
            async with pool.lease() as llm:  # cooldown over, healthy again: A
                await llm.chat(QUESTION, max_tokens=64)
                got.append(llm.url)
            return got

    assert asyncio.run(main()) == [b.url, b.url, a.url]
    assert len(a.requests) == 1


def test_all_endpoints_down_names_every_url(servers: list[SimulatorServer]) -> None:
    a, b = servers

    async def main() -> None:
        async with make_pool([a.url, b.url]) as pool, pool.lease() as llm:
            a.stop()
            b.stop()
            await llm.chat(QUESTION, max_tokens=64)

    with pytest.raises(LLMUnavailable) as info:
        asyncio.run(main())
    assert a.url in str(info.value) and b.url in str(info.value)
    assert info.value.exit_code == 3


def test_a_research_run_over_a_lease(corpus_db: Path) -> None:
    with SimulatorServer(simulate) as a, SimulatorServer(simulate) as b:
        settings = Settings(llm_url=[a.url, b.url], model="glm-z1-rumination-simulator",
                            corpus=str(corpus_db), keep_runs=False, retries=0)  # fmt: skip

        async def main() -> str:
            async with EndpointPool.from_settings(settings) as pool, pool.lease() as llm:
                report = await Researcher(settings, llm=llm).run("How do sea otters help kelp?")
                return report.answer_markdown

        answer = asyncio.run(main())
    assert answer and len(a.requests) > 1 and b.requests == []


def test_settings_take_several_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().llm_urls == ["http://127.0.0.1:8000/v1"]
    assert Settings(llm_url=["http://a/v1", "http://b/v1"]).llm_urls == ["http://a/v1", "http://b/v1"]
    monkeypatch.setenv("RUMINATION_LLM_URL", "http://a/v1, http://b/v1")
    settings = Settings.load()
    assert settings.llm_urls == ["http://a/v1", "http://b/v1"]
    assert Settings.load(llm_url="http://c/v1").llm_urls == ["http://c/v1"]  # a flag wins
    assert EndpointPool.from_settings(settings, check_health=False).urls == settings.llm_urls


def test_cli_llm_url_may_be_repeated(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Settings] = []

    class Stop(Exception):
        pass

    class Capture:
        def __init__(self, settings: Settings, **kwargs: object) -> None:
            seen.append(settings)
            raise Stop

    monkeypatch.setattr("rumination.agent.sync.Researcher", Capture)
    runner = CliRunner()
    runner.invoke(app_args := cli_mod.app, ["research", "q", "--llm-url", "http://a/v1"])
    runner.invoke(app_args, ["research", "q", "--llm-url", "http://a/v1", "--llm-url", "http://b/v1"])
    assert seen[0].llm_url == "http://a/v1"
    assert seen[1].llm_urls == ["http://a/v1", "http://b/v1"]


def test_a_run_id_picks_the_same_endpoint_in_every_process() -> None:
    urls = [f"http://gpu{i}:8000/v1" for i in range(4)]

    def pool() -> EndpointPool:  # each worker builds its own pool, in its own order
        return make_pool(list(reversed(urls)) if len(made) % 2 else urls, check_health=False)

    made: list[EndpointPool] = []

    async def endpoint_for(run_id: str) -> str:
        made.append(pool())
        async with made[-1].lease(run_id) as llm:
            return llm.url

    async def main() -> tuple[list[str], list[str]]:
        ids = [f"run{i:04d}" for i in range(200)]
        return [await endpoint_for(r) for r in ids], [await endpoint_for(r) for r in ids]

    first, again = asyncio.run(main())
    assert first == again  # another process, another URL order: the same choice
    shares = [first.count(url) / len(first) for url in urls]
    assert all(0.15 < share < 0.35 for share in shares), shares  # spread about evenly


def test_a_dead_endpoint_moves_only_its_own_runs() -> None:
    urls = [f"http://gpu{i}:8000/v1" for i in range(3)]
    clock = Clock()

    async def main() -> tuple[dict[str, str], dict[str, str]]:
        pool = make_pool(urls, check_health=False, clock=clock)
        ids = [f"run{i}" for i in range(60)]
        before = {}
        for run_id in ids:
            async with pool.lease(run_id) as llm:
                before[run_id] = llm.url
        pool.mark_down(pool.endpoints[0], "gone")
        after = {}
        for run_id in ids:
            async with pool.lease(run_id) as llm:
                after[run_id] = llm.url
        return before, after

    before, after = asyncio.run(main())
    moved = {r for r in before if before[r] != after[r]}
    assert moved == {r for r in before if before[r] == urls[0]} and moved
    assert all(after[r] != urls[0] for r in before)
