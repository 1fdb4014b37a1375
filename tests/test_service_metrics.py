"""GET /metrics: Prometheus text that prometheus-client's own parser reads, with counts that
agree with the runs' event streams, behind the same token as every other route."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from servicekit import Gate, read_events, running_api, service_settings, simulator, wait_status

QUESTION = "How well do air-source heat pumps perform in cold climates?"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, for every sample of the exposition."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_what_the_runs_did(tmp_path: Path) -> None:
    with simulator() as sim, running_api(service_settings(tmp_path, sim.url)) as url, \
            httpx.Client(base_url=url, timeout=30) as api:
        ids = [api.post("/runs", json={"question": f"{QUESTION} ({i})"}).json()["run_id"]
               for i in range(2)]
        for run_id in ids:
            wait_status(api, run_id, {"finished"})
        events = [data for run_id in ids for kind, data in read_events(api, run_id)
                  if kind != "end"]
        reply = api.get("/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    found = samples(reply.text)
    answered = [e for e in events if e["event"] == "model_answered"]
    tools = [e for e in events if e["event"] == "tool_finished"]
    assert answered and tools
    assert value(found, "rumination_runs_ended_total", status="finished") == 2
    assert value(found, "rumination_turns_total") == sum(
        e["event"] == "turn_started" for e in events)
    for kind in ("prompt", "completion"):
        assert value(found, "rumination_tokens_total", kind=kind) == sum(
            e[f"{kind}_tokens"] for e in answered)
    research = [e for e in answered if not e["answering"]]
    assert value(found, "rumination_model_request_seconds_count", phase="research") == len(
        research)
    assert value(found, "rumination_model_request_seconds_count", phase="answer") == 2
    for tool in {e["name"] for e in tools}:
        assert value(found, "rumination_tool_seconds_count", tool=tool) == sum(
            e["name"] == tool for e in tools)
    assert value(found, "rumination_runs", state="running") == 0
    assert value(found, "rumination_queue_depth") == 0


def test_gauges_show_runs_queued_and_running(tmp_path: Path) -> None:
    gate = Gate(free=1)
    with simulator(gate) as sim, running_api(service_settings(
            tmp_path, sim.url, api_concurrency=1)) as url, \
            httpx.Client(base_url=url, timeout=30) as api:
        first = api.post("/runs", json={"question": QUESTION}).json()["run_id"]
        api.post("/runs", json={"question": "A second question"})
        api.post("/runs", json={"question": "A third question"})
        wait_status(api, first, {"running"})
        found = samples(api.get("/metrics").text)
        gate.open()
    assert value(found, "rumination_runs", state="running") == 1
    assert value(found, "rumination_runs", state="queued") == 2
    assert value(found, "rumination_queue_depth") == 2


def test_metrics_need_the_token_when_one_is_set(tmp_path: Path) -> None:
    with simulator() as sim, running_api(service_settings(tmp_path, sim.url,
                                                          api_token="s3cret")) as url:
        anonymous = httpx.get(f"{url}/metrics")
        signed = httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer s3cret"})
    assert anonymous.status_code == 401
    assert signed.status_code == 200
    assert "rumination_turns_total" in signed.text
