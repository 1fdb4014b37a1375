"""What changed between two reports of the same job (or question): the "Changes since DATE"
section a report can open with, and `rumination runs diff RUN_A RUN_B`.

Sources are compared by the cited URL in its canonical form (rumination.urls.normalize_url:
the fragment, a local corpus passage `#passage-k`, is no part of a document's identity), so
a document that moved to another address is one source dropped and one new. Statements are
the answer's sentences compared after SQuAD-style normalisation (support.scoring.normalize:
case, punctuation and articles do not count); a sentence that still matches one of the other
report at a word-sequence similarity of at least SIMILAR is an edit of wording, no change.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher

from rumination.errors import UsageError
from rumination.models import ChangedSource, Citation, FigureChange, Report, ReportChanges
from rumination.store.run_store import FINISHED, RunStore
from rumination.support.scoring import normalize
from rumination.support.statements import sentences
from rumination.urls import normalize_url

SIMILAR = 0.8
PREVIOUS = "previous"


def _words(sentence: str) -> tuple[str, ...]:
    return tuple(re.findall(r"\w+", normalize(sentence)))


def _unmatched(mine: list[str], theirs: list[str]) -> list[str]:
    """The sentences of `mine` that no sentence of `theirs` matches, in order."""
    exact = {_words(s) for s in theirs}
    others = [w for w in exact if w]
    left = []
    for sentence in mine:
        words = _words(sentence)
        if words in exact:
            continue
        matcher = SequenceMatcher(a=words, autojunk=False)
        for other in others:
            matcher.set_seq2(other)
            if matcher.real_quick_ratio() >= SIMILAR and matcher.ratio() >= SIMILAR:
                break
        else:
            left.append(sentence)
    return left


def _cited(citations: list[Citation]) -> dict[str, ChangedSource]:
    found: dict[str, ChangedSource] = {}
    for c in citations:
        found.setdefault(normalize_url(c.url), ChangedSource(url=c.url, title=c.title))
    return found


def _accuracy(report: Report) -> float | None:
    return report.figures.citation_accuracy if report.figures else None


def compare_reports(before: Report, after: Report, since: str) -> ReportChanges:
    """What `after` says that `before` (made at `since`, ISO 8601) did not, and the reverse."""
    old, new = _cited(before.citations), _cited(after.citations)
    old_sentences = sentences(before.answer_markdown)
    new_sentences = sentences(after.answer_markdown)
    return ReportChanges(
        since_run=before.run_id, since=since,
        new_sources=[s for key, s in new.items() if key not in old],
        dropped_sources=[s for key, s in old.items() if key not in new],
        new_statements=_unmatched(new_sentences, old_sentences),
        removed_statements=_unmatched(old_sentences, new_sentences),
        figures={
            "citation_accuracy": FigureChange(before=_accuracy(before), after=_accuracy(after)),
            "sources_cited": FigureChange(before=len(old), after=len(new)),
        },
    )  # fmt: skip


def stored_report(store: RunStore, run_id: str) -> tuple[Report, str]:
    """A finished run's report and when the run was made; UsageError for any other run."""
    record = store.get_run(run_id)
    report = store.report(run_id)
    if report is None or record.status != FINISHED:
        raise UsageError(f"run {run_id} has no finished report (status {record.status})")
    return report, record.created_at


def changes_since(store: RunStore, report: Report, compare_to: str = PREVIOUS
                  ) -> ReportChanges | None:
    """`report` (a stored run) against `compare_to`: a run id, or "previous" for the last
    finished run of the same job or question before it (None when it is the first)."""
    if compare_to == PREVIOUS:
        previous = store.previous_run(report.run_id)
        if previous is None:
            return None
        compare_to = previous.run_id
    before, since = stored_report(store, compare_to)
    return compare_reports(before, report, since)


def with_changes(store: RunStore, report: Report, compare_to: str = PREVIOUS) -> Report:
    """`report` opening with what changed since `compare_to`, stored that way too (exports
    show what the reader got); `report` itself when there is nothing to compare with."""
    changes = changes_since(store, report, compare_to)
    if changes is None:
        return report
    updated = report.model_copy(update={"changes": changes})
    store.set_status(report.run_id, FINISHED, updated)
    return updated
