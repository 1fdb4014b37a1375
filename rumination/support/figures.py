"""Report figures: how much of a report is cited, and how long it is.

`compute_figures(answer_markdown, resolved, sources)` takes the answer after citation
resolution (references written `[k]`), the resolution result and every source the run
showed the model. `tokens_estimate` is the answer's length by the estimate the context budget
uses (rumination.llm.tokens.estimate_tokens): on the measured samples never below real
tokenizers, and 6-35% above them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rumination.citation_marks import REFERENCE
from rumination.cjk import CJK_CHARACTER, CJK_LETTER
from rumination.llm.tokens import estimate_tokens
from rumination.models import Report, ReportFigures, Source
from rumination.support.citations import CitationResult

_WORD = re.compile(r"\d+(?:[.,]\d+)*|\w+(?:['’-]\w+)*")
_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_HEADING = re.compile(r"^\s{0,3}#{1,6}(\s|$)")
_RULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")


def count_words(text: str) -> int:
    """Words of Latin-script text plus one per CJK letter (CJK has no spaces); CJK
    punctuation and fullwidth forms are not words."""
    return len(CJK_LETTER.findall(text)) + len(_WORD.findall(CJK_CHARACTER.sub(" ", text)))


def paragraphs(markdown: str) -> list[str]:
    """Prose units of a Markdown text: paragraphs, list items and tables (one unit each);
    headings, rules and fenced code are not paragraphs."""
    units: list[str] = []
    for block in _BLANK_LINE.split(_FENCE.sub("", markdown)):
        lines = [
            line for line in block.splitlines()
            if line.strip() and not _HEADING.match(line) and not _RULE.match(line)
        ]
        if not lines:
            continue
        if _LIST_ITEM.match(lines[0]):
            items: list[list[str]] = []
            for line in lines:
                if _LIST_ITEM.match(line) or not items:
                    items.append([])
                items[-1].append(line)
            units.extend("\n".join(item) for item in items)
        else:
            units.append("\n".join(lines))
    return units


def compute_figures(
    answer_markdown: str, resolved: CitationResult, sources: Sequence[Source]
) -> ReportFigures:
    numbers = {c.number for c in resolved.citations}

    def references(text: str) -> int:
        return sum(1 for m in REFERENCE.finditer(text) if int(m.group(1)) in numbers)

    units = paragraphs(answer_markdown)
    cited_units = sum(1 for unit in units if references(unit))
    cited_ids = {c.source_id for c in resolved.citations}
    prose = REFERENCE.sub(" ", answer_markdown)
    return ReportFigures(
        citations=references(_FENCE.sub("", answer_markdown)),
        distinct_sources_cited=len(cited_ids),
        sources_not_cited=len({s.source_id for s in sources} - cited_ids),
        invalid_ids=len(set(resolved.invalid_ids)),
        citations_removed=len(resolved.invalid_ids),
        cited_paragraph_share=round(cited_units / len(units), 4) if units else 0.0,
        words=count_words(prose),
        tokens_estimate=estimate_tokens(answer_markdown),
    )


def report_figures(report: Report) -> ReportFigures:
    """The report's figures; computed from its text for a report stored without them."""
    if report.figures is not None:
        return report.figures
    resolved = CitationResult(text=report.answer_markdown, citations=report.citations)
    return compute_figures(report.answer_markdown, resolved, report.sources)


def report_counts(report: Report) -> dict[str, int]:
    """The counts every surface gives (CLI, events, batch, API, MCP), one meaning per word:
    `citations` are the citation marks in the text, `sources_cited` the distinct sources
    they point at, `sources` every source the run saw."""
    figures = report_figures(report)
    return {"citations": figures.citations, "sources_cited": figures.distinct_sources_cited,
            "sources": len(report.sources), "warnings": len(report.warnings)}


UNCITED_WARNING = "no cited answer"


def uncited_reason(report: Report) -> str | None:
    """Why a report is not a cited answer, or None when it is one: no final answer, no
    source seen, or nothing cited. Such a run is not a success (exit 1), though its report
    is written."""
    if not report.answer_markdown.strip():
        return "no final answer"
    if not report.sources:
        return "no source seen"
    if not report.citations:
        return "nothing cited"
    return None


def with_outcome_warning(report: Report) -> Report:
    """The report with a warning naming why it is not a cited answer (once)."""
    reason = uncited_reason(report)
    note = f"{UNCITED_WARNING}: {reason}"
    if reason is None or note in report.warnings:
        return report
    return report.model_copy(update={"warnings": [*report.warnings, note]})
