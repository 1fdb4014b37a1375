"""The HTTP API over a real socket: uvicorn on 127.0.0.1, httpx as the client, the protocol
simulator as the model and the bundled demo corpus as the search backend."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi")

from servicekit import (  # noqa: E402
    Gate,
    read_events,
    running_api,
    running_app,
    service_settings,
    simulator,
    wait_status,
)

from rumination.agent.researcher import Researcher  # noqa: E402
from rumination.service.app import create_app  # noqa: E402
from rumination.settings import Settings  # noqa: E402
from rumination.store.run_store import RunStore  # noqa: E402

QUESTION = "How well do air-source heat pumps perform in cold climates?"
OPENAPI = Path(__file__).parent.parent / "docs" / "openapi.json"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[httpx.Client]:
    with simulator() as sim, running_api(service_settings(tmp_path, sim.url)) as url, \
            httpx.Client(base_url=url, timeout=30) as client:
        yield client


def test_a_run_goes_from_post_to_report_with_its_events(api: httpx.Client) -> None:
    started = api.post("/runs", json={"question": QUESTION, "max_turns": 8})
    assert started.status_code == 202
    run_id = started.json()["run_id"]
    assert started.json()["status"] in ("queued", "running")

    events = read_events(api, run_id)
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "run_started" and kinds[-1] == "end"
    assert "tool_called" in kinds and "source_added" in kinds and "finished" in kinds
    assert events[-1][1] == {"run_id": run_id, "status": "finished"}
    assert all(data.get("event") == kind for kind, data in events[:-1])
    assert "t" in events[0][1] and events[0][1]["question"] == QUESTION

    run = api.get(f"/runs/{run_id}").json()
    assert run["status"] == "finished" and run["live"] is False
    assert run["turns"] >= 2 and run["sources"] >= 1
    assert run["figures"]["citations"] >= 1

    report = api.get(f"/runs/{run_id}/report", params={"format": "json"})
    assert report.headers["content-type"] == "application/json"
    body = report.json()
    assert body["run_id"] == run_id and body["citations"]
    cited = {c["url"] for c in body["citations"]}
    assert cited <= {s["url"] for s in body["sources"]}
    markdown = api.get(f"/runs/{run_id}/report").text
    assert markdown.startswith("#") or body["question"] in markdown
    assert body["citations"][0]["url"] in markdown
    html = api.get(f"/runs/{run_id}/report", params={"format": "html"})
    assert html.headers["content-type"].startswith("text/html")
    assert 'href="#source-1"' in html.text

    listed = api.get("/runs").json()["runs"]
    assert [r["run_id"] for r in listed] == [run_id]
    assert api.get("/runs", params={"q": "HEAT PUMPS"}).json()["runs"][0]["run_id"] == run_id
    assert api.get("/runs", params={"q": "glaciers"}).json()["runs"] == []
    assert api.get("/runs", params={"status": "queued"}).json()["runs"] == []

    replay = read_events(api, run_id)  # a late reader gets the same events from the start
    assert replay == events
    after = read_events(api, run_id, **{"Last-Event-ID": "2"})
    assert after == events[3:]


def test_a_run_cancelled_mid_way_is_interrupted_and_resumes_to_the_end(tmp_path: Path) -> None:
    gate = Gate(free=2)
    with simulator(gate) as sim, running_api(service_settings(tmp_path, sim.url)) as url, \
            httpx.Client(base_url=url, timeout=30) as api:
        run_id = api.post("/runs", json={"question": QUESTION}).json()["run_id"]
        wait_for_turns(api, run_id, 2)
        cancelled = api.delete(f"/runs/{run_id}")
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "interrupted"
        assert cancelled.json()["turns"] == 2
        events = read_events(api, run_id)
        assert [k for k, _ in events][-2:] == ["interrupted", "end"]
        assert events[-1][1]["status"] == "interrupted"
        assert api.get(f"/runs/{run_id}/report").status_code == 409
        assert api.delete(f"/runs/{run_id}").status_code == 409

        gate.open()
        resumed = api.post(f"/runs/{run_id}/resume")
        assert resumed.status_code == 202
        assert resumed.json()["run_id"] == run_id
        wait_status(api, run_id, {"finished"})
        all_events = read_events(api, run_id)
        starts = [d for k, d in all_events if k == "run_started"]
        assert [s["resumed_at_turn"] for s in starts] == [0, 2]
        report = api.get(f"/runs/{run_id}/report", params={"format": "json"}).json()
        assert report["turns"] > 2 and report["citations"]
        assert api.post(f"/runs/{run_id}/resume").status_code == 409


def wait_for_turns(api: httpx.Client, run_id: str, turns: int) -> None:
    with api.stream("GET", f"/runs/{run_id}/events") as reply:
        for line in reply.iter_lines():
            if line.startswith("data: ") and json.loads(line[6:]).get("event") == "tool_called" \
                    and json.loads(line[6:])["index"] == turns - 1:
                break
    wait_status(api, run_id, {"running"})
    deadline = time.monotonic() + 10
    while api.get(f"/runs/{run_id}").json()["turns"] < turns:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_a_queued_run_can_be_cancelled_before_it_starts(tmp_path: Path) -> None:
    gate = Gate(free=0)
    with simulator(gate) as sim, running_api(service_settings(
            tmp_path, sim.url, api_concurrency=1)) as url, \
            httpx.Client(base_url=url, timeout=30) as api:
        first = api.post("/runs", json={"question": QUESTION}).json()["run_id"]
        second = api.post("/runs", json={"question": "A second question"}).json()
        assert second["status"] == "queued" and second["queue_position"] == 0
        cancelled = api.delete(f"/runs/{second['run_id']}").json()
        assert cancelled["status"] == "cancelled"
        assert read_events(api, second["run_id"]) == [
            ("end", {"run_id": second["run_id"], "status": "cancelled"})]
        gate.open()
        wait_status(api, first, {"finished"})
        assert api.get(f"/runs/{second['run_id']}").json()["status"] == "cancelled"


def test_fifty_concurrent_posts_all_finish(tmp_path: Path) -> None:
    with simulator() as sim, running_api(service_settings(
            tmp_path, sim.url, api_concurrency=8, max_turns=3)) as url, \
            httpx.Client(base_url=url, timeout=60,
                         limits=httpx.Limits(max_connections=50)) as api:
        def post(i: int) -> str:
            reply = api.post("/runs", json={"question": f"Heat pump question number {i}"})
            assert reply.status_code == 202, reply.text
            return str(reply.json()["run_id"])

        with ThreadPoolExecutor(50) as pool:
            ids = list(pool.map(post, range(50)))
        assert len(set(ids)) == 50
        for run_id in ids:
            wait_status(api, run_id, {"finished"}, timeout=60)
        listed = api.get("/runs", params={"limit": 100}).json()["runs"]
        assert {r["run_id"] for r in listed} == set(ids)
        assert all(r["status"] == "finished" for r in listed)
        questions = {r["question"] for r in listed}
        assert questions == {f"Heat pump question number {i}" for i in range(50)}


def test_bearer_token_is_required_when_set(tmp_path: Path) -> None:
    with simulator() as sim, running_api(service_settings(tmp_path, sim.url,
                                                          api_token="s3cret")) as url:
        with httpx.Client(base_url=url) as anonymous:
            for method, path in [("GET", "/runs"), ("POST", "/runs"), ("GET", "/runs/abc"),
                                 ("GET", "/runs/abc/events"), ("GET", "/runs/abc/report"),
                                 ("POST", "/runs/abc/resume"), ("DELETE", "/runs/abc")]:
                reply = anonymous.request(method, path, json={"question": "q"})
                assert reply.status_code == 401, (method, path)
                assert reply.json() == {"error": "missing or wrong bearer token", "status": 401}
                assert reply.headers["www-authenticate"] == "Bearer"
            wrong = anonymous.get("/runs", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            assert anonymous.get("/openapi.json").status_code == 200
        with httpx.Client(base_url=url, headers={"Authorization": "Bearer s3cret"}) as client:
            run_id = client.post("/runs", json={"question": QUESTION}).json()["run_id"]
            assert read_events(client, run_id)[-1][1]["status"] == "finished"
            assert client.get("/runs").json()["runs"][0]["run_id"] == run_id
        settings_json = RunStore(tmp_path / "runs.db").get_run(run_id).settings_json
        assert "s3cret" not in settings_json


def test_bad_requests_get_one_line_json_errors(tmp_path: Path) -> None:
    with simulator() as sim, running_api(service_settings(
            tmp_path, sim.url, api_max_request_bytes=2048, api_max_queued=0)) as url, \
            httpx.Client(base_url=url) as api:
        missing = api.post("/runs", json={})
        assert missing.status_code == 422
        assert missing.json()["error"] == "body.question: Field required"
        extra = api.post("/runs", json={"question": "q", "llm_url": "http://evil"})
        assert extra.status_code == 422 and "llm_url" in extra.json()["error"]
        assert api.post("/runs", content=b"{not json",
                        headers={"content-type": "application/json"}).status_code == 400
        big = api.post("/runs", json={"question": "x" * 4000})
        assert big.status_code == 413
        assert big.json()["error"].startswith("request body over 2048 bytes")

        def chunks() -> Iterator[bytes]:
            yield b'{"question": "'
            for _ in range(10):
                yield b"y" * 500
            yield b'"}'

        chunked = api.post("/runs", content=chunks(), headers={"content-type": "application/json"})
        assert chunked.status_code == 413
        full = api.post("/runs", json={"question": "q"})
        assert full.status_code == 429 and "api_max_queued" in full.json()["error"]
        unknown_backend = api.post("/runs", json={"question": "q", "max_turns": 0})
        assert unknown_backend.status_code == 422
        assert api.get("/runs/nosuchrun").json() == {"error": "no run 'nosuchrun'", "status": 404}
        assert api.get("/runs/nosuchrun/events").status_code == 404
        assert api.get("/runs/nosuchrun/report").status_code == 404
        assert api.post("/runs/nosuchrun/resume").status_code == 404
        assert api.delete("/runs/nosuchrun").status_code == 404
        assert api.get("/runs/..%2Fx").status_code in (404, 422)
        assert api.get("/runs", params={"limit": 0}).status_code == 422
        bad_format = api.get("/runs/abc/report", params={"format": "odt"})
        assert bad_format.status_code == 422 and "format" in bad_format.json()["error"]


def test_a_cli_run_and_an_api_run_are_the_same_kind_of_record(tmp_path: Path) -> None:
    with simulator() as sim:
        settings = service_settings(tmp_path, sim.url)
        cli_report = asyncio.run(Researcher(settings).run(QUESTION))  # what `research` does
        with running_api(settings) as url, httpx.Client(base_url=url, timeout=30) as api:
            run_id = api.post("/runs", json={"question": QUESTION}).json()["run_id"]
            read_events(api, run_id)
            runs = {r["run_id"]: r for r in api.get("/runs").json()["runs"]}
            assert set(runs) == {run_id, cli_report.run_id}
            cli_view = api.get(f"/runs/{cli_report.run_id}").json()
            assert cli_view["status"] == "finished" and cli_view["turns"] == cli_report.turns
            assert api.get(f"/runs/{cli_report.run_id}/report", params={"format": "json"}
                           ).json()["run_id"] == cli_report.run_id
            # a run without an event file replays nothing and ends at once
            assert read_events(api, cli_report.run_id) == [
                ("end", {"run_id": cli_report.run_id, "status": "finished"})]
    store = RunStore(tmp_path / "runs.db")
    api_record, cli_record = store.get_run(run_id), store.get_run(cli_report.run_id)
    assert (api_record.status, api_record.model, api_record.backend, api_record.mode) == (
        cli_record.status, cli_record.model, cli_record.backend, cli_record.mode)
    assert json.loads(api_record.settings_json).keys() == json.loads(
        cli_record.settings_json).keys()


def test_the_committed_openapi_schema_matches_the_app() -> None:
    app = create_app(Settings())
    committed = json.loads(OPENAPI.read_text(encoding="utf-8"))
    assert committed == app.openapi(), (
        "docs/openapi.json is stale: python -m rumination.service.schema > docs/openapi.json")


def test_the_api_command_refuses_to_listen_beyond_loopback_without_a_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from rumination.cli import app

    refused = CliRunner().invoke(app, ["api", "--host", "0.0.0.0", "--port", "1"])
    assert refused.exit_code == 2
    assert refused.output.strip() == (
        "error: refusing to listen on 0.0.0.0 without a token: set api_token "
        "(RUMINATION_API_TOKEN) or listen on 127.0.0.1")

    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "fastapi" else real(name, *a))
    missing = CliRunner().invoke(app, ["api"])
    assert missing.exit_code == 2
    assert missing.output.strip() == (
        "error: `rumination api` needs fastapi: pip install 'rumination[api]'")


def test_the_web_page_signs_in_with_the_token_and_then_uses_the_api_by_cookie(
    tmp_path: Path,
) -> None:
    with simulator() as sim, running_api(service_settings(tmp_path, sim.url,
                                                          api_token="s3cret")) as url, \
            httpx.Client(base_url=url) as browser:
        asked = browser.get("/")
        assert asked.status_code == 401 and 'name="token"' in asked.text
        assert "script-src 'self'" in asked.headers["content-security-policy"]
        assert browser.get("/ui/runs/abc").status_code == 401
        wrong = browser.post("/ui/login", data={"token": "nope"})
        assert wrong.status_code == 401 and "not the token" in wrong.text
        signed = browser.post("/ui/login", data={"token": "s3cret"})
        assert signed.status_code == 303 and signed.headers["location"] == "/"
        assert "httponly" in signed.headers["set-cookie"].lower()
        assert "samesite=strict" in signed.headers["set-cookie"].lower()
        run_id = browser.post("/runs", json={"question": QUESTION}).json()["run_id"]
        assert read_events(browser, run_id)[-1][1]["status"] == "finished"
        listing = browser.get("/")
        assert listing.status_code == 200 and f'href="/ui/runs/{run_id}"' in listing.text
        page = browser.get(f"/ui/runs/{run_id}")
        assert page.status_code == 200
        assert f'src="/runs/{run_id}/report?format=html"' in page.text
        assert browser.get("/ui/run.js").headers["content-type"].startswith("text/javascript")
        assert browser.get("/ui/other.js").status_code == 404
        assert browser.get("/ui/runs/nosuchrun").status_code == 404


def stopped_after_two_turns(settings: Settings) -> str:
    """A run posted to a server that is stopped once the run has two turns; its id."""
    with running_api(settings) as url, httpx.Client(base_url=url, timeout=30) as api:
        run_id: str = api.post("/runs", json={"question": QUESTION}).json()["run_id"]
        wait_for_turns(api, run_id, 2)
    return run_id


def test_stopping_the_server_queues_a_running_run_and_the_next_start_resumes_it(
    tmp_path: Path,
) -> None:
    gate = Gate(free=2)
    with simulator(gate) as sim:
        settings = service_settings(tmp_path, sim.url)
        run_id = stopped_after_two_turns(settings)
        stored = RunStore(tmp_path / "runs.db").get_run(run_id)
        assert (stored.status, stored.turns) == ("queued", 2)
        gate.open()
        with running_api(settings) as url, httpx.Client(base_url=url, timeout=30) as api:
            wait_status(api, run_id, {"finished"})
            events = read_events(api, run_id)  # the first server's events, from the file
    assert [d["resumed_at_turn"] for k, d in events if k == "run_started"] == [0, 2]
    assert events[-1][1]["status"] == "finished"


def test_a_server_started_without_resume_leaves_queued_runs_for_later(tmp_path: Path) -> None:
    gate = Gate(free=2)
    with simulator(gate) as sim:
        settings = service_settings(tmp_path, sim.url)
        run_id = stopped_after_two_turns(settings)
        gate.open()
        with running_app(create_app(settings, take_up=False)) as url, \
                httpx.Client(base_url=url, timeout=30) as api:
            waiting = api.get(f"/runs/{run_id}").json()
            assert (waiting["status"], waiting["live"]) == ("queued", False)
            assert api.post(f"/runs/{run_id}/resume").status_code == 202
            wait_status(api, run_id, {"finished"})
            events = read_events(api, run_id)
    assert [d["resumed_at_turn"] for k, d in events if k == "run_started"] == [0, 2]
