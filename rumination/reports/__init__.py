"""Report rendering: Markdown, JSON (with its JSON Schema), standalone HTML, PDF and Word.
Citation resolution and report figures live in the core (rumination.support.citations,
rumination.support.figures), because the core's Report already carries resolved citations."""

from rumination.reports.render import (
    CITATION_STYLES,
    FORMATS,
    MEDIA_TYPES,
    check_format,
    render_report,
    report_bytes,
)
from rumination.reports.schema import report_schema

__all__ = ["CITATION_STYLES", "FORMATS", "MEDIA_TYPES", "check_format", "render_report",
           "report_bytes", "report_schema"]
