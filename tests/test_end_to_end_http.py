"""Real HTTP: the vLLM-compatible simulator server on 127.0.0.1 and the real LLM client."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from rumination import Researcher, Settings
from rumination.jobs.demo import run_demo
from rumination.reports.render import render_report
from rumination.testing import SimulatorServer, scripted

FIXTURES = Path(__file__).parent / "fixtures"
REPORT_KEYS = {
    "question",
    "answer_markdown",
    "citations",
    "sources",
    "turns",
    "usage",
    "warnings",
    "run_id",
    "model",
    "mode",
    "figures",
}


def tool_calls(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool calls the client sent back to the server as assistant messages, in order."""
    final = requests[-1]["messages"]
    return [
        json.loads(m["content"].rsplit("</think>", 1)[-1].strip().strip("`").removeprefix("json"))
        for m in final
        if m["role"] == "assistant"
    ]


def test_scripted_transcript_over_http_produces_exactly_its_calls(corpus_db: Path) -> None:
    texts = json.loads((FIXTURES / "transcript.json").read_text(encoding="utf-8"))
    with SimulatorServer(scripted(texts)) as server:
        settings = Settings(
            llm_url=server.url, model="glm-z1-rumination-simulator", corpus=str(corpus_db)
        )
        report = asyncio.run(Researcher(settings).run("How do sea otters help kelp forests?"))
    requests = server.requests
    assert len(requests) == len(texts)
    sent = tool_calls(requests)
    expected = [
        json.loads(t.rsplit("</think>", 1)[-1].strip().strip("`").removeprefix("json"))
        for t in texts[:-1]
    ]
    assert sent == expected
    roles = [m["role"] for m in requests[-1]["messages"]]
    assert roles.count("observation") == 5 and roles[0] == "user"
    stop = ["<|observation|>", "<|user|>", "<|endoftext|>"]
    assert all(r["stream"] is True and r["stop"] == stop for r in requests)
    data = json.loads(render_report(report, "json"))
    assert set(data) >= REPORT_KEYS
    assert set(data["usage"]) == {"prompt_tokens", "completion_tokens", "cached_prompt_tokens",
                                  "estimated"}
    assert data["usage"]["estimated"] is False  # the simulator reports usage
    assert data["usage"]["prompt_tokens"] > 0
    assert all(set(c) == {"number", "source_id", "url", "title", "support"}
               for c in data["citations"])
    assert all(set(s) == {"source_id", "url", "title", "fetched_at", "rendered"}
               for s in data["sources"])
    assert data["mode"] == "rumination" and data["turns"] == 6


def test_demo_over_http_cites_five_distinct_observed_sources() -> None:
    report = asyncio.run(run_demo())
    observed = {s.source_id for s in report.sources if s.fetched_at is not None}
    cited = {c.source_id for c in report.citations}
    assert len(cited) >= 5
    assert cited <= observed
    markdown = render_report(report, "md")
    for citation in report.citations:
        assert f"{citation.number}. [{citation.title}]({citation.url})" in markdown
    assert "SIMULATED" in markdown
