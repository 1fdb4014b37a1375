"""The line that says who wrote a report, shared by every format."""

from __future__ import annotations

from rumination.models import Report


def provenance_label(report: Report) -> str:
    label = f"Report by rumination, mode {report.mode}, model {report.model}, run {report.run_id}"
    if report.simulated:
        label += " — SIMULATED: written by the built-in protocol simulator, not by an LLM"
    return label
