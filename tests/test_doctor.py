"""`rumination doctor` against the simulator in good and misconfigured states, over real HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import LocalWeb, StartSimulator
from typer.testing import CliRunner

from rumination.cli import app
from rumination.llm.doctor import Diagnosis, diagnose
from rumination.testing import scripted, simulate

MODEL = "glm-z1-rumination-simulator"


@pytest.fixture
def serve(start_simulator: StartSimulator) -> Any:
    return lambda responder=simulate, **config: start_simulator(responder, **config)


def statuses(diagnosis: Diagnosis) -> dict[str, str]:
    return {c.name: c.status for c in diagnosis.checks}


def test_a_well_configured_server_passes_every_check(serve: Any) -> None:
    server = serve()
    result = CliRunner().invoke(app, ["doctor", "--llm-url", server.url])
    assert result.exit_code == 0, result.output
    assert f"pass --model {MODEL}" in result.output
    assert "11 pass, 0 warn, 0 fail" in result.output
    # the real turn used the research sampling and stop strings
    turn = server.requests[-1]
    assert (turn["temperature"], turn["top_p"]) == (0.95, 0.7)
    assert "<|observation|>" in turn["stop"]


def test_the_model_name_is_found_when_the_server_serves_one(serve: Any) -> None:
    diagnosis = diagnose(serve().url, skip_turn=True)
    assert diagnosis.model == MODEL and not diagnosis.failed
    assert "one real turn" not in statuses(diagnosis)


def test_a_32k_window_warns_and_names_the_serve_line(serve: Any) -> None:
    diagnosis = diagnose(serve(max_model_len=32768).url, MODEL, skip_turn=True)
    window = next(c for c in diagnosis.checks if c.name == "context window")
    assert window.status == "warn" and "YaRN is off" in window.detail
    assert "rumination serve" in window.fix
    assert not diagnosis.failed


def test_a_generic_template_fails_the_prompt_and_observation_checks(serve: Any) -> None:
    diagnosis = diagnose(serve(template="generic").url, MODEL, skip_turn=True)
    found = statuses(diagnosis)
    assert found["research prompt"] == "fail" and found["observation role"] == "fail"
    assert found["nothing cut"] == "pass"
    assert diagnosis.failed


def test_prefix_caching_off_warns(serve: Any) -> None:
    assert statuses(diagnose(serve(prefix_caching=False).url, MODEL, skip_turn=True))[
        "prefix caching"
    ] == "warn"


def test_cached_token_counts_are_read_when_the_server_reports_them(serve: Any) -> None:
    diagnosis = diagnose(serve(prompt_tokens_details=True).url, MODEL, skip_turn=True)
    check = next(c for c in diagnosis.checks if c.name == "prefix caching")
    assert check.status == "pass" and "cached tokens" in check.detail


def test_a_wrong_model_name_fails_with_the_served_names(serve: Any) -> None:
    server = serve()
    result = CliRunner().invoke(app, ["doctor", "--llm-url", server.url, "--model", "glm-z1",
                                      "--json"])  # fmt: skip
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["ok"] is False
    assert data["checks"] == [{"name": "model", "status": "fail",
                               "detail": f"'glm-z1' is not served (serves {MODEL})",
                               "fix": f"pass --model {MODEL}"}]  # fmt: skip


def test_a_turn_without_a_tool_call_fails_and_shows_what_the_model_wrote(serve: Any) -> None:
    server = serve(scripted(["Heat pumps are great, no research needed."]))
    diagnosis = diagnose(server.url, MODEL)
    turn = diagnosis.checks[-1]
    assert (turn.name, turn.status) == ("one real turn", "fail")
    assert "Heat pumps are great" in turn.detail


@pytest.mark.parametrize(
    ("url", "code", "says"),
    [
        ("not-a-url", 2, "is not an http(s) URL"),
        ("http://127.0.0.1:9/v1", 3, "unreachable"),
    ],
)
def test_bad_urls_exit_with_one_line(url: str, code: int, says: str) -> None:
    result = CliRunner().invoke(app, ["doctor", "--llm-url", url])
    assert result.exit_code == code
    assert says in result.output and "Traceback" not in result.output


def test_a_url_without_v1_is_told_the_likely_fix(serve: Any) -> None:
    root = serve().url.removesuffix("/v1")
    result = CliRunner().invoke(app, ["doctor", "--llm-url", root])
    assert result.exit_code == 2
    assert f"did you mean {root}/v1?" in result.output


def test_a_web_page_or_plain_text_instead_of_an_llm_api_gets_one_line(
    local_web: LocalWeb,
) -> None:
    local_web.page("/v1/models", "<html><body>" + "Welcome! " * 500 + "</body></html>")
    local_web.page("/text/v1/models", "OK", "text/plain")
    for path, says in [("/v1", "with a web page ('Welcome! Welcome!"),
                       ("/text/v1", "with text/plain, not an OpenAI-compatible model list")]:
        result = CliRunner().invoke(app, ["doctor", "--llm-url", local_web.url(path)])
        assert result.exit_code == 2
        assert says in result.output
        assert len(result.output.strip().splitlines()) == 1
