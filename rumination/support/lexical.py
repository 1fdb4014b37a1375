"""The lexical support judge: offline, no model, hundreds of statements a second.

For a statement and the text of the source it cites: find the evidence window (one or two
consecutive sentences) that covers most of the statement's content words (stemmed; long
words, numbers and proper names weigh more). The verdict is `supported` when that coverage is
high and every number (dates included) and proper name of the statement appears in the
window, `unsupported` when coverage is low, a number or name is missing (a changed figure, a
swapped entity) or the window's best sentence and the statement disagree on negation; in
between it is `unsure`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from rumination.cjk import CJK_LETTER
from rumination.models import Support, Verdict

NAME = "lexical"
SPAN_CHARS = 300

_SENTENCE = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])\s*|\n+")
_LETTER = re.compile(r"[^\W\d_]")
CROSS_LANGUAGE = (
    "statement and source are in different scripts; the lexical judge compares words "
    "(use judge = llm)"
)
_MARKUP = re.compile(r"\*\*|__|(?:^|(?<=\s))#{1,6}\s", re.MULTILINE)
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+(?:['’][^\W\d_]+)?|[,;:()!?]|\.(?!\d)")
_BREAK = frozenset(",;:()!?.")
SCOPE_WORDS = 4  # content words after a negation that it is taken to negate
_STOPWORDS = frozenset(
    """a an and are as at be been being by can could did do does for from had has have how
    if in into is it its itself of on or so such than that the their them then there these
    they this those to was were what when where which while who whom why will with would
    also about over under more most much many very some any each other only own same just
    both all may might should must our your we you he she his her i me my one""".split()
)
_NEGATIONS = frozenset(
    "not no never cannot none neither nor without nothing nobody nowhere hardly barely".split()
)
_NUMBER_WORDS = {
    "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "twenty": "20",
    "thirty": "30", "forty": "40", "fifty": "50", "hundred": "100", "thousand": "1000",
    "twice": "2", "double": "2", "half": "0.5", "dozen": "12",
}
_SUFFIXES = ("ational", "ations", "ation", "ments", "ment", "ness", "ings", "ing", "edly",
             "ies", "ied", "ers", "er", "ed", "es", "ly", "s")


def stem(word: str) -> str:
    """A crude suffix-stripping stem (lowercase): enough to match inflections of a word."""
    word = word.lower().replace("’", "'")
    if word.endswith("n't"):
        return "not"
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word[:-1] if word.endswith("e") and len(word) > 4 else word


def _number(token: str) -> str | None:
    if token[0].isdigit():
        value = token.replace(",", "") if re.fullmatch(r"\d{1,3}(?:,\d{3})+", token) else token
        value = value.replace(",", ".")
        return value.rstrip("0").rstrip(".") if "." in value else value
    return _NUMBER_WORDS.get(token.lower())


@dataclass(frozen=True)
class _Terms:
    stems: frozenset[str]
    numbers: frozenset[str]
    negations: tuple[frozenset[str], ...]
    """per negation: the content words it negates (up to SCOPE_WORDS, within the clause)"""


def content_terms(text: str) -> _Terms:
    stems: set[str] = set()
    numbers: set[str] = set()
    negations: list[set[str]] = []
    open_scope: set[str] | None = None
    for token in _TOKEN.findall(text):
        if token in _BREAK:
            open_scope = None
            continue
        number = _number(token)
        lowered = token.lower()
        if number is not None:
            numbers.add(number)
            term = number
        elif lowered in _NEGATIONS or lowered.endswith(("n't", "n’t")):
            open_scope = set()
            negations.append(open_scope)
            continue
        elif lowered in _STOPWORDS:
            continue
        elif not token.isascii() and CJK_LETTER.search(token):
            # no spaces between words: character pairs stand in for them
            pairs = {token[i:i + 2] for i in range(max(1, len(token) - 1))}
            stems.update(pairs)
            continue
        else:
            term = stem(lowered)
            stems.add(term)
        if open_scope is not None:
            open_scope.add(term)
            if len(open_scope) >= SCOPE_WORDS:
                open_scope = None
    return _Terms(frozenset(stems), frozenset(numbers),
                  tuple(frozenset(n) for n in negations if n))


@dataclass(frozen=True)
class _Evidence:
    sentences: tuple[str, ...]
    terms: tuple[_Terms, ...]
    cjk: bool


@lru_cache(maxsize=512)
def prepare_evidence(evidence: str) -> _Evidence:
    sentences = tuple(s.strip() for s in _SENTENCE.split(evidence) if s.strip())
    return _Evidence(sentences, tuple(content_terms(s) for s in sentences), _mostly_cjk(evidence))


def _names(statement: str) -> set[str]:
    """Capitalised words not opening a sentence, and acronyms: proper names, lowercased."""
    names = set()
    for match in re.finditer(r"(?<![.!?:]\s)(?<!^)\b([A-Z][\w'’-]*[A-Za-z0-9])", statement):
        word = match.group(1)
        if word.lower() not in _STOPWORDS and word.lower() not in _NEGATIONS:
            names.add(word.lower())
    return names


def _mostly_cjk(text: str) -> bool:
    letters = len(_LETTER.findall(text[:4000]))
    return bool(letters) and len(CJK_LETTER.findall(text[:4000])) / letters > 0.3


def _weight(term: str) -> float:
    return 2.0 if len(term) >= 7 else 1.0


class LexicalJudge:
    """`judge(statement, evidence)` -> Support. Thresholds are on the weighted coverage."""

    name = NAME

    def __init__(self, supported_at: float = 0.6, unsupported_below: float = 0.4) -> None:
        self.supported_at = supported_at
        self.unsupported_below = unsupported_below

    async def judge_many(self, pairs: list[tuple[str, str]]) -> list[Support]:
        return [self.judge(statement, evidence) for statement, evidence in pairs]

    def judge(self, statement: str, evidence: str) -> Support:
        prepared = prepare_evidence(evidence)
        if prepared.sentences and _mostly_cjk(statement) != prepared.cjk:
            return Support(verdict="unsure", score=0.0, judge=NAME, reason=CROSS_LANGUAGE)
        claim = content_terms(statement)
        if not prepared.sentences or not (claim.stems or claim.numbers):
            return Support(verdict="unsure", score=0.0, judge=NAME,
                           reason="nothing to compare" if prepared.sentences else "no evidence")
        total = sum(_weight(t) for t in claim.stems) + 2.0 * len(claim.numbers)
        best, best_score, best_width = (0, 1), -1.0, 0
        single = [
            sum(_weight(t) for t in claim.stems & terms.stems)
            + 2.0 * len(claim.numbers & terms.numbers)
            for terms in prepared.terms
        ]
        for i in range(len(prepared.sentences)):
            for width in (1, 2):
                if i + width > len(prepared.sentences):
                    break
                window_terms = prepared.terms[i:i + width]
                stems = frozenset().union(*(t.stems for t in window_terms))
                numbers = frozenset().union(*(t.numbers for t in window_terms))
                score = (sum(_weight(t) for t in claim.stems & stems)
                         + 2.0 * len(claim.numbers & numbers))
                # a wider window must cover more, not merely as much
                if score > best_score + 1e-9 or (
                    abs(score - best_score) <= 1e-9 and width < best_width
                ):
                    best, best_score, best_width = (i, width), score, width
        start, width = best
        coverage = best_score / total if total else 0.0
        window = " ".join(prepared.sentences[start:start + width])
        in_window = prepared.terms[start:start + width]
        window_numbers = frozenset().union(*(t.numbers for t in in_window))
        focus = max(range(start, start + width), key=lambda k: single[k])
        problems = []
        missing_numbers = sorted(claim.numbers - window_numbers)
        if missing_numbers:
            problems.append(f"number {', '.join(missing_numbers)} not in the evidence")
        window_lower = window.lower()
        missing_names = sorted(n for n in _names(statement) if n[:5] not in window_lower)
        if missing_names:
            problems.append(f"name {', '.join(missing_names)} not in the evidence")
        problems.extend(_negation_problems(claim, in_window, prepared.terms[focus]))
        span = _span(prepared.sentences[focus] if len(window) > SPAN_CHARS else window)
        if coverage < self.unsupported_below:
            return Support(verdict="unsupported", score=round(coverage, 3), evidence=span,
                           judge=NAME, reason="the evidence does not cover the statement")
        if problems:
            return Support(verdict="unsupported", score=round(coverage * 0.3, 3), evidence=span,
                           judge=NAME, reason="; ".join(problems))
        verdict: Verdict = "supported" if coverage >= self.supported_at else "unsure"
        return Support(verdict=verdict, score=round(coverage, 3), evidence=span, judge=NAME,
                       reason="" if verdict == "supported" else "partial coverage")


def _negation_problems(
    claim: _Terms, window: tuple[_Terms, ...], focus: _Terms
) -> list[str]:
    """A negation in the statement that the evidence does not share (about the same words),
    or a negation in the evidence's best sentence about the statement's words that the
    statement does not share."""
    shown = [scope for terms in window for scope in terms.negations]
    if any(not any(scope & other for other in shown) for scope in claim.negations):
        return ["the statement negates what the evidence states"]
    claimed = claim.stems | claim.numbers
    for scope in focus.negations:
        if scope & claimed and not any(scope & other for other in claim.negations):
            return ["the evidence negates what the statement states"]
    return []


def _span(text: str) -> str:
    text = " ".join(_MARKUP.sub("", text).split())
    if len(text) <= SPAN_CHARS:
        return text
    cut = text.rfind(" ", SPAN_CHARS // 2, SPAN_CHARS - 1)
    return text[: cut if cut > 0 else SPAN_CHARS - 1].rstrip() + "…"
