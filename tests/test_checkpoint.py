"""Per-turn checkpoints write only what changed: each source once, again only when it
changes (clicked: fetched_at), and the stored sources still equal the report's."""

from __future__ import annotations

import asyncio
from pathlib import Path

from rumination import Researcher, Settings
from rumination.models import Source, Turn
from rumination.reading.fetch import PageFetcher
from rumination.search_backends.local import LocalCorpusBackend
from rumination.store.run_store import RunStore
from rumination.testing import SimulatorModel


class CountingStore(RunStore):
    written: list[list[int]]

    def save_turn(self, run_id: str, turn: Turn, sources: list[Source]) -> None:
        self.written.append([s.source_id for s in sources])
        super().save_turn(run_id, turn, sources)


def test_each_checkpoint_writes_only_new_or_changed_sources(
    tmp_path: Path, corpus_db: Path
) -> None:
    store = CountingStore(tmp_path / "runs.db")
    store.written = []
    researcher = Researcher(
        Settings(corpus=str(corpus_db)), llm=SimulatorModel(),
        backend=LocalCorpusBackend(corpus_db), fetcher=PageFetcher(), store=store,
    )
    report = asyncio.run(researcher.run("otters and kelp?"))
    stored = store.sources(report.run_id)
    assert [s.model_dump() for s in stored] == [s.model_dump() for s in report.sources]
    clicked = [s for s in report.sources if s.fetched_at is not None]
    assert clicked  # the simulator reads pages
    writes = [source_id for batch in store.written for source_id in batch]
    # every source once when first shown, and once more when first read
    assert len(writes) == len(report.sources) + len(clicked)
    assert sorted(set(writes)) == [s.source_id for s in report.sources]
    assert len(store.written) == report.turns
