"""The JSON Schema of the JSON report, shipped as package data (reports/report.schema.json)."""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

SCHEMA_FILE = "report.schema.json"


def report_schema() -> dict[str, Any]:
    text = (files("rumination.reports") / SCHEMA_FILE).read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data
