"""Render a Report as Markdown (numbered source list or footnotes), JSON (DESIGN.md schema,
plus `figures`; see report.schema.json), a standalone HTML page (rumination.reports.html), or
as a file: that HTML page printed to PDF (rumination.reports.pdf, extra `pdf`) or a Word
document (rumination.reports.word, extra `docx`)."""

from __future__ import annotations

import re

from rumination.citation_marks import REFERENCE
from rumination.errors import UsageError
from rumination.models import Report
from rumination.reports.labels import changes_lines, provenance_label
from rumination.templates import render

TEXT_FORMATS = ("md", "json", "html")
FILE_FORMATS = ("pdf", "docx")  # bytes: report_bytes(), never render_report()
FORMATS = TEXT_FORMATS + FILE_FORMATS
CITATION_STYLES = ("numbered", "footnotes")
MEDIA_TYPES = {
    "md": "text/markdown; charset=utf-8",
    "json": "application/json",
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}


def check_format(fmt: str) -> str:
    """`fmt` if it can be rendered here, else a UsageError saying why (one line; a missing
    extra is named)."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if fmt in ("html", "pdf"):
        from rumination.reports.html import require_markdown

        require_markdown()
    if fmt == "pdf":
        from rumination.reports.pdf import require_weasyprint

        require_weasyprint()
    if fmt == "docx":
        from rumination.reports.word import require_python_docx

        require_python_docx()
    return fmt


def support_line(report: Report) -> str:
    """The support figures in one sentence, or "" when no statement was checked."""
    f = report.figures
    if f is None or f.citation_accuracy is None:
        return ""
    judges = ", ".join(sorted({s.judge for s in report.statements})) or "none"
    return (
        f"Citation accuracy {f.citation_accuracy:.1%}: {f.statements_supported} of "
        f"{f.statements_checked} cited statements supported by their source "
        f"({f.statements_unsupported} unsupported, {f.statements_unsure} unsure; "
        f"{f.effective_citations} effective citations; judge {judges})."
    )


def _md_text(text: str) -> str:
    return re.sub(r"([\\\[\]])", r"\\\1", text)


def _md_url(url: str) -> str:
    return f"<{url}>" if re.search(r"[\s()<>]", url) else url


def to_footnotes(answer: str, numbers: set[int]) -> str:
    """`[k]` citation references written as Markdown footnote references `[^k]`."""
    return REFERENCE.sub(
        lambda m: f"[^{m.group(1)}]" if int(m.group(1)) in numbers else m.group(0), answer
    )


def _changed_sources(report: Report) -> dict[str, list[dict[str, str]]]:
    """report.changes' new and dropped sources as Markdown link parts, escaped."""
    changes = report.changes
    if changes is None:
        return {"new": [], "dropped": []}
    return {kind: [{"title": _md_text(s.title), "url": _md_url(s.url)} for s in sources]
            for kind, sources in (("new", changes.new_sources),
                                  ("dropped", changes.dropped_sources))}


def render_markdown(report: Report, citation_style: str = "numbered") -> str:
    if citation_style not in CITATION_STYLES:
        raise ValueError(f"unknown citation style {citation_style!r}")
    footnotes = citation_style == "footnotes"
    answer = report.answer_markdown
    if footnotes:
        answer = to_footnotes(answer, {c.number for c in report.citations})
    fetched = {s.source_id: s.fetched_at.date().isoformat() for s in report.sources if s.fetched_at}
    sources = [
        {"number": c.number, "title": _md_text(c.title), "url": _md_url(c.url),
         "accessed": fetched.get(c.source_id)}
        for c in report.citations
    ]
    unsupported = [
        {"number": c.number, "statement": c.statement, "judge": c.judge, "score": c.score,
         "reason": c.reason, "evidence": c.evidence, "removed": c.action == "dropped"}
        for c in report.statements if c.action in ("flagged", "dropped")
    ]
    text = render(
        "report.md", package="rumination.reports", answer=answer, sources=sources,
        footnotes=footnotes, warnings=report.warnings, label=provenance_label(report),
        accuracy=support_line(report), unsupported=unsupported,
        changes=report.changes, changes_lines=changes_lines(report.changes),
        changed_sources=_changed_sources(report),
    )
    return text + "\n"


def render_report(report: Report, fmt: str = "md", *, citation_style: str = "numbered") -> str:
    """The report as text: md, json or html (pdf and docx are files: report_bytes)."""
    if fmt == "json":
        return report.model_dump_json(indent=2) + "\n"
    if fmt == "md":
        return render_markdown(report, citation_style)
    if fmt == "html":
        from rumination.reports.html import render_html

        return render_html(report)
    if fmt in FILE_FORMATS:
        raise ValueError(f"{fmt} is a binary format: use report_bytes()")
    raise ValueError(f"unknown report format {fmt!r} (choose from {', '.join(FORMATS)})")


def report_bytes(report: Report, fmt: str = "md", *, citation_style: str = "numbered") -> bytes:
    """The report as the bytes of a file in any format (text formats in UTF-8)."""
    if fmt == "pdf":
        from rumination.reports.pdf import render_pdf

        return render_pdf(report)
    if fmt == "docx":
        from rumination.reports.word import render_docx

        return render_docx(report)
    return render_report(report, fmt, citation_style=citation_style).encode("utf-8")
