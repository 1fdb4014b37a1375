"""Labels for reports written by rumination's protocol simulator instead of a model.

The simulator marks every HTTP answer with the header `x-rumination-simulator: 1` (whatever
model name it was started with); the LLM client notes it, and every report built from such
answers is labeled: `simulated: true` in JSON, a banner in HTML, a warning and the footer
line in Markdown."""

from __future__ import annotations

from rumination.models import Report

SIMULATOR_HEADER = "x-rumination-simulator"
SIMULATED_WARNING = (
    "SIMULATED: this report was produced by the built-in protocol simulator, not an LLM"
)


def mark_simulated(report: Report) -> Report:
    """Label `report` as the simulator's (idempotent)."""
    report.simulated = True
    if SIMULATED_WARNING not in report.warnings:
        report.warnings.insert(0, SIMULATED_WARNING)
    return report
