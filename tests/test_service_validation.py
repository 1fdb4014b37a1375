"""The API checks a run before it queues it: an unknown backend, a model the LLM server does
not serve, an LLM server that does not answer (or is no LLM API), a body that is no JSON and
an unknown status filter are answered at once with one line, and nothing is queued."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import get_args

import httpx
import pytest
from conftest import LocalWeb
from servicekit import SIM_MODEL, running_api, service_settings, simulator

from rumination.service.runner import CANCELLED, QUEUED
from rumination.service.views import RunStatus
from rumination.settings import Settings
from rumination.store.run_store import FAILED, FINISHED, INTERRUPTED, RUNNING, RunStore
from rumination.testing import SimulatorServer

QUESTION = "How do otters help kelp?"


@contextmanager
def api_over_simulator(tmp_path: Path, **extra: object) -> Iterator[tuple[httpx.Client,
                                                                          SimulatorServer]]:
    with simulator() as sim, running_api(service_settings(tmp_path, sim.url, **extra)) as url, \
            httpx.Client(base_url=url, timeout=30) as api:
        yield api, sim


def nothing_queued(api: httpx.Client, sim: SimulatorServer | None = None) -> bool:
    return api.get("/runs").json()["runs"] == [] and (sim is None or sim.requests == [])


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_an_unknown_backend_is_refused_naming_the_installed_ones(tmp_path: Path) -> None:
    with api_over_simulator(tmp_path) as (api, sim):
        reply = api.post("/runs", json={"question": QUESTION, "backend": "nosuch"})
        assert reply.status_code == 400
        error = reply.json()["error"]
        assert error.startswith("unknown search backend 'nosuch' (installed: ")
        assert "local" in error and "wikipedia" in error
        assert nothing_queued(api, sim)


def test_a_model_the_server_does_not_serve_is_refused_naming_the_served_ones(
    tmp_path: Path,
) -> None:
    with api_over_simulator(tmp_path) as (api, sim):
        reply = api.post("/runs", json={"question": QUESTION, "model": "glm-4"})
        assert reply.status_code == 400
        assert reply.json()["error"] == (
            f"model 'glm-4' is not served at {sim.url}; served models: {SIM_MODEL}")
        assert nothing_queued(api, sim)
        served = api.post("/runs", json={"question": QUESTION, "model": SIM_MODEL})
        assert served.status_code == 202


def test_the_services_own_model_is_checked_too(tmp_path: Path) -> None:
    with simulator() as sim, running_api(service_settings(tmp_path, sim.url).model_copy(
            update={"model": "glm-4"})) as url, httpx.Client(base_url=url) as api:
        reply = api.post("/runs", json={"question": QUESTION})
        assert reply.status_code == 400 and "served models: rumination-simulator" in \
            reply.json()["error"]
        assert nothing_queued(api, sim)


def test_an_llm_server_that_does_not_answer_is_503_and_nothing_is_queued(
    tmp_path: Path,
) -> None:
    url = closed_port_url()
    with running_api(service_settings(tmp_path, url)) as base, \
            httpx.Client(base_url=base, timeout=30) as api:
        reply = api.post("/runs", json={"question": QUESTION})
        assert reply.status_code == 503
        assert reply.json()["error"].startswith(f"LLM server unreachable at {url}: ConnectError")
        assert nothing_queued(api)


def test_a_url_that_is_no_llm_api_is_502(tmp_path: Path, local_web: LocalWeb) -> None:
    url = local_web.url("/v1")
    with running_api(service_settings(tmp_path, url)) as base, \
            httpx.Client(base_url=base, timeout=30) as api:
        reply = api.post("/runs", json={"question": QUESTION})
        assert reply.status_code == 502
        assert "no OpenAI-compatible API there" in reply.json()["error"]
        assert nothing_queued(api)


def test_resume_checks_the_model_the_run_was_started_with(tmp_path: Path) -> None:
    with api_over_simulator(tmp_path) as (api, sim):
        store = RunStore(tmp_path / "runs.db")
        started = Settings(llm_url=sim.url, model="retired-model", backend="local")
        store.create_run("old", QUESTION, "retired-model", "local", "rumination",
                         started.public_json())
        store.set_status("old", INTERRUPTED)
        reply = api.post("/runs/old/resume")
        assert reply.status_code == 400
        assert reply.json()["error"] == (
            f"model 'retired-model' is not served at {sim.url}; served models: {SIM_MODEL}")
        assert api.get("/runs/old").json()["status"] == INTERRUPTED and sim.requests == []
        store.close()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "invalid JSON body: Expecting property name enclosed in double quotes "
                       "at character 1"),
        (b'{"question": "q",}', "invalid JSON body: Expecting property name enclosed in double "
                                "quotes at character 17"),
        (b"", "invalid JSON body: the body is empty"),
    ],
)
def test_a_body_that_is_no_json_is_400(tmp_path: Path, body: bytes, message: str) -> None:
    with api_over_simulator(tmp_path) as (api, sim):
        reply = api.post("/runs", content=body, headers={"content-type": "application/json"})
        assert (reply.status_code, reply.json()) == (400, {"error": message, "status": 400})
        assert nothing_queued(api, sim)


def test_a_json_body_sent_as_a_form_is_415(tmp_path: Path) -> None:
    with api_over_simulator(tmp_path) as (api, sim):
        reply = api.post("/runs", content=b'{"question": "q"}',
                         headers={"content-type": "application/x-www-form-urlencoded"})
        assert reply.status_code == 415
        assert reply.json()["error"] == (
            "the body must be JSON sent with Content-Type: application/json (this one came as "
            "application/x-www-form-urlencoded)")
        assert nothing_queued(api, sim)


def test_an_unknown_status_filter_lists_the_statuses(tmp_path: Path) -> None:
    with api_over_simulator(tmp_path) as (api, _):
        reply = api.get("/runs", params={"status": "bogus"})
        assert reply.status_code == 422
        assert reply.json()["error"] == (
            "query.status: Input should be 'queued', 'running', 'finished', 'interrupted', "
            "'failed' or 'cancelled'")
        assert api.get("/runs", params={"status": "finished"}).status_code == 200


def test_the_status_filter_knows_every_status_a_run_can_have() -> None:
    assert set(get_args(RunStatus)) == {QUEUED, RUNNING, FINISHED, INTERRUPTED, FAILED,
                                        CANCELLED}
