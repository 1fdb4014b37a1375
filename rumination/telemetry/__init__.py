"""OpenTelemetry traces of runs (extra `otel`), configured by the standard OTEL_* variables."""
