"""The statements of an answer that carry citations.

Works on the answer after citation resolution, where references are written `[k]`. Each
reference belongs to the clause before it: the text since the previous reference of the same
sentence (or the sentence start). A reference group right after a full stop (`… rises. [1]`)
cites the sentence it follows. Markdown syntax is stripped from the statement text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rumination.citation_marks import REFERENCE
from rumination.cjk import has_cjk

_GROUP = re.compile(r"(?:\s*" + REFERENCE.pattern + ")+")  # references side by side
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s|\n|(?<=[。！？])")
_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
_MARKDOWN = re.compile(
    r"^\s{0,3}(?:#{1,6}\s+|[-*+]\s+|\d+[.)]\s+|>\s*)|[*_`|]+|\[([^\]]*)\]\([^)]*\)"
)
_WORD = re.compile(r"\w{2,}")
_SPACED_REFERENCE = re.compile(r"[ \t]*" + REFERENCE.pattern)
_HEADING_LINE = re.compile(r"^\s{0,3}#{1,6}\s.*$", re.MULTILINE)


@dataclass(frozen=True)
class CitedStatement:
    statement: str
    number: int
    occurrence: int
    """index of this reference among the answer's references to cited sources, in order"""


def _plain(text: str) -> str:
    def strip(match: re.Match[str]) -> str:
        return match.group(1) or " "

    lines = (_MARKDOWN.sub(strip, line) for line in text.splitlines())
    return " ".join(" ".join(lines).split()).strip(" ,;:-–—")


def _sentence_starts(text: str) -> list[int]:
    return [0] + [m.end() for m in _SENTENCE_END.finditer(text)]


def cited_statements(answer: str, numbers: set[int]) -> list[CitedStatement]:
    """Every reference `[k]` with k in `numbers`, with the statement it stands for."""
    masked = _FENCE.sub(lambda m: " " * len(m.group(0)), answer)
    starts = _sentence_starts(masked)
    found: list[CitedStatement] = []
    occurrence = 0
    clause_start = 0
    for group in _GROUP.finditer(masked):
        refs = [int(m.group(1)) for m in REFERENCE.finditer(group.group(0))]
        begin = group.start()
        sentence_start = max((s for s in starts if s <= begin), default=0)
        before = masked[sentence_start:begin]
        if not _WORD.search(REFERENCE.sub(" ", before)):
            # the group follows a full stop: it cites the sentence before
            previous = max((s for s in starts if s < sentence_start), default=0)
            sentence_start, before = previous, masked[previous:begin]
        start = max(sentence_start, clause_start)
        clause = _plain(REFERENCE.sub(" ", masked[start:begin]))
        if len(_WORD.findall(clause)) < 2:  # a bare fragment: judge the whole sentence
            clause = _plain(REFERENCE.sub(" ", before))
        clause_start = group.end()
        for number in refs:
            if number in numbers:
                found.append(CitedStatement(clause, number, occurrence))
                occurrence += 1
    return found


def sentences(answer: str, min_words: int = 3) -> list[str]:
    """The answer's sentences as plain text: Markdown syntax, citation references, headings
    and code fences left out; fragments of fewer than `min_words` words skipped."""
    text = _SPACED_REFERENCE.sub("", _HEADING_LINE.sub(" ", _FENCE.sub(" ", answer)))
    starts = _sentence_starts(text)
    found = []
    for begin, end in zip(starts, [*starts[1:], len(text)], strict=True):
        plain = _plain(text[begin:end])
        # CJK text has no spaces between words: count its characters instead
        if len(_WORD.findall(plain)) >= min_words or (
            has_cjk(plain) and len(plain) >= 2 * min_words
        ):
            found.append(plain)
    return found


def references(answer: str, numbers: set[int]) -> list[re.Match[str]]:
    """Every reference `[k]` with k in `numbers` outside code fences, in text order (the
    `occurrence` index of CitedStatement counts these)."""
    masked = _FENCE.sub(lambda m: " " * len(m.group(0)), answer)
    return [m for m in REFERENCE.finditer(masked) if int(m.group(1)) in numbers]
