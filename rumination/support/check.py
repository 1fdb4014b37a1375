"""The support check: does each cited source say what the statement citing it claims?

`check_support(report, evidence, judge, policy)` judges every cited statement–source pair of
a report (statements from rumination.support.statements, evidence from
rumination.support.evidence: the source text exactly as the model was shown it) and returns
the report with `statements`, `citations[].support` and the FACT figures (`citation_accuracy`,
`effective_citations`) filled in. Unsupported citations are then kept, flagged (marked in
every format) or dropped (the reference removed, a warning added, citations renumbered),
per the `unsupported_citations` setting.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal, Protocol

from rumination.models import CheckedStatement, Citation, Report, ReportFigures, Support
from rumination.support.citations import CitationResult
from rumination.support.figures import compute_figures
from rumination.support.statements import cited_statements, references

Policy = Literal["keep", "flag", "drop"]
_RANK = {"unsupported": 0, "unsure": 1, "supported": 2}
Action = Literal["kept", "flagged", "dropped"]
_ACTION: dict[str, Action] = {"keep": "kept", "flag": "flagged", "drop": "dropped"}
_BEFORE_PUNCTUATION = re.compile(r"[ \t]+\Z")


class Judge(Protocol):
    """Decides, for (statement, evidence) pairs, whether the evidence supports the statement."""

    name: str

    async def judge_many(self, pairs: list[tuple[str, str]]) -> list[Support]: ...


async def check_support(
    report: Report, evidence: dict[int, str], judge: Judge, policy: Policy = "flag"
) -> Report:
    """`report` with every cited statement judged against the evidence of its source."""
    numbers = {c.number: c.source_id for c in report.citations}
    cited = cited_statements(report.answer_markdown, set(numbers))
    pairs = list(dict.fromkeys((c.statement, numbers[c.number]) for c in cited))
    verdicts = await judge.judge_many([(s, evidence.get(sid, "")) for s, sid in pairs])
    by_pair = dict(zip(pairs, verdicts, strict=True))
    checked = []
    for c in cited:
        support = by_pair[(c.statement, numbers[c.number])]
        action: Action = _ACTION[policy] if support.verdict == "unsupported" else "kept"
        checked.append(CheckedStatement(
            **support.model_dump(), statement=c.statement, number=c.number,
            source_id=numbers[c.number], occurrence=c.occurrence, action=action,
        ))
    answer, citations = report.answer_markdown, report.citations
    warnings: list[str] = []
    if policy == "drop" and any(s.action == "dropped" for s in checked):
        answer, citations, checked, warnings = _drop(answer, citations, checked)
    figures = _figures(report, answer, citations, checked)
    return report.model_copy(update={
        "answer_markdown": answer,
        "citations": [c.model_copy(update={"support": _weakest(c.number, checked)})
                      for c in citations],
        "statements": checked,
        "figures": figures,
        "warnings": report.warnings + warnings,
    })


def _weakest(number: int, checked: Sequence[CheckedStatement]) -> Support | None:
    mine = [s for s in checked if s.number == number and s.action != "dropped"]
    if not mine:
        return None
    worst = min(mine, key=lambda s: (_RANK[s.verdict], s.score))
    return Support(verdict=worst.verdict, score=worst.score, evidence=worst.evidence,
                   judge=worst.judge, reason=worst.reason)


def _drop(
    answer: str, citations: list[Citation], checked: list[CheckedStatement]
) -> tuple[str, list[Citation], list[CheckedStatement], list[str]]:
    """Remove the dropped references, renumber the rest by first appearance."""
    numbers = {c.number for c in citations}
    refs = references(answer, numbers)
    dropped = {s.occurrence for s in checked if s.action == "dropped"}
    warnings = [
        f"removed citation [{s.number}] (source {s.source_id}) that its source does not "
        f"support ({s.reason or s.verdict}) in: {s.statement!r}"
        for s in checked if s.action == "dropped"
    ]
    pieces: list[str] = []
    renumber: dict[int, int] = {}
    kept_index: dict[int, int] = {}
    last = 0
    for index, ref in enumerate(refs):
        before = answer[last:ref.start()]
        if index in dropped:
            following = answer[ref.end():ref.end() + 1]
            if not following or following in ".,;:!?)\n":
                before = _BEFORE_PUNCTUATION.sub("", before)
            pieces.append(before)
        else:
            old = int(ref.group(1))
            renumber.setdefault(old, len(renumber) + 1)
            kept_index[index] = len(kept_index)
            pieces.append(before + f"[{renumber[old]}]")
        last = ref.end()
    pieces.append(answer[last:])
    new_citations = sorted(
        (c.model_copy(update={"number": renumber[c.number]})
         for c in citations if c.number in renumber),
        key=lambda c: c.number,
    )
    new_checked = [
        s.model_copy(update={
            # a dropped statement keeps its source's new number while the source is cited
            "number": renumber.get(s.number, s.number),
            "occurrence": None if s.action == "dropped" else kept_index[s.occurrence or 0],
        })
        for s in checked
    ]
    return "".join(pieces), new_citations, new_checked, warnings


def _figures(
    report: Report, answer: str, citations: list[Citation], checked: list[CheckedStatement]
) -> ReportFigures:
    old = report.figures
    resolved = CitationResult(text=answer, citations=citations)
    base = compute_figures(answer, resolved, report.sources)
    pairs: dict[tuple[str, int], str] = {}
    for s in checked:
        pairs.setdefault((s.statement, s.source_id), s.verdict)
    verdicts = list(pairs.values())
    supported = verdicts.count("supported")
    return base.model_copy(update={
        "invalid_ids": old.invalid_ids if old else 0,
        "citations_removed": old.citations_removed if old else 0,
        "statements_checked": len(verdicts),
        "statements_supported": supported,
        "statements_unsupported": verdicts.count("unsupported"),
        "statements_unsure": verdicts.count("unsure"),
        "citation_accuracy": round(supported / len(verdicts), 4) if verdicts else None,
        "effective_citations": supported,
    })
