"""What every format says the same way: who wrote the report, and the figures' deltas of
its "Changes since" section."""

from __future__ import annotations

from rumination.models import Report, ReportChanges


def provenance_label(report: Report) -> str:
    label = f"Report by rumination, mode {report.mode}, model {report.model}, run {report.run_id}"
    if report.simulated:
        label += " — SIMULATED: written by the built-in protocol simulator, not by an LLM"
    return label


def changes_lines(changes: ReportChanges | None) -> list[str]:
    """The figures' deltas of a report's changes, one plain line each ([] without changes)."""
    if changes is None:
        return []
    lines = []
    for name, change in changes.figures.items():
        label = name.replace("_", " ").capitalize()
        lines.append(f"{label}: {_figure(name, change.before)} → {_figure(name, change.after)}")
    return lines


def _figure(name: str, value: float | None) -> str:
    if value is None:
        return "not checked"
    return f"{value:.1%}" if name == "citation_accuracy" else f"{value:g}"
