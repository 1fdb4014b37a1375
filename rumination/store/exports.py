"""Exports of stored runs (`rumination runs export`): the whole run as one JSON document,
or only its report rendered as `rumination research --out` would have written it."""

from __future__ import annotations

import json

from rumination.errors import UsageError
from rumination.reports.render import FILE_FORMATS, render_report, report_bytes
from rumination.settings import Settings
from rumination.store.run_store import RunStore


def export_run(store: RunStore, run_id: str) -> str:
    """Settings (no API key), every turn with its raw text and observation, the sources and
    the report if the run finished, as indented JSON."""
    record = store.get_run(run_id)
    report = store.report(run_id)
    document = {
        "run_id": record.run_id, "status": record.status, "question": record.question,
        "model": record.model, "backend": record.backend, "mode": record.mode,
        "created_at": record.created_at, "updated_at": record.updated_at,
        "settings": json.loads(record.settings_json),
        "turns": [t.model_dump(mode="json") for t in store.turns(run_id)],
        "sources": [s.model_dump(mode="json") for s in store.sources(run_id)],
        "report": report.model_dump(mode="json") if report else None,
    }  # fmt: skip
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def export_report(store: RunStore, run_id: str, fmt: str) -> str | bytes:
    """The run's report in `fmt` (bytes for pdf and docx); UsageError when the run has none
    (it did not finish)."""
    record = store.get_run(run_id)
    report = store.report(run_id)
    if report is None:
        raise UsageError(f"run {run_id} has no report (status {record.status}); "
                         f"`rumination runs resume {run_id}` finishes it")  # fmt: skip
    if fmt in FILE_FORMATS:
        return report_bytes(report, fmt)
    style = Settings.load_saved(record.settings_json).citation_style
    return render_report(report, fmt, citation_style=style)
