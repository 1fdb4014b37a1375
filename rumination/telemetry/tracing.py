"""The process's tracer, configured only by the standard OpenTelemetry variables.

Tracing is on when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set
(and neither `OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none` says otherwise), and the
`otel` extra is installed; with the variable set and the extra missing, one warning says so.
Spans go out over OTLP in batches, over HTTP/protobuf unless `OTEL_EXPORTER_OTLP_PROTOCOL` is
`grpc` (which needs opentelemetry-exporter-otlp-proto-grpc). The exporter itself reads the
other variables (headers, timeouts, certificates); `OTEL_SERVICE_NAME` names the service
(default `rumination`). Spans still buffered are sent when the process exits normally (a
SIGTERM'd command exits normally) and by `flush()`.
"""

from __future__ import annotations

import os
import sys
from functools import cache
from typing import Any

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
INSTALL_HINT = "pip install 'rumination[otel]'"


def wanted() -> bool:
    """Whether the environment asks for traces."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(os.environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def tracer() -> Any | None:
    """The tracer runs use, or None when tracing is off."""
    provider = _provider()
    return None if provider is None else provider.get_tracer("rumination")


@cache
def _provider() -> Any | None:
    """The process's tracer provider, built once; None when tracing is off."""
    if not wanted():
        return None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        _warn(f"OTEL_EXPORTER_OTLP_ENDPOINT is set but traces need {INSTALL_HINT}; "
              "no traces are sent")
        return None
    exporter = _exporter()
    if exporter is None:
        return None
    name = os.environ.get("OTEL_SERVICE_NAME") or "rumination"
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))  # shut down (flushed) at exit
    return provider


def _exporter() -> Any | None:
    protocol = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf").strip()
    try:
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        extra = "opentelemetry-exporter-otlp-proto-grpc" if protocol == "grpc" else INSTALL_HINT
        _warn(f"OTLP over {protocol} needs {extra}; no traces are sent")
        return None
    return OTLPSpanExporter()


def flush(timeout_ms: int = 5000) -> None:
    """Send the spans still buffered (a worker process about to be killed calls this)."""
    provider = _provider()
    if provider is not None:
        provider.force_flush(timeout_ms)


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)
