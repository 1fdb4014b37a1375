"""The run store: every turn committed; interrupted and killed runs resume."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import SigkillAfterTurns
from typer.testing import CliRunner

from rumination import LLMUnavailable, Researcher, Settings, UsageError
from rumination.cli import app
from rumination.llm.client import Completion
from rumination.models import Message
from rumination.reading.fetch import PageFetcher
from rumination.search_backends.local import LocalCorpusBackend
from rumination.store.run_store import (
    FINISHED,
    INTERRUPTED,
    MIGRATIONS,
    POSTGRES_MIGRATIONS,
    RunStore,
)
from rumination.testing import SimulatorConfig, SimulatorModel, SimulatorServer, simulate


class DiesAfter:
    """The simulator, until its server 'goes away' at request k."""

    model = "sim"

    def __init__(self, k: int) -> None:
        self.k, self.calls, self.inner = k, 0, SimulatorModel()

    async def chat(self, messages: list[Message], *, max_tokens: int, on_delta: Any = None
                   ) -> Completion:  # fmt: skip
        self.calls += 1
        if self.calls >= self.k:
            raise LLMUnavailable("http://127.0.0.1:1/v1", "ConnectError")
        return await self.inner.chat(messages, max_tokens=max_tokens)

    async def max_model_len(self) -> int | None:
        return None

    async def aclose(self) -> None:
        return None


def researcher(store: RunStore, corpus_db: Path, model: Any, **settings: Any) -> Researcher:
    return Researcher(
        Settings(corpus=str(corpus_db), api_key="sk-secret", **settings),
        llm=model,
        backend=LocalCorpusBackend(corpus_db),
        fetcher=PageFetcher(),
        store=store,
    )


def test_migrations_create_a_versioned_schema_and_refuse_newer(store_url: str) -> None:
    store = RunStore(store_url)
    assert store.schema_version() == len(MIGRATIONS) == len(POSTGRES_MIGRATIONS)
    store.close()
    store = RunStore(store_url)
    assert store.schema_version() == len(MIGRATIONS)  # reopening changes nothing
    with store.db.transaction() as tx:
        tx.execute("INSERT INTO schema_version VALUES (99)")
    with pytest.raises(UsageError, match="newer"):
        RunStore(store_url)
    if store.db.dialect == "sqlite":
        assert store.db.query("PRAGMA journal_mode")[0][0] == "wal"


@pytest.mark.parametrize(
    ("target", "needle"),
    [
        ("mysql://h/db", "use sqlite:///PATH or postgresql://"),
        ("postgresql://u:hunter2@127.0.0.1:1/db", "cannot open run store postgresql://u:***@"),
    ],
)
def test_unusable_store_urls_are_usage_errors_without_passwords(target: str, needle: str) -> None:
    with pytest.raises(UsageError, match=re.escape(needle)) as caught:
        RunStore(target)
    assert "hunter2" not in str(caught.value)


def test_sqlite_urls_follow_sqlalchemy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    RunStore("sqlite:///relative.db").close()
    RunStore(f"sqlite:///{tmp_path}/absolute.db").close()
    assert (tmp_path / "relative.db").is_file() and (tmp_path / "absolute.db").is_file()


def test_a_version_1_store_is_upgraded_in_place(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "runs.db")
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    db.executescript(MIGRATIONS[0])
    db.execute("INSERT INTO schema_version VALUES (1)")
    db.execute(
        "INSERT INTO runs VALUES ('old', 'q', 'm', 'b', 'rumination', '{}', 'finished',"
        " '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00', NULL)"
    )
    db.execute("INSERT INTO turns VALUES ('old', 0, 'text', '', NULL, 'obs', NULL, 5, 6, 1.0, 0.1)")
    db.commit()
    store = RunStore(tmp_path / "runs.db")
    assert store.schema_version() == len(MIGRATIONS)
    [turn] = store.turns("old")
    assert turn.usage.prompt_tokens == 5 and turn.usage.cached_prompt_tokens == 0


def test_every_turn_is_stored_and_the_api_key_is_not(store_url: str, corpus_db: Path) -> None:
    store = RunStore(store_url)
    report = asyncio.run(researcher(store, corpus_db, SimulatorModel()).run("otters and kelp?"))
    record = store.get_run(report.run_id)
    assert record.status == FINISHED and record.turns == report.turns
    assert "sk-secret" not in record.settings_json
    assert [t.index for t in store.turns(report.run_id)] == list(range(report.turns))
    stored = store.report(report.run_id)
    assert stored is not None and stored.model_dump_json() == report.model_dump_json()
    assert [s.source_id for s in store.sources(report.run_id)] == [
        s.source_id for s in report.sources
    ]


def test_an_interrupted_run_resumes_with_the_same_ids(store_url: str, corpus_db: Path) -> None:
    store = RunStore(store_url)
    question = "How do sea otters help kelp forests?"
    full = asyncio.run(researcher(store, corpus_db, SimulatorModel()).run(question))
    with pytest.raises(LLMUnavailable):
        asyncio.run(researcher(store, corpus_db, DiesAfter(4)).run(question))
    broken = store.list_runs()[0]
    assert broken.status == INTERRUPTED and broken.turns == 3
    resumed = asyncio.run(researcher(store, corpus_db, SimulatorModel()).resume(broken.run_id))
    assert resumed.run_id == broken.run_id
    assert [t.index for t in store.turns(broken.run_id)] == list(range(full.turns))
    assert [(s.source_id, s.url) for s in resumed.sources] == [
        (s.source_id, s.url) for s in full.sources
    ]
    assert [c.source_id for c in resumed.citations] == [c.source_id for c in full.citations]
    assert store.get_run(broken.run_id).status == FINISHED


def test_resuming_an_unknown_run_is_a_usage_error(store_url: str, corpus_db: Path) -> None:
    store = RunStore(store_url)
    with pytest.raises(UsageError, match="no run"):
        asyncio.run(researcher(store, corpus_db, SimulatorModel()).resume("nope"))


def test_sigkill_mid_run_then_resume_from_the_cli(
    tmp_path: Path,
    store_url: str,
    corpus_db: Path,
    sigkill_after_turns: SigkillAfterTurns,
) -> None:
    store_path = store_url
    env = {**os.environ, "RUMINATION_STORE_URL": store_path, "RUMINATION_RETRIES": "0"}
    config = SimulatorConfig(model="sim", latency_per_token_s=0.004)
    with SimulatorServer(simulate, config) as server:
        sigkill_after_turns(
            [
                "research",
                "How do otters help kelp?",
                "--llm-url",
                server.url,
                "--model",
                "sim",
                "--corpus",
                str(corpus_db),
            ],
            env,
            store_path,
            3,
        )
        store = RunStore(store_path)
        run = store.list_runs()[0]
        assert run.status == "running" and run.turns >= 3  # killed: no chance to say so
        kept = [(s.source_id, s.url) for s in store.sources(run.run_id)]
        out = tmp_path / "report.json"
        result = CliRunner().invoke(app, ["runs", "resume", run.run_id, "--out", str(out),
                                          "--format", "json", "--store", store_path])
    assert result.exit_code == 0, result.stderr
    report = json.loads(out.read_text(encoding="utf-8"))
    turns = store.turns(run.run_id)
    assert [t.index for t in turns] == list(range(len(turns))) == list(range(report["turns"]))
    assert [(s["source_id"], s["url"]) for s in report["sources"]][: len(kept)] == kept
    assert store.get_run(run.run_id).status == FINISHED
    assert report["citations"]


def test_runs_list_and_show(store_url: str, corpus_db: Path, monkeypatch: pytest.MonkeyPatch
                            ) -> None:  # fmt: skip
    store = RunStore(store_url)
    report = asyncio.run(researcher(store, corpus_db, SimulatorModel()).run("otters?"))
    monkeypatch.setenv("RUMINATION_STORE_URL", store_url)
    listed = CliRunner().invoke(app, ["runs", "list"])
    assert listed.exit_code == 0 and listed.stdout.startswith(f"{report.run_id}\tfinished\t")
    shown = CliRunner().invoke(app, ["runs", "show", report.run_id])
    assert '"name":"search"' in shown.stdout and f"sources: {len(report.sources)}" in shown.stdout
    missing = CliRunner().invoke(app, ["runs", "show", "nope"])
    assert missing.exit_code == 2 and "no run" in missing.stderr


def test_runs_export_writes_the_whole_record(
    tmp_path: Path, store_url: str, corpus_db: Path
) -> None:
    store = RunStore(store_url)
    report = asyncio.run(researcher(store, corpus_db, SimulatorModel()).run("otters?"))
    out = tmp_path / "export.json"
    result = CliRunner().invoke(
        app, ["runs", "export", report.run_id, "--out", str(out), "--store", store_url]
    )
    assert result.exit_code == 0, result.stderr
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["status"] == "finished" and document["settings"]["api_key"] in (None, "***")
    assert len(document["turns"]) == report.turns
    assert document["turns"][0]["tool_call"]["name"] == "search"
    assert document["report"]["run_id"] == report.run_id


def test_a_store_password_is_never_recorded() -> None:
    settings = Settings(store_url="postgresql://team:hunter2@db.internal:5432/runs")
    saved = settings.public_json()
    assert "hunter2" not in saved and "postgresql://team:***@db.internal:5432/runs" in saved
    assert Settings.load_saved(saved).store_url is None  # the current configuration decides


def test_a_queued_run_is_claimed_once_and_listed_oldest_first(store_url: str) -> None:
    store = RunStore(store_url)
    other = RunStore(store_url)  # a second service sharing the store
    try:
        for run_id in ("q1", "q2"):
            store.create_run(run_id, "a question", "m", "local", "rumination", "{}", "queued")
        assert [r.run_id for r in other.runs_with_status("queued")] == ["q1", "q2"]
        assert store.claim_queued("q1") is True
        assert other.claim_queued("q1") is False  # taken: never run twice
        assert store.get_run("q1").status == "running"
        store.set_status("q2", "cancelled")
        assert other.claim_queued("q2") is False
        assert other.runs_with_status("queued") == []
    finally:
        store.close()
        other.close()
