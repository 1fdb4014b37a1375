"""A slow run store holds up the run writing to it, not the other runs in the process: each
turn's checkpoint is written from a worker thread while the event loop goes on."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from rumination import Researcher, Settings
from rumination.models import Source, Turn
from rumination.reading.fetch import PageFetcher
from rumination.search_backends.local import LocalCorpusBackend
from rumination.store.run_store import RunStore
from rumination.testing import SimulatorModel

SLOW_WRITE_S = 0.3


class SlowStore(RunStore):
    """Every checkpoint takes SLOW_WRITE_S, blocking its thread (a distant or busy database)."""

    def save_turn(self, run_id: str, turn: Turn, sources: list[Source]) -> None:
        time.sleep(SLOW_WRITE_S)
        super().save_turn(run_id, turn, sources)


def test_a_slow_store_does_not_stall_another_run(tmp_path: Path, corpus_db: Path) -> None:
    def researcher(store: RunStore | None) -> Researcher:
        settings = Settings(corpus=str(corpus_db), keep_runs=store is not None)
        return Researcher(settings, llm=SimulatorModel(), backend=LocalCorpusBackend(corpus_db),
                          fetcher=PageFetcher(), store=store)

    async def timed(run: Researcher) -> tuple[float, int]:
        started = time.monotonic()
        report = await run.run("How do sea otters help kelp forests?")
        return time.monotonic() - started, report.turns

    async def both() -> tuple[tuple[float, int], tuple[float, int]]:
        slow = timed(researcher(SlowStore(tmp_path / "runs.db")))
        quick = timed(researcher(None))
        return await asyncio.gather(slow, quick)

    (slow_s, slow_turns), (quick_s, quick_turns) = asyncio.run(both())
    assert slow_turns >= 4 and quick_turns >= 4
    assert slow_s >= slow_turns * SLOW_WRITE_S  # every turn of the slow run waited
    # had the writes blocked the loop, the other run would have waited for them too
    assert quick_s < slow_s / 3, (quick_s, slow_s)
