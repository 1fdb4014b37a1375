"""OpenTelemetry traces: commands run as subprocesses with OTEL_EXPORTER_OTLP_ENDPOINT aimed at
an OTLP/HTTP receiver on 127.0.0.1 in this test; the spans arrive, with the right parents and
the run's tokens, also from a run stopped by SIGTERM. No variable, no traces."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")
from conftest import wait_for_turns  # noqa: E402
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # noqa: E402
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from servicekit import SIM_MODEL, Gate, simulator  # noqa: E402

from rumination.store.run_store import RunStore  # noqa: E402
from rumination.telemetry import tracing  # noqa: E402

QUESTION = "How do otters help kelp?"


class Receiver:
    """Collects every span POSTed to /v1/traces, as (name, attributes, ids, service)."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.take(self.path, body)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self, path: str, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        self.paths.append(path)
        for resource_spans in request.resource_spans:
            service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    self.spans.append({
                        "name": span.name, "id": span.span_id, "parent": span.parent_span_id,
                        "trace": span.trace_id, "error": span.status.code == 2,
                        "service": service.get("service.name"),
                        "attributes": {a.key: _value(a.value) for a in span.attributes},
                    })

    def named(self, prefix: str) -> list[dict[str, Any]]:
        return [s for s in self.spans if s["name"].startswith(prefix)]


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.server.shutdown()


def command_env(tmp_path: Path, corpus_db: Path, llm_url: str, otlp: str | None
                ) -> dict[str, str]:  # fmt: skip
    env = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    env.update({"RUMINATION_RUN_STORE": str(tmp_path / "runs.db"), "RUMINATION_LLM_URL": llm_url,
                "RUMINATION_MODEL": SIM_MODEL, "RUMINATION_CORPUS": str(corpus_db),
                "RUMINATION_RETRIES": "0", "OTEL_SERVICE_NAME": "research-test"})
    if otlp:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp
    return env


def rumination(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rumination", *args], env=env, text=True,
                          capture_output=True, timeout=120, stdin=subprocess.DEVNULL)


def test_a_research_run_exports_its_trace(tmp_path: Path, corpus_db: Path,
                                          receiver: Receiver) -> None:
    with simulator() as sim:
        done = rumination(["research", QUESTION, "--format", "json", "--out",
                           str(tmp_path / "r.json")],
                          command_env(tmp_path, corpus_db, sim.url, receiver.url))
    assert done.returncode == 0, done.stderr
    assert set(receiver.paths) == {"/v1/traces"}
    (run,) = receiver.named("invoke_agent rumination")
    assert run["parent"] == b"" and run["service"] == "research-test"
    assert run["attributes"]["gen_ai.operation.name"] == "invoke_agent"
    turns = receiver.named("turn ")
    assert len(turns) >= 4 and all(t["parent"] == run["id"] for t in turns)
    turn_ids = {t["id"] for t in turns}
    (answer,) = receiver.named("answer")
    chats = receiver.named(f"chat {SIM_MODEL}")
    assert len(chats) == len(turns) + 1  # one request a turn, and the answer's
    assert {c["parent"] for c in chats} == turn_ids | {answer["id"]}
    tools = receiver.named("execute_tool ")
    assert tools and {t["parent"] for t in tools} <= turn_ids
    assert {t["attributes"]["gen_ai.tool.name"] for t in tools} >= {"search", "click"}
    (check,) = receiver.named("support_check")
    assert check["parent"] == run["id"]
    assert len({s["trace"] for s in receiver.spans}) == 1
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert sum(c["attributes"]["gen_ai.usage.input_tokens"] for c in chats) == report["usage"][
        "prompt_tokens"]
    assert run["attributes"]["gen_ai.usage.output_tokens"] == report["usage"][
        "completion_tokens"]
    assert not any(s["error"] for s in receiver.spans)


def test_a_run_stopped_by_sigterm_still_exports_its_trace(tmp_path: Path, corpus_db: Path,
                                                          receiver: Receiver) -> None:
    gate = Gate(free=1)
    with simulator(gate) as sim:
        env = command_env(tmp_path, corpus_db, sim.url, receiver.url)
        proc = subprocess.Popen([sys.executable, "-m", "rumination", "research", QUESTION],
                                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        try:
            wait_for_turns(tmp_path / "runs.db", 1, proc, limit_s=30)
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=30)
        finally:
            gate.open()
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 4, stderr
    (run,) = receiver.named("invoke_agent rumination")
    assert run["error"]
    assert receiver.named("turn 0") and receiver.named(f"chat {SIM_MODEL}")
    assert RunStore(tmp_path / "runs.db").list_runs()[0].status == "interrupted"


def test_no_endpoint_no_traces(tmp_path: Path, corpus_db: Path, receiver: Receiver,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    with simulator() as sim:
        done = rumination(["research", QUESTION], command_env(tmp_path, corpus_db, sim.url,
                                                              None))
    assert done.returncode == 0, done.stderr
    assert receiver.spans == []
    for name in tracing.ENDPOINT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert tracing.wanted() is False
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    assert tracing.wanted() is True
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert tracing.wanted() is False


def test_a_missing_extra_is_one_warning(monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)  # as if not installed
    tracing._provider.cache_clear()
    try:
        assert tracing.tracer() is None
    finally:
        tracing._provider.cache_clear()
    err = capsys.readouterr().err
    assert err == ("warning: OTEL_EXPORTER_OTLP_ENDPOINT is set but traces need pip install "
                   "'rumination[otel]'; no traces are sent\n")
