"""Short-answer scores for `rumination eval`: SQuAD-style normalized exact match and token F1,
and a SimpleQA-style grade (correct / incorrect / not attempted) by an llm judge.

A research report is long; the short answer scored is its first prose paragraph (headings
skipped), where a report states its answer. `answer_in_report` says whether the normalized
expected answer appears anywhere in the report.
"""

from __future__ import annotations

import re
import string
from collections import Counter

from rumination.citation_marks import REFERENCE
from rumination.errors import LLMError
from rumination.llm.client import ChatModel
from rumination.models import Message
from rumination.support.figures import paragraphs
from rumination.templates import render

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation + "“”‘’–—")
GRADES = ("correct", "incorrect", "not_attempted")
_GRADE_LETTERS = {"A": "correct", "B": "incorrect", "C": "not_attempted"}


def normalize(text: str) -> str:
    """Lowercase, no punctuation, no articles, single spaces (SQuAD's normalization)."""
    text = _ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION))
    return " ".join(text.split())


def short_answer(answer_markdown: str) -> str:
    """The report's first prose paragraph, without citation references."""
    for unit in paragraphs(answer_markdown):
        text = " ".join(REFERENCE.sub("", unit).split())
        if text:
            return text
    return ""


def exact_match(expected: str, predicted: str) -> float:
    return float(normalize(expected) == normalize(predicted))


def token_f1(expected: str, predicted: str) -> float:
    gold, guess = normalize(expected).split(), normalize(predicted).split()
    if not gold or not guess:
        return float(gold == guess)
    common = sum((Counter(gold) & Counter(guess)).values())
    if not common:
        return 0.0
    precision, recall = common / len(guess), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def answer_in_report(expected: str, answer_markdown: str) -> float:
    gold = normalize(expected)
    report = normalize(REFERENCE.sub(" ", answer_markdown))
    return float(bool(gold) and f" {gold} " in f" {report} ")


async def grade(llm: ChatModel, question: str, expected: str, predicted: str) -> str | None:
    """SimpleQA-style grade of `predicted` against `expected`, or None if the judge failed."""
    prompt = render("simpleqa_grade", question=question, target=expected, predicted=predicted)
    try:
        completion = await llm.chat([Message(role="user", content=prompt)], max_tokens=2048)
    except LLMError:
        return None
    reply = completion.content.rsplit("</think>", 1)[-1].strip()
    match = re.search(r"\b([ABC])\b", reply)
    return _GRADE_LETTERS[match.group(1)] if match else None
