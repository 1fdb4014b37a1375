"""Render a Report as a Word document (.docx) with python-docx (extra `docx`).

The same content as the HTML report: the SIMULATED banner where it applies, the question as
title, the run's metadata and figures, the "Changes since" section when there is one, the
answer (headings, paragraphs, lists, tables, code, quotes; raw HTML is shown as text), the
sources and the citations their sources do not support. Each citation number `[k]` is an
internal hyperlink to source k's bookmark in the source list, a flagged one is red and marked
"?"; every source with a web or file URL is an external hyperlink. Pages are numbered in
the footer.

python-docx has no call for hyperlinks, bookmarks or fields, so those few elements are
written as WordprocessingML (w:hyperlink, w:bookmarkStart/End, w:fldSimple).
"""

from __future__ import annotations

import io
from datetime import date
from typing import TYPE_CHECKING, Any

from rumination.errors import UsageError
from rumination.models import CheckedStatement, Report
from rumination.reports.html import answer_tokens, linkable
from rumination.reports.labels import changes_lines, provenance_label

if TYPE_CHECKING:
    from docx.document import Document
    from docx.text.paragraph import Paragraph
    from markdown_it.token import Token

_RED = "B00020"
_LINK_BLUE = "0B5CAD"
_CJK_FONT = "Noto Serif CJK SC"


def require_python_docx() -> None:
    """Raise a one-line UsageError naming the extra when python-docx is missing."""
    try:
        import docx  # noqa: F401
    except ImportError:
        raise UsageError(
            "--format docx needs python-docx: pip install 'rumination[docx]'"
        ) from None


def bookmark_name(number: int) -> str:
    return f"source_{number}"


# --- WordprocessingML that python-docx has no call for ----------------------------------


def _run_element(text: str, *, color: str | None = None, underline: bool = False,
                 superscript: bool = False) -> Any:
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    run = OxmlElement("w:r")
    props = OxmlElement("w:rPr")
    for tag, value in (("w:color", color), ("w:u", "single" if underline else None),
                       ("w:vertAlign", "superscript" if superscript else None)):
        if value is not None:
            element = OxmlElement(tag)
            element.set(qn("w:val"), value)
            props.append(element)
    run.append(props)
    body = OxmlElement("w:t")
    body.set(qn("xml:space"), "preserve")
    body.text = text
    run.append(body)
    return run


def add_hyperlink(paragraph: Paragraph, text: str, *, url: str | None = None,
                  anchor: str | None = None, color: str = _LINK_BLUE,
                  superscript: bool = False) -> None:
    """A hyperlink run: to `url` (external) or to the bookmark `anchor` (internal)."""
    from docx.opc.constants import RELATIONSHIP_TYPE
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    link = OxmlElement("w:hyperlink")
    if url is not None:
        link.set(qn("r:id"), paragraph.part.relate_to(url, RELATIONSHIP_TYPE.HYPERLINK,
                                                      is_external=True))
    if anchor is not None:
        link.set(qn("w:anchor"), anchor)
    link.append(_run_element(text, color=color, underline=not superscript,
                             superscript=superscript))
    paragraph._p.append(link)


def add_bookmark(paragraph: Paragraph, name: str, bookmark_id: int) -> None:
    """A bookmark around the paragraph's content so far (internal links point to it)."""
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    start, end = OxmlElement("w:bookmarkStart"), OxmlElement("w:bookmarkEnd")
    start.set(qn("w:id"), str(bookmark_id))
    start.set(qn("w:name"), name)
    end.set(qn("w:id"), str(bookmark_id))
    paragraph._p.insert(0 if paragraph._p.pPr is None else 1, start)
    paragraph._p.append(end)


def _add_page_numbers(document: Document, label: str) -> None:
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    footer = document.sections[0].footer.paragraphs[0]
    footer.add_run(f"{label} · page ")
    for instruction in ("PAGE", "NUMPAGES"):
        field = OxmlElement("w:fldSimple")
        field.set(qn("w:instr"), instruction)
        field.append(_run_element("1"))
        footer._p.append(field)
        if instruction == "PAGE":
            footer.add_run(" of ")


# --- the answer's Markdown ----------------------------------------------------------------


class _AnswerWriter:
    """Walks markdown-it's tokens of the answer into paragraphs of `document`."""

    def __init__(self, document: Document, report: Report) -> None:
        self.document = document
        self.checked = {s.occurrence: s for s in report.statements if s.occurrence is not None}
        self.occurrence = -1
        self.lists: list[str] = []  # "List Bullet" / "List Number", innermost last
        self.quote = 0

    def write(self, tokens: list[Token]) -> None:
        index = 0
        while index < len(tokens):
            index = self._block(tokens, index)

    def _block(self, tokens: list[Token], index: int) -> int:
        token = tokens[index]
        kind = token.type
        if kind == "heading_open":
            level = min(int(token.tag[1]), 4)
            self._inline(self.document.add_heading(level=level), tokens[index + 1])
            return index + 3
        if kind == "paragraph_open":
            self._inline(self._paragraph(), tokens[index + 1])
            return index + 3
        if kind in ("bullet_list_open", "ordered_list_open"):
            self.lists.append("List Bullet" if kind == "bullet_list_open" else "List Number")
        elif kind in ("bullet_list_close", "ordered_list_close"):
            self.lists.pop()
        elif kind == "blockquote_open":
            self.quote += 1
        elif kind == "blockquote_close":
            self.quote -= 1
        elif kind in ("fence", "code_block"):
            run = self._paragraph().add_run(token.content.rstrip("\n"))
            run.font.name = "DejaVu Sans Mono"
        elif kind == "table_open":
            return self._table(tokens, index)
        elif kind == "html_block" and token.content.strip():
            self._paragraph().add_run(token.content.strip())
        return index + 1

    def _paragraph(self) -> Paragraph:
        if self.lists:
            depth = len(self.lists)
            style = self.lists[-1] + (f" {depth}" if depth > 1 else "")
            return self.document.add_paragraph(style=style if depth <= 3 else self.lists[-1])
        return self.document.add_paragraph(style="Quote" if self.quote else None)

    def _table(self, tokens: list[Token], index: int) -> int:
        rows: list[list[Token]] = []
        while tokens[index].type != "table_close":
            token = tokens[index]
            if token.type == "tr_open":
                rows.append([])
            elif token.type == "inline" and rows:
                rows[-1].append(token)
            index += 1
        if rows:
            width = max(len(row) for row in rows)
            table = self.document.add_table(rows=len(rows), cols=width)
            table.style = "Table Grid"
            for r, row in enumerate(rows):
                for c, cell in enumerate(row):
                    self._inline(table.cell(r, c).paragraphs[0], cell, bold=r == 0)
        return index + 1

    def _inline(self, paragraph: Paragraph, token: Token, bold: bool = False) -> None:
        strong, emphasis, href = bold, False, None
        for child in token.children or []:
            kind = child.type
            if kind == "strong_open" or kind == "strong_close":
                strong = kind == "strong_open" or bold
            elif kind in ("em_open", "em_close"):
                emphasis = kind == "em_open"
            elif kind == "link_open":
                href = str(child.attrs.get("href", ""))
            elif kind == "link_close":
                href = None
            elif kind == "citation":
                self._citation(paragraph, child.meta["number"])
            elif kind in ("softbreak", "hardbreak"):
                paragraph.add_run(" " if kind == "softbreak" else "\n")
            elif kind in ("text", "code_inline", "html_inline"):
                if href and linkable(href):
                    add_hyperlink(paragraph, child.content, url=href)
                    continue
                run = paragraph.add_run(child.content)
                run.bold, run.italic = strong or None, emphasis or None
                if kind == "code_inline":
                    run.font.name = "DejaVu Sans Mono"

    def _citation(self, paragraph: Paragraph, number: int) -> None:
        self.occurrence += 1
        checked: CheckedStatement | None = self.checked.get(self.occurrence)
        flagged = checked is not None and checked.action == "flagged"
        add_hyperlink(paragraph, f"[{number}]{'?' if flagged else ''}",
                      anchor=bookmark_name(number), superscript=True,
                      color=_RED if flagged else _LINK_BLUE)


# --- the document -------------------------------------------------------------------------


def _styles(document: Document, cjk: bool) -> None:
    from docx.oxml.ns import qn
    from docx.shared import Pt

    normal = document.styles["Normal"]
    normal.font.name = "Georgia"
    normal.font.size = Pt(11)
    if cjk:  # Word picks the East Asian font for CJK characters from this attribute
        normal.element.get_or_add_rPr().get_or_add_rFonts().set(qn("w:eastAsia"), _CJK_FONT)


def _metadata(document: Document, report: Report) -> None:
    rows = [("Model", report.model), ("Mode", report.mode), ("Date", date.today().isoformat()),
            ("Run", report.run_id), ("Turns", str(report.turns)),
            ("Tokens", f"{report.usage.prompt_tokens} prompt, "
                       f"{report.usage.completion_tokens} completion"
                       + (" (estimated)" if report.usage.estimated else ""))]
    f = report.figures
    if f is not None:
        rows += [("Citations", str(f.citations)),
                 ("Sources cited", str(f.distinct_sources_cited)),
                 ("Seen, not cited", str(f.sources_not_cited)),
                 ("Invalid ids removed", str(f.invalid_ids))]
        if f.citation_accuracy is not None:
            rows += [("Citation accuracy", f"{f.citation_accuracy:.1%} ({f.statements_supported}"
                      f" of {f.statements_checked} statements supported)"),
                     ("Effective citations", str(f.effective_citations))]
        rows += [("Paragraphs cited", f"{f.cited_paragraph_share:.0%}"),
                 ("Length", f"{f.words} words, ~{f.tokens_estimate} tokens")]
    table = document.add_table(rows=len(rows), cols=2)
    for row, (name, value) in zip(table.rows, rows, strict=True):
        row.cells[0].paragraphs[0].add_run(name).bold = True
        row.cells[1].text = value


def _changes(document: Document, report: Report) -> None:
    changes = report.changes
    if changes is None:
        return
    document.add_heading(f"Changes since {changes.since[:10]}", level=1)
    document.add_paragraph(f"Compared with run {changes.since_run}.")
    for line in changes_lines(report.changes):
        document.add_paragraph(line, style="List Bullet")
    for heading, sources in (("New sources", changes.new_sources),
                             ("No longer cited", changes.dropped_sources)):
        if sources:
            document.add_heading(heading, level=2)
            for source in sources:
                item = document.add_paragraph(style="List Bullet")
                _source_title(item, source.title, source.url)
    for heading, statements in (("New statements", changes.new_statements),
                                ("Statements gone", changes.removed_statements)):
        if statements:
            document.add_heading(heading, level=2)
            for statement in statements:
                document.add_paragraph(statement, style="List Bullet")
    if not (changes.new_sources or changes.dropped_sources or changes.new_statements
            or changes.removed_statements):
        document.add_paragraph("No source or statement changed.")


def _source_title(paragraph: Paragraph, title: str, url: str) -> None:
    if linkable(url):
        add_hyperlink(paragraph, title, url=url)
    else:
        paragraph.add_run(title)
    paragraph.add_run(f"  {url}").italic = True


def _sources(document: Document, report: Report) -> None:
    document.add_heading("Sources", level=1)
    if not report.citations:
        document.add_paragraph("No sources were cited.")
    accessed = {s.source_id: s.fetched_at.date().isoformat()
                for s in report.sources if s.fetched_at}
    for citation in report.citations:
        item = document.add_paragraph()
        item.add_run(f"[{citation.number}] ")
        _source_title(item, citation.title, citation.url)
        if citation.source_id in accessed:
            item.add_run(f" (accessed {accessed[citation.source_id]})")
        add_bookmark(item, bookmark_name(citation.number), citation.number)
    unsupported = [s for s in report.statements if s.action in ("flagged", "dropped")]
    if unsupported:
        document.add_heading("Citations not supported by their source", level=1)
        for s in unsupported:
            removed = " (removed)" if s.action == "dropped" else ""
            text = (f"[{s.number}]{removed} “{s.statement}” — {s.judge}, score {s.score:.2f}"
                    + (f": {s.reason}" if s.reason else "")
                    + (f". Closest evidence: “{s.evidence}”" if s.evidence else ""))
            document.add_paragraph(text, style="List Bullet")
    if report.warnings:
        document.add_heading("Warnings", level=1)
        for warning in report.warnings:
            document.add_paragraph(warning, style="List Bullet")


def render_docx(report: Report) -> bytes:
    require_python_docx()
    import docx
    from docx.shared import RGBColor

    from rumination.cjk import has_cjk

    document = docx.Document()
    _styles(document, has_cjk(report.question + report.answer_markdown))
    label = provenance_label(report)
    properties = document.core_properties
    properties.title = ("[SIMULATED] " if report.simulated else "") + report.question[:200]
    properties.author, properties.comments = "rumination", label
    if report.simulated:
        banner = document.add_paragraph().add_run(
            "SIMULATED — this report was written by rumination's built-in protocol "
            "simulator, not by a language model.")
        banner.bold, banner.font.color.rgb = True, RGBColor.from_string(_RED)
    document.add_heading(report.question, level=0)
    _metadata(document, report)
    _changes(document, report)
    _AnswerWriter(document, report).write(answer_tokens(report))
    _sources(document, report)
    _add_page_numbers(document, label)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()
