"""Report rendering: Markdown, JSON (with its JSON Schema) and standalone HTML. Citation
resolution and report figures live in the core (rumination.support.citations,
rumination.support.figures), because the core's Report already carries resolved citations."""

from rumination.reports.render import CITATION_STYLES, FORMATS, check_format, render_report
from rumination.reports.schema import report_schema

__all__ = ["CITATION_STYLES", "FORMATS", "check_format", "render_report", "report_schema"]
