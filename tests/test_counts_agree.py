"""One run's counts are the same numbers under the same words on every surface (issue 21,
item 11): "citations" are the citation marks in the report's text, "sources cited" the
distinct sources they point at, "sources" every source the run saw. The CLI's report line and
figures line, the report's JSON figures, the `finished` event (the `--trace` file and the
API's event stream carry the same records), `GET /runs/{id}`, `runs show` and a batch's
summary all agree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("fastapi")

from servicekit import (  # noqa: E402
    SIM_MODEL,
    read_events,
    running_api,
    service_settings,
    simulator,
)
from typer.testing import CliRunner  # noqa: E402

from rumination.cli import app  # noqa: E402
from rumination.wording import counts_phrase, plural  # noqa: E402

QUESTION = "How well do air-source heat pumps perform in cold climates?"
COUNTED = ("citations", "sources_cited", "sources", "warnings")
runner = CliRunner()


def counts_of(report: dict[str, Any]) -> dict[str, int]:
    """What the report's JSON says: its figures, its source list and its warnings."""
    counts = {"citations": report["figures"]["citations"],
              "sources_cited": report["figures"]["distinct_sources_cited"],
              "sources": len(report["sources"]), "warnings": len(report["warnings"])}
    # the words only mean something if the two numbers differ in this run
    assert counts["citations"] > counts["sources_cited"] > 0, counts
    assert counts["sources_cited"] == len(report["citations"])
    assert counts["citations"] == sum(report["answer_markdown"].count(f"[{c['number']}]")
                                      for c in report["citations"])
    return counts


def assert_api_agrees(url: str, run_id: str, counts: dict[str, int]) -> None:
    run = httpx.get(f"{url}/runs/{run_id}", timeout=10).json()
    assert run["figures"]["citations"] == counts["citations"]
    assert run["figures"]["distinct_sources_cited"] == counts["sources_cited"]
    assert run["sources"] == counts["sources"]


def assert_runs_show_agrees(store: Path, run_id: str, counts: dict[str, int]) -> None:
    shown = runner.invoke(app, ["runs", "show", run_id, "--store", f"sqlite:///{store}"])
    assert shown.exit_code == 0, shown.output
    assert f"sources: {counts['sources']}\n" in shown.stdout
    assert (f"figures: {counts['citations']} citations of {counts['sources_cited']} sources, "
            in shown.stdout)


def test_a_cli_run_gives_one_set_of_counts_on_stderr_in_its_report_events_and_the_api(
    tmp_path: Path,
) -> None:
    store = tmp_path / "runs.db"  # the API's store in service_settings
    out, trace = tmp_path / "r.json", tmp_path / "trace.jsonl"
    with simulator() as sim:
        result = runner.invoke(app, [
            "research", QUESTION, "--llm-url", sim.url, "--model", SIM_MODEL, "--max-turns", "8",
            "--store", f"sqlite:///{store}", "--out", str(out), "--trace", str(trace),
        ])
        assert result.exit_code == 0, result.stderr
        report = json.loads(out.read_text(encoding="utf-8"))
        counts = counts_of(report)
        with running_api(service_settings(tmp_path, sim.url)) as url:
            assert_api_agrees(url, report["run_id"], counts)

    records = [json.loads(line) for line in trace.read_text(encoding="utf-8").splitlines()]
    (finished,) = [r for r in records if r["event"] == "finished"]
    assert {k: finished[k] for k in COUNTED} == counts

    lines = result.stderr.splitlines()
    written = next(line for line in lines if line.startswith("report written"))
    assert written == f"report written to {out}: {counts_phrase(counts)}"
    assert written.endswith(f": {counts['citations']} citations of {counts['sources_cited']} "
                            f"sources, {counts['sources']} sources seen, "
                            f"{plural(counts['warnings'], 'warning')}")
    figures = next(line for line in lines if line.startswith("figures: "))
    assert figures.startswith(f"figures: {counts['citations']} citations of "
                              f"{counts['sources_cited']} sources, "
                              f"{counts['sources'] - counts['sources_cited']} sources seen but "
                              "not cited")
    assert_runs_show_agrees(store, report["run_id"], counts)


def test_an_api_run_gives_the_same_counts_in_its_event_view_report_and_runs_show(
    tmp_path: Path,
) -> None:
    with simulator() as sim, running_api(service_settings(tmp_path, sim.url)) as url, \
            httpx.Client(base_url=url, timeout=30) as client:
        run_id = client.post("/runs", json={"question": QUESTION, "max_turns": 8}).json()["run_id"]
        events = read_events(client, run_id)
        report = client.get(f"/runs/{run_id}/report", params={"format": "json"}).json()
        counts = counts_of(report)
        assert_api_agrees(url, run_id, counts)

    (finished,) = [data for kind, data in events if kind == "finished"]
    assert {k: finished[k] for k in COUNTED} == counts
    assert_runs_show_agrees(tmp_path / "runs.db", run_id, counts)


def test_a_batch_line_and_summary_give_each_report_s_counts(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text("- question: How do heat pumps cope with frost?\n  name: frost\n"
                    f"- question: {QUESTION}\n  name: cold\n", encoding="utf-8")
    out_dir = tmp_path / "out"
    with simulator() as sim:
        result = runner.invoke(app, [
            "batch", str(jobs), "--out-dir", str(out_dir), "--llm-url", sim.url, "--model",
            SIM_MODEL, "--format", "json", "--max-turns", "8",
            "--store", f"sqlite:///{tmp_path / 'runs.db'}",
        ])
    assert result.exit_code == 0, result.output
    summary = {entry["job"]: entry for entry in
               json.loads((out_dir / "summary.json").read_text(encoding="utf-8"))}
    for name in ("frost", "cold"):
        counts = counts_of(json.loads((out_dir / f"{name}.json").read_text(encoding="utf-8")))
        entry = summary[name]
        assert (entry["citations"], entry["sources_cited"]) == (
            counts["citations"], counts["sources_cited"])
        assert (f"finished  {name}  {counts['citations']} citations of "
                f"{counts['sources_cited']} sources, " in result.stdout), result.stdout
