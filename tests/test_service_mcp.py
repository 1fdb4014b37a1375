"""`rumination mcp` with the SDK's own client: over stdio (the server a subprocess, as an MCP
host starts it) calling `research` on the protocol simulator, and over streamable HTTP."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

from mcp import Client  # noqa: E402
from mcp.client.stdio import StdioServerParameters  # noqa: E402
from servicekit import SIM_MODEL, running_app, simulator  # noqa: E402

from rumination.store.run_store import RunStore  # noqa: E402
from rumination.wording import counts_phrase  # noqa: E402

QUESTION = "How well do air-source heat pumps perform in cold climates?"


def server_environment(tmp_path: Path, llm_url: str) -> dict[str, str]:
    return {
        "RUMINATION_LLM_URL": llm_url, "RUMINATION_MODEL": SIM_MODEL,
        "RUMINATION_BACKEND": "local", "RUMINATION_RUN_STORE": str(tmp_path / "runs.db"),
        "RUMINATION_PREFETCH": "0", "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "PYTHONPATH": os.pathsep.join(sys.path),
    }


def test_research_over_stdio_returns_the_report_with_progress(tmp_path: Path) -> None:
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    async def session(llm_url: str) -> tuple[Any, Any, Any, Any]:
        params = StdioServerParameters(command=sys.executable, args=["-m", "rumination", "mcp"],
                                       env=server_environment(tmp_path, llm_url))
        async with Client(params, read_timeout_seconds=60) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            result = await client.call_tool("research", {"question": QUESTION, "max_turns": 6},
                                            progress_callback=on_progress)
            runs = await client.call_tool("search_runs", {"text": "HEAT PUMPS"})
            run_id = result.structured_content["run_id"]
            report = await client.call_tool("get_report", {"run_id": run_id})
            missing = await client.call_tool("get_report", {"run_id": "nosuchrun"})
            return tools, result, (runs, report), missing

    with simulator() as sim:
        tools, result, (runs, report), missing = asyncio.run(session(sim.url))

    assert tools == {"research", "search_runs", "get_report"}
    assert not result.is_error
    found = result.structured_content
    assert found["question"] == QUESTION and found["model"] == SIM_MODEL
    assert found["citations"] and found["turns"] >= 2
    assert {c["url"] for c in found["citations"]} <= {s["url"] for s in found["sources"]}
    assert found["citations"][0]["url"] in found["report_markdown"]

    messages = [m for _, _, m in progress]
    assert any(m and m.startswith("turn 1: search(") for m in messages), messages
    figures = found["figures"]  # the same counts, in the same words, as every other surface
    assert figures["distinct_sources_cited"] == len(found["citations"])
    assert messages[-1] == "done: " + counts_phrase({
        "citations": figures["citations"], "sources_cited": figures["distinct_sources_cited"],
        "sources": len(found["sources"]), "warnings": len(found["warnings"])})
    assert [d for d, _, _ in progress] == sorted(d for d, _, _ in progress)
    assert progress[-1][0] == progress[-1][1] == 7.0

    listed = runs.structured_content["result"]
    assert [r["run_id"] for r in listed] == [found["run_id"]]
    assert listed[0]["status"] == "finished"
    assert report.content[0].text == found["report_markdown"]
    assert missing.is_error and "no run 'nosuchrun'" in missing.content[0].text
    record = RunStore(tmp_path / "runs.db").get_run(found["run_id"])
    assert record.status == "finished" and record.question == QUESTION


def test_streamable_http_serves_the_tools_behind_the_token(tmp_path: Path) -> None:
    import httpx

    from rumination.service.mcp_server import http_app
    from rumination.settings import Settings

    async def call(url: str) -> Any:
        async with Client(f"{url}/mcp", read_timeout_seconds=30) as client:
            return await client.call_tool("search_runs", {})

    store = RunStore(tmp_path / "runs.db")
    store.create_run("abc123", "An old question", SIM_MODEL, "local", "rumination", "{}")
    settings = Settings.model_validate({"run_store": str(tmp_path / "runs.db")})
    with running_app(http_app(settings, "127.0.0.1", store)) as url:
        listed = asyncio.run(call(url)).structured_content["result"]
    assert [(r["run_id"], r["question"], r["status"]) for r in listed] == [
        ("abc123", "An old question", "running")]

    guarded = settings.model_copy(update={"api_token": "s3cret"})
    with running_app(http_app(guarded, "127.0.0.1", store)) as url:
        refused = httpx.post(f"{url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert refused.status_code == 401
        assert refused.json() == {"error": "missing or wrong bearer token", "status": 401}
        let_in = httpx.post(f"{url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                            headers={"Authorization": "Bearer s3cret"})
        assert let_in.status_code != 401


def test_the_mcp_command_checks_its_options() -> None:
    from typer.testing import CliRunner

    from rumination.cli import app

    bad = CliRunner().invoke(app, ["mcp", "--transport", "sse"])
    assert bad.exit_code == 2
    assert bad.output.strip() == "error: --transport is stdio or http, not 'sse'"
    exposed = CliRunner().invoke(app, ["mcp", "--transport", "http", "--host", "0.0.0.0"])
    assert exposed.exit_code == 2 and "refusing to listen on 0.0.0.0" in exposed.output


def test_a_research_call_the_client_cancels_leaves_the_run_interrupted(tmp_path: Path) -> None:
    from servicekit import Gate

    gate = Gate(free=2)

    async def session(llm_url: str) -> Any:
        params = StdioServerParameters(command=sys.executable, args=["-m", "rumination", "mcp"],
                                       env=server_environment(tmp_path, llm_url))
        async with Client(params, read_timeout_seconds=60) as client:
            call = asyncio.create_task(client.call_tool("research", {"question": QUESTION}))
            store = RunStore(tmp_path / "runs.db")
            deadline = time.monotonic() + 20
            while not (runs := store.list_runs(1)) or runs[0].turns < 2:
                assert time.monotonic() < deadline, "the run never reached its second turn"
                await asyncio.sleep(0.05)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            while store.get_run(runs[0].run_id).status == "running":
                assert time.monotonic() < deadline, "the cancelled run stayed running"
                await asyncio.sleep(0.05)
            return store.get_run(runs[0].run_id)

    with simulator(gate) as sim:
        try:
            record = asyncio.run(session(sim.url))
        finally:
            gate.open()
    assert (record.status, record.turns) == ("interrupted", 2)
