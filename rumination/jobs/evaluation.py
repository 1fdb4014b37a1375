"""`rumination eval SUITE`: every question of a suite through research, then scored.

A suite is JSONL or YAML of `{id, question, answer?}` (other fields are ignored, so converted
SimpleQA or DeepResearch Bench rows load as they are). The questions run through the batch
machinery (concurrent, resumable, idempotent: reports land in OUT_DIR/reports, a re-run skips
finished items), then each item is scored from its stored report: with an `answer`, exact
match, token F1, whether the answer appears in the report, and a SimpleQA-style grade when the
llm judge is configured; always citation accuracy, effective citations, sources seen and
cited, turns, tokens, wall time and warnings. Written to OUT_DIR: `results.jsonl`,
`summary.json` and `summary.md` (with deltas against a previous summary when given).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import fmean
from typing import Any

from pydantic import BaseModel, Field, field_validator

from rumination.errors import UsageError
from rumination.events import EventHandler
from rumination.jobs.batch import Batch, JobResult, Renderer
from rumination.jobs.files import Job, check_output_name
from rumination.jobs.output import write_atomic
from rumination.jobs.records import load_records
from rumination.llm.client import LLMClient
from rumination.models import Report
from rumination.settings import Settings
from rumination.store.run_store import open_store
from rumination.support.scoring import (
    GRADES,
    answer_in_report,
    exact_match,
    grade,
    short_answer,
    token_f1,
)

RESULTS_FILE = "results.jsonl"
SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"
REPORTS_DIR = "reports"
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class EvalItem(BaseModel):
    model_config = {"extra": "ignore"}

    id: str = Field(min_length=1)
    question: str = Field(min_length=1)
    answer: str | None = None

    @field_validator("id", "answer", mode="before")
    @classmethod
    def _numbers_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value

    @field_validator("id")
    @classmethod
    def _names_a_report(cls, value: str) -> str:
        check_output_name(report_name(value))
        return value


def report_name(item_id: str) -> str:
    """The item's report file name in OUT_DIR/reports (without extension): characters other
    than letters, digits, `.`, `_`, `-` become `-`."""
    return _SAFE.sub("-", item_id)


@dataclass
class ItemResult:
    id: str
    question: str
    expected: str | None
    status: str
    run_id: str | None = None
    short_answer: str = ""
    exact_match: float | None = None
    token_f1: float | None = None
    answer_in_report: float | None = None
    grade: str | None = None
    citation_accuracy: float | None = None
    effective_citations: int = 0
    statements_checked: int = 0
    sources_seen: int = 0
    sources_cited: int = 0
    turns: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None
    stopped_by: str | None = None
    seconds: float = 0.0
    warnings: int = 0
    error: str | None = None


def load_suite(path: Path) -> list[EvalItem]:
    """The items of a JSONL or YAML suite; every error names its line or item, in one line."""
    items = load_records(path, EvalItem, noun="item", needs="`id` and `question`")
    ids = [report_name(item.id) for item in items]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise UsageError(f"{path}: two items share the id {repeated[0]!r}")
    return items


async def score_item(
    item: EvalItem, job: JobResult, report: Report | None, grader: LLMClient | None
) -> ItemResult:
    result = ItemResult(id=item.id, question=item.question, expected=item.answer,
                        status=job.status, run_id=job.run_id, seconds=job.seconds,
                        error=job.error)
    if report is None:
        if item.answer is not None:
            result.exact_match = result.token_f1 = result.answer_in_report = 0.0
        return result
    f = report.figures
    result.short_answer = short_answer(report.answer_markdown)
    result.citation_accuracy = f.citation_accuracy if f else None
    result.effective_citations = f.effective_citations if f else 0
    result.statements_checked = f.statements_checked if f else 0
    result.sources_seen = len(report.sources)
    result.sources_cited = len(report.citations)
    result.turns = report.turns
    result.prompt_tokens = report.usage.prompt_tokens
    result.completion_tokens = report.usage.completion_tokens
    result.cost, result.stopped_by = report.cost, report.stopped_by
    result.warnings = len(report.warnings)
    if item.answer is not None:
        result.exact_match = exact_match(item.answer, result.short_answer)
        result.token_f1 = round(token_f1(item.answer, result.short_answer), 4)
        result.answer_in_report = answer_in_report(item.answer, report.answer_markdown)
        if grader is not None:
            result.grade = await grade(grader, item.question, item.answer, result.short_answer)
    return result


def _mean(values: Sequence[float | int | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(fmean(present), 4) if present else None


def summarize(results: Sequence[ItemResult]) -> dict[str, Any]:
    """The suite's figures: means over items (scores over items with an answer; citation
    accuracy over items whose report had cited statements)."""
    done = [r for r in results if r.status != "failed"]
    graded = [r.grade for r in results if r.grade is not None]
    summary: dict[str, Any] = {
        "items": len(results),
        "finished": len(done),
        "failed": len(results) - len(done),
        "with_answer": sum(r.expected is not None for r in results),
        "exact_match": _mean([r.exact_match for r in results]),
        "token_f1": _mean([r.token_f1 for r in results]),
        "answer_in_report": _mean([r.answer_in_report for r in results]),
        "graded": len(graded),
        **{f"grade_{g}": round(graded.count(g) / len(graded), 4) if graded else None
           for g in GRADES},
        "citation_accuracy": _mean([r.citation_accuracy for r in done]),
        "effective_citations": _mean([r.effective_citations for r in done]),
        "sources_seen": _mean([r.sources_seen for r in done]),
        "sources_cited": _mean([r.sources_cited for r in done]),
        "turns": _mean([r.turns for r in done]),
        "prompt_tokens": _mean([r.prompt_tokens for r in done]),
        "completion_tokens": _mean([r.completion_tokens for r in done]),
        "total_tokens": sum(r.prompt_tokens + r.completion_tokens for r in results),
        "total_cost": _total([r.cost for r in results]),
        "stopped_by_budget": sum(r.stopped_by is not None for r in done),
        "seconds": _mean([r.seconds for r in done]),
        "warnings": _mean([r.warnings for r in done]),
    }
    return summary


def _total(costs: list[float | None]) -> float | None:
    """The sum of the priced costs; None when nothing was priced."""
    priced = [cost for cost in costs if cost is not None]
    return round(sum(priced), 6) if priced else None


def load_previous(path: Path) -> dict[str, Any]:
    """A previous summary: its summary.json, or the eval folder holding it."""
    file = path / SUMMARY_JSON if path.is_dir() else path
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the summary to compare with, {file}: {exc}") from None
    if not isinstance(data, dict) or "items" not in data:
        raise UsageError(f"{file} is not a `rumination eval` summary")
    return data


def deltas(summary: dict[str, Any], previous: dict[str, Any]) -> dict[str, float]:
    """Metric -> now minus before, for every numeric figure both summaries have."""
    return {
        key: round(value - previous[key], 4)
        for key, value in summary.items()
        if isinstance(value, int | float) and isinstance(previous.get(key), int | float)
    }


def _number(value: float, sign: str = "") -> str:
    if abs(value) >= 100:
        return f"{value:{sign},.0f}"
    text = f"{value:{sign}.3f}".rstrip("0").rstrip(".")
    return text if text not in ("", "+", "-", "+0", "-0") else f"{sign and '+'}0"


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    return _number(value) if isinstance(value, float) else str(value)


def summary_table(summary: dict[str, Any], previous: dict[str, Any] | None = None) -> str:
    """The summary as a Markdown table, with previous values and deltas when given."""
    if previous is None:
        lines = ["| metric | value |", "|---|---|"]
        lines += [f"| {k} | {_cell(v)} |" for k, v in summary.items()]
        return "\n".join(lines)
    change = deltas(summary, previous)
    lines = ["| metric | value | previous | delta |", "|---|---|---|---|"]
    for key, value in summary.items():
        delta = change.get(key)
        shown = "–" if delta is None else _number(delta, "+")
        lines.append(f"| {key} | {_cell(value)} | {_cell(previous.get(key))} | {shown} |")
    return "\n".join(lines)


def items_table(results: Sequence[ItemResult]) -> str:
    head = ("| id | status | EM | F1 | in report | grade | citation acc. | effective | "
            "seen | cited | turns | tokens | s | warnings |")
    lines = [head, "|" + "---|" * 14]
    for r in results:
        lines.append(
            f"| {r.id} | {r.status} | {_cell(r.exact_match)} | {_cell(r.token_f1)} | "
            f"{_cell(r.answer_in_report)} | {_cell(r.grade)} | {_cell(r.citation_accuracy)} | "
            f"{r.effective_citations} | {r.sources_seen} | {r.sources_cited} | {r.turns} | "
            f"{r.prompt_tokens + r.completion_tokens} | {r.seconds:.1f} | {r.warnings} |"
        )
    return "\n".join(lines)


def _grader(settings: Settings) -> LLMClient | None:
    if settings.judge != "llm":
        return None
    s = settings
    return LLMClient(s.judge_url or s.llm_urls[0], s.judge_model or s.model, api_key=s.api_key,
                     temperature=0.0, timeout_s=s.request_timeout_s,
                     connect_timeout_s=s.connect_timeout_s, retries=s.retries, stream=False)


async def run_eval(
    items: list[EvalItem], out_dir: Path, settings: Settings, render: Renderer, *,
    concurrency: int = 4, previous: dict[str, Any] | None = None,
    on_event: EventHandler | None = None,
) -> tuple[list[ItemResult], dict[str, Any]]:
    """Run and score a suite; write results.jsonl, summary.json and summary.md to out_dir."""
    jobs = [Job.model_validate({"question": item.question, "name": report_name(item.id)})
            for item in items]
    batch = Batch(jobs, out_dir / REPORTS_DIR, settings, render, concurrency=concurrency,
                  on_event=on_event)
    outcomes = await batch.run()
    store = open_store(settings)
    grader = _grader(settings)
    try:
        results = []
        for item, job in zip(items, outcomes, strict=True):
            report = store.report(job.run_id) if job.run_id and job.status != "failed" else None
            results.append(await score_item(item, job, report, grader))
    finally:
        store.close()
        if grader is not None:
            await grader.aclose()
    summary = summarize(results)
    write_atomic(out_dir / RESULTS_FILE,
                 "".join(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in results))
    write_atomic(out_dir / SUMMARY_JSON, json.dumps(summary, indent=2) + "\n")
    markdown = f"# rumination eval\n\n{summary_table(summary, previous)}\n\n## Items\n\n"
    write_atomic(out_dir / SUMMARY_MD, markdown + items_table(results) + "\n")
    return results, summary
