"""The installed service commands: `rumination api` (post a run, read its report) and
`rumination mcp` (what an MCP host sees first: the tool list)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .installkit import SIMULATOR_MODEL, Install, Simulator


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def service_env(user_env: dict[str, str], simulator: Simulator) -> dict[str, str]:
    return {**user_env, "RUMINATION_LLM_URL": simulator.url, "RUMINATION_MODEL": SIMULATOR_MODEL}


@pytest.fixture
def api_url(
    install: Install, service_env: dict[str, str], empty_dir: Path, tmp_path: Path
) -> Iterator[str]:
    port = _free_port()
    log = tmp_path / "api.log"
    with log.open("wb") as log_file:
        proc = subprocess.Popen([str(install.bin / "rumination"), "api", "--port", str(port)],
                                cwd=empty_dir, env=service_env, stdin=subprocess.DEVNULL,
                                stdout=log_file, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                httpx.get(f"{url}/runs", timeout=2).raise_for_status()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the API did not start in 60 s"
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_api_runs_a_posted_question_and_serves_its_report(api_url: str) -> None:
    with httpx.Client(base_url=api_url, timeout=10) as http:
        posted = http.post("/runs", json={"question": "How do sea otters help kelp forests?"})
        assert posted.status_code == 202, posted.text
        run_id = posted.json()["run_id"]
        deadline = time.monotonic() + 90
        while (status := http.get(f"/runs/{run_id}").json()["status"]) in ("queued", "running"):
            assert time.monotonic() < deadline, "the run did not finish in 90 s"
            time.sleep(0.2)
        assert status == "finished"
        report = http.get(f"/runs/{run_id}/report", params={"format": "json"})
        assert report.status_code == 200, report.text
        assert report.json()["citations"]
        assert report.json()["simulated"] is True


def test_mcp_over_stdio_lists_its_tools(
    install: Install, service_env: dict[str, str], empty_dir: Path
) -> None:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    async def tool_names() -> set[str]:
        params = StdioServerParameters(command=str(install.bin / "rumination"), args=["mcp"],
                                       env=service_env, cwd=str(empty_dir))
        async with Client(params, read_timeout_seconds=60) as client:
            return {tool.name for tool in (await client.list_tools()).tools}

    assert asyncio.run(tool_names()) == {"research", "search_runs", "get_report"}
