"""Prometheus metrics of the service, served at GET /metrics (prometheus-client's text format).

Everything but the run gauges is counted from the events runs emit, so a run's numbers here
agree with its event stream. The gauges (runs by state, queue depth) are read from the
queue at scrape time. Each app has a registry of its own: two apps in one process (tests,
an embedding program) do not share counts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from rumination.agent.guards import GUARD_STOPS
from rumination.events import Event
from rumination.service.views import LIVE
from rumination.store.run_store import QUEUED

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# model requests last from under a second (a tool call) to many minutes (a long report)
MODEL_BUCKETS = (0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320, 640)
TOOL_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class _RunGauges(Collector):
    """Runs queued and running in this service, and the queue's depth, read when scraped."""

    def __init__(self, states: Callable[[], Iterable[str]]) -> None:
        self._states = states

    def collect(self) -> Iterable[GaugeMetricFamily]:
        states = list(self._states())
        runs = GaugeMetricFamily("rumination_runs", "Runs in this service by state",
                                 labels=["state"])
        for state in LIVE:
            runs.add_metric([state], states.count(state))
        yield runs
        yield GaugeMetricFamily("rumination_queue_depth", "Runs waiting for a worker",
                                value=states.count(QUEUED))


class ServiceMetrics:
    def __init__(self, states: Callable[[], Iterable[str]]) -> None:
        """`states`: the status of every run the service holds now (queued, running, …)."""
        self.registry = CollectorRegistry()
        self.registry.register(_RunGauges(states))
        self.runs_ended = Counter("rumination_runs_ended", "Runs that ended, by how",
                                  ["status"], registry=self.registry)
        self.turns = Counter("rumination_turns", "Model turns of research",
                             registry=self.registry)
        self.tokens = Counter("rumination_tokens", "Tokens of model requests, by kind",
                              ["kind"], registry=self.registry)
        self.model_seconds = Histogram(
            "rumination_model_request_seconds", "Model request latency (whole response)",
            ["phase"], buckets=MODEL_BUCKETS, registry=self.registry)
        self.first_token_seconds = Histogram(
            "rumination_model_first_token_seconds", "Time to the first generated token",
            buckets=MODEL_BUCKETS, registry=self.registry)
        self.tool_seconds = Histogram("rumination_tool_seconds", "Tool call latency, by tool",
                                      ["tool"], buckets=TOOL_BUCKETS, registry=self.registry)
        self.errors = Counter("rumination_errors", "Errors by kind", ["kind"],
                              registry=self.registry)
        self.guards = Counter("rumination_guard_actions", "What the guards against a "
                              "misbehaving model did, by action", ["action"],
                              registry=self.registry)
        self.tokens_cut = Counter("rumination_tokens_cut", "Tokens of generations cut out of "
                                  "the conversation", registry=self.registry)

    def observe(self, event: Event) -> None:
        """Count one event of a run."""
        data = event.data
        if event.kind == "turn_started":
            self.turns.inc()
        elif event.kind == "model_answered":
            for kind in ("prompt", "completion", "cached_prompt"):
                self.tokens.labels(kind).inc(data.get(f"{kind}_tokens") or 0)
            phase = "answer" if data.get("answering") else "research"
            self.model_seconds.labels(phase).observe(data["seconds"])
            if data.get("first_token_seconds") is not None:
                self.first_token_seconds.observe(data["first_token_seconds"])
        elif event.kind == "tool_finished":
            self.tool_seconds.labels(data["name"]).observe(data["seconds"])
            if data.get("failure"):
                self.errors.labels(data["failure"]).inc()
        elif event.kind == "protocol_error":
            self.errors.labels("protocol_error").inc()
        elif event.kind == "generation_cut":
            self.guards.labels("generation_cut").inc()
            self.tokens_cut.inc(data.get("tokens") or 0)
        elif event.kind == "repeated_call":
            self.guards.labels("repeated_call").inc()
        elif event.kind == "research_stopped" and data.get("stopped_by") in GUARD_STOPS:
            self.guards.labels(str(data["stopped_by"])).inc()
        elif event.kind == "finished":
            self.runs_ended.labels("finished").inc()
        elif event.kind in ("interrupted", "cancelled"):
            self.runs_ended.labels(event.kind).inc()
        elif event.kind == "run_error":
            self.runs_ended.labels("interrupted" if data.get("resumable") else "failed").inc()
            self.errors.labels("run_error").inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
