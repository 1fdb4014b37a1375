"""Report rendering: Markdown, JSON (with its JSON Schema) and standalone HTML. Citation
resolution and report figures live in the core (rumination.citations, rumination.figures),
because the core's Report already carries resolved citations."""

from .render import CITATION_STYLES, FORMATS, check_format, render_report
from .schema import report_schema

__all__ = ["CITATION_STYLES", "FORMATS", "check_format", "render_report", "report_schema"]
