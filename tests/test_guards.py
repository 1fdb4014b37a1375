"""A misbehaving model never burns a run: each misbehaviour of the simulator (`--misbehave`)
ends research early, says why, keeps the degenerate text out of the next prompt, and leaves a
report; a run with no cited answer exits 1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rumination import Settings, research
from rumination.agent.guards import ProgressGuard, call_key, guard_for
from rumination.cli import app
from rumination.events import Event
from rumination.llm.runaway import GenerationCut, RunawayGuard, loop_start
from rumination.models import ToolCall, Turn
from rumination.testing.misbehaviour import LOOPED, misbehaving

QUESTION = "How do sea otters help kelp forests?"


# --- the detectors ------------------------------------------------------------------------------


def test_a_repeated_sentence_is_found_where_it_starts() -> None:
    text = "Some reasoning first. " + LOOPED * 12
    found = loop_start(text)
    assert found is not None
    start, period = found
    unit = text[start : start + period]
    assert period == len(LOOPED) and unit in LOOPED * 2  # the sentence, from where it repeats
    assert start <= len("Some reasoning first. ")


@pytest.mark.parametrize("text", [
    " ".join(f"Step {n}: consider case {n * 7 % 113}." for n in range(400)),
    "| a | b |\n|---|---|\n" + "".join(f"| row {n} | {n * n} |\n" for n in range(200)),
    "word " * 50,  # short repetition under the span that counts as a loop
])  # fmt: skip
def test_text_that_only_looks_regular_is_no_loop(text: str) -> None:
    assert loop_start(text) is None


def test_the_guard_cuts_a_stream_within_a_few_hundred_characters_of_the_loop() -> None:
    guard = RunawayGuard(max_tokens=16384)
    fed = 0
    with pytest.raises(GenerationCut) as cut:
        for piece in ["<think>Plan. ", *[LOOPED[i : i + 7] for i in range(0, len(LOOPED), 7)]
                      * 100]:  # fmt: skip
            fed += len(piece)
            guard.feed(piece)
    assert cut.value.reason == "repetition"
    assert cut.value.kept.startswith("<think>Plan.") and len(cut.value.kept) < 90
    assert fed < 1200  # cut early, not at the cap


def test_the_guard_cuts_a_server_that_ignores_max_tokens() -> None:
    guard = RunawayGuard(max_tokens=50)
    with pytest.raises(GenerationCut, match="past the cap of 50"):
        for n in range(200):
            guard.feed(f" step {n} of a long and varied thought")


def test_calls_are_the_same_call_after_normalising() -> None:
    def search(query: str) -> ToolCall:
        return ToolCall(name="search", arguments={"query": query})

    assert call_key(search("Heat pump, cold")) == call_key(search("cold  heat PUMP"))
    assert call_key(search("heat pump")) != call_key(search("heat pumps"))
    assert call_key(ToolCall(name="open", arguments={"url": "Example.org"})) == call_key(
        ToolCall(name="open", arguments={"url": "https://example.org/"}))
    assert call_key(ToolCall(name="finish", arguments={})) is None


def test_a_resumed_run_keeps_its_guard_counts() -> None:
    search = ToolCall(name="search", arguments={"query": "kelp"})
    turns = [Turn(index=0, assistant_text="", tool_call=search),
             Turn(index=1, assistant_text="", tool_call=search,
                  protocol_error="repeated call (first made in turn 0)"),
             Turn(index=2, assistant_text="", tool_call=search,
                  protocol_error="repeated call (first made in turn 0)")]  # fmt: skip
    guard = guard_for(Settings(max_repeated_calls=3), turns)
    assert guard.repeats_in_a_row == 2 and guard.stop() is None
    assert guard.first_made(search, 3) == 0
    stop = guard.stop()
    assert stop is not None and stop.kind == "no_progress"
    assert ProgressGuard(3, 2).stop() is None


# --- each misbehaviour, over HTTP ---------------------------------------------------------------


def run_misbehaving(kind: str, start_simulator: Any, corpus_db: Path, tmp_path: Path,
                    **settings: Any) -> tuple[Any, Any, list[Event]]:
    server = start_simulator(misbehaving(kind))
    events: list[Event] = []
    values = {"max_turns": 40, "max_tokens": 4096, "store_url": f"sqlite:///{tmp_path}/r.db",
              **settings}
    report = research(QUESTION, settings=Settings(llm_url=server.url, model=server.config.model,
                                                  corpus=str(corpus_db), **values),
                      on_event=events.append)
    return report, server, events


def test_a_turn_that_repeats_itself_is_cut_and_kept_out_of_the_next_prompt(
    start_simulator: Any, corpus_db: Path, tmp_path: Path
) -> None:
    report, server, events = run_misbehaving("repeat", start_simulator, corpus_db, tmp_path)
    assert report.stopped_by == "protocol_errors"
    assert len(server.requests) == 4  # three cut turns, then the answer
    cuts = [e for e in events if e.kind == "generation_cut"]
    assert len(cuts) == 3 and "repeated" in cuts[0].data["reason"]
    first = len(json.dumps(server.requests[0]["messages"]))
    for turns, body in enumerate(server.requests[1:], 1):  # a short note each, not the loop
        assert len(json.dumps(body["messages"])) < first + turns * 800
    assert report.figures is not None and report.figures.tokens_cut > 0
    assert report.figures.protocol_errors == 3
    assert any(w.startswith("no cited answer") for w in report.warnings)
    assert report.answer_markdown  # a report is still written


def test_the_same_call_is_answered_from_memory_then_research_ends(
    start_simulator: Any, corpus_db: Path, tmp_path: Path
) -> None:
    report, server, events = run_misbehaving("same-call", start_simulator, corpus_db, tmp_path)
    assert report.stopped_by == "no_progress"
    assert len(server.requests) == 5  # one search, three repeats, the answer
    assert sum(e.kind == "repeated_call" for e in events) == 3
    assert sum(e.kind == "tool_called" for e in events) == 1  # run once, not four times
    assert report.figures is not None and report.figures.repeated_calls == 3
    stopped = [e for e in events if e.kind == "research_stopped"]
    assert stopped and stopped[0].data["stopped_by"] == "no_progress"


@pytest.mark.parametrize("kind", ["empty", "endless-think"])
def test_empty_or_endless_turns_end_research_as_protocol_errors(
    kind: str, start_simulator: Any, corpus_db: Path, tmp_path: Path
) -> None:
    report, server, _ = run_misbehaving(kind, start_simulator, corpus_db, tmp_path,
                                        max_tokens=512)
    assert report.stopped_by == "protocol_errors"
    assert len(server.requests) == 4
    last_prompt = json.dumps(server.requests[-1]["messages"])
    assert "Step 300" not in last_prompt  # an endless thought never re-enters the prompt
    assert report.figures is not None and report.figures.protocol_errors == 3


def test_an_essay_without_a_search_is_no_success(
    start_simulator: Any, corpus_db: Path, tmp_path: Path
) -> None:
    server = start_simulator(misbehaving("no-search"))
    out = tmp_path / "r.json"
    result = CliRunner().invoke(app, [
        "research", QUESTION, "--llm-url", server.url, "--model", server.config.model,
        "--corpus", str(corpus_db), "--store", f"sqlite:///{tmp_path}/r.db", "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "no cited answer (no source seen)" in result.output
    report = json.loads(out.read_text())  # written all the same
    assert "no cited answer: no source seen" in report["warnings"]


# --- seen in metrics and traces ----------------------------------------------------------------


def test_the_guards_show_in_metrics_and_traces(
    start_simulator: Any, corpus_db: Path, tmp_path: Path
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from prometheus_client.parser import text_string_to_metric_families

    from rumination.service.metrics import ServiceMetrics
    from rumination.telemetry.spans import RunSpans

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spans = RunSpans(provider.get_tracer("test"))
    metrics = ServiceMetrics(lambda: [])
    _, _, events = run_misbehaving("repeat", start_simulator, corpus_db, tmp_path)
    for event in events:
        metrics.observe(event)
        spans.record(event)
    spans.end(None)
    found = {(s.name, tuple(sorted(s.labels.items()))): s.value
             for family in text_string_to_metric_families(metrics.exposition().decode())
             for s in family.samples}  # fmt: skip
    assert found[("rumination_guard_actions_total", (("action", "generation_cut"),))] == 3
    assert found[("rumination_guard_actions_total", (("action", "protocol_errors"),))] == 1
    assert found[("rumination_tokens_cut_total", ())] > 0
    named = [e.name for span in exporter.get_finished_spans() for e in span.events]
    assert named.count("rumination.generation_cut") == 3
    assert "rumination.research_stopped" in named


def test_a_turn_the_server_ended_at_its_cap_is_not_cut_for_length() -> None:
    from rumination.llm.client import Completion
    from rumination.models import Usage

    chinese = "".join(f"第{n}台热泵在零下{n * 7 % 31}度时仍然工作。" for n in range(60))

    def completion(finish: str) -> Completion:
        return Completion(content=chinese, reasoning=None, usage=Usage(), finish_reason=finish)

    assert RunawayGuard(300).settle(completion("length")).cut is None
    ignored = RunawayGuard(100).settle(completion("stop"))  # a server past its cap
    assert ignored.cut is not None and "past the cap of 100" in ignored.cut
