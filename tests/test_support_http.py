"""The support check end to end over HTTP: the protocol simulator writes some unsupported
citations, the run checks every cited statement, every format carries the verdicts."""

from __future__ import annotations

import asyncio
import json

import jsonschema
import pytest

from rumination.agent.researcher import Researcher
from rumination.agent.writer import run_write
from rumination.models import Report
from rumination.reports import render_report, report_schema
from rumination.settings import Settings
from rumination.testing import SimulatorConfig, SimulatorServer, with_unsupported

QUESTION = "How well do air-source heat pumps perform in cold climates?"


def run(policy: str, mode: str = "rumination", unsupported: int = 3, unsure: int = 0) -> Report:
    responder = with_unsupported(unsupported, unsure)
    with SimulatorServer(responder, SimulatorConfig(model="sim")) as server:
        settings = Settings(llm_url=server.url, model="sim", keep_runs=False, mode=mode,
                            unsupported_citations=policy)  # type: ignore[arg-type]
        if mode == "write":
            return asyncio.run(run_write(QUESTION, settings))
        return asyncio.run(Researcher(settings).run(QUESTION))


def test_every_verdict_reaches_every_format() -> None:
    report = run("flag", unsure=2)
    verdicts = [s.verdict for s in report.statements]
    assert verdicts.count("unsupported") == 3 and verdicts.count("unsure") == 2
    assert verdicts.count("supported") >= 10
    assert [s.action for s in report.statements if s.verdict == "unsupported"] == ["flagged"] * 3
    f = report.figures
    assert f is not None and f.citation_accuracy is not None
    assert f.statements_unsupported == 3 and f.citation_accuracy < 1.0
    assert f.effective_citations == f.statements_supported
    data = json.loads(render_report(report, "json"))
    jsonschema.Draft202012Validator(report_schema()).validate(data)
    assert {s["verdict"] for s in data["statements"]} == {"supported", "unsupported", "unsure"}
    assert {c["support"]["verdict"] for c in data["citations"]} >= {"supported", "unsupported"}
    markdown = render_report(report, "md")
    assert markdown.count("\n- [") >= 3 and "### Citations not supported" in markdown
    html = render_report(report, "html")
    assert html.count('class="cite verdict-unsupported flagged"') == 3
    assert html.count('class="cite verdict-unsure"') == 2


def test_drop_removes_the_unsupported_references() -> None:
    flagged, dropped = run("flag"), run("drop")
    assert flagged.figures is not None and dropped.figures is not None
    assert dropped.figures.citations == flagged.figures.citations - 3
    assert sum("removed citation" in w for w in dropped.warnings) == 3
    assert all(s.occurrence is None for s in dropped.statements if s.action == "dropped")
    json.loads(render_report(dropped, "json"))


@pytest.mark.parametrize("mode", ["rumination", "write"])
def test_a_faithful_simulator_run_is_fully_supported(mode: str) -> None:
    report = run("flag", mode=mode, unsupported=0)
    assert report.figures is not None
    assert report.figures.citation_accuracy == 1.0, [
        (s.statement, s.reason) for s in report.statements if s.verdict != "supported"
    ]
