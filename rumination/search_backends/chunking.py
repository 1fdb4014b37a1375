"""Split a document into passages for retrieval.

A passage is a contiguous span of the document of about MIN_CHARS to MAX_CHARS characters.
Breaks fall, in order of preference, before a heading (a Markdown `#` heading outside code
fences, or a `[page N]` marker of a PDF's text), at a blank line, at a sentence end, at a
space; a word is cut only when it alone is longer than half a piece (a base64 blob, or text
in a script written without spaces). Each passage carries the heading in effect where it
starts, so its title can say which section it comes from.

URLs and titles (decided here so that every caller agrees):
- passage 1 keeps the document's URL: a one-passage document is indexed exactly as before;
- passage N >= 2 gets `URL#passage-N` (`URL&passage-N` when the URL has a fragment already).
  A fragment names a place in a document, not another document (the run's source registry
  drops it when it compares URLs), so passages of one document share one citation id;
- titles are "Doc title — Section heading" when a heading is known, else "Doc title (part N)";
  a heading shared by several passages gets " (part N)" too, so titles stay distinct; a
  one-passage document keeps the bare document title.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

MIN_CHARS = 1500
MAX_CHARS = 2500
# pieces are packed into passages; a piece is at most this long, so a passage that is still
# under MIN_CHARS always has room for the next piece
PIECE_CHARS = MAX_CHARS - MIN_CHARS
# a last passage this short is merged into the one before it
TAIL_CHARS = MIN_CHARS // 3

_LINE = re.compile(r"[^\n]*\n?")
_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)[ \t#]*$")
_PAGE_MARK = re.compile(r"^\[(page \d+)\]$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_SENTENCE_END = re.compile(r"[.!?](?=\s)|[。！？]")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Chunk:
    """One passage of a document: its text, the heading in effect where it starts, and
    where it starts in the document's text."""

    text: str
    heading: str
    start: int


@dataclass(frozen=True)
class _Piece:
    start: int
    end: int
    section: str  # the heading in effect at `start`
    is_heading: bool


def split_passages(text: str) -> list[Chunk]:
    """The passages of `text`, in order; none when it holds no visible text."""
    groups: list[list[_Piece]] = []
    for piece in _pieces(text):
        current = groups[-1] if groups else None
        if current is None or _breaks_before(current, piece):
            groups.append([*_trailing_heading(current), piece])
        else:
            current.append(piece)
    if len(groups) > 1 and _span(groups[-1]) < TAIL_CHARS:
        groups[-2].extend(groups.pop())
    chunks = [Chunk(text[g[0].start : g[-1].end].strip(), g[0].section, g[0].start)
              for g in groups]
    return [c for c in chunks if c.text]


def passage_url(url: str, number: int) -> str:
    if number == 1:
        return url
    return f"{url}{'&' if '#' in url else '#'}passage-{number}"


def passage_titles(doc_title: str, chunks: list[Chunk]) -> list[str]:
    """A distinct title for each passage of a document titled `doc_title`."""
    if len(chunks) == 1:
        return [doc_title]
    titles: list[str] = []
    for number, chunk in enumerate(chunks, 1):
        heading = chunk.heading if chunk.heading.casefold() != doc_title.casefold() else ""
        title = f"{doc_title} — {heading}" if heading else doc_title
        if not heading or title in titles:
            title = f"{title} (part {number})"
        titles.append(title)
    return titles


def _breaks_before(current: list[_Piece], piece: _Piece) -> bool:
    size = piece.end - current[0].start
    return size > MAX_CHARS or (piece.is_heading and _span(current) >= MIN_CHARS)


def _trailing_heading(group: list[_Piece] | None) -> list[_Piece]:
    """A heading that would end `group`, taken out of it: it belongs with the text after it."""
    if group and len(group) > 1 and group[-1].is_heading:
        return [group.pop()]
    return []


def _span(group: list[_Piece]) -> int:
    return group[-1].end - group[0].start


def _pieces(text: str) -> Iterator[_Piece]:
    """Heading lines and paragraphs (long ones cut into pieces of at most PIECE_CHARS)."""
    section = ""
    for start, end, heading in _blocks(text):
        if heading is not None:
            section = heading
            yield _Piece(start, end, section, is_heading=True)
            continue
        for cut_start, cut_end in _cuts(text, start, end):
            yield _Piece(cut_start, cut_end, section, is_heading=False)


def _blocks(text: str) -> Iterator[tuple[int, int, str | None]]:
    """(start, end, heading) of each heading line and paragraph; heading is None for a
    paragraph. Lines inside code fences are never headings."""
    para_start: int | None = None
    para_end = 0
    in_fence = False
    for match in _LINE.finditer(text):
        if not match.group():
            break
        line, start, end = match.group().rstrip("\n"), match.start(), match.end()
        if _FENCE.match(line):
            in_fence = not in_fence
        heading = None if in_fence else _heading(line)
        if heading is not None or not line.strip():
            if para_start is not None:
                yield para_start, para_end, None
                para_start = None
            if heading is not None:
                yield start, end, heading
            continue
        if para_start is None:
            para_start = start
        para_end = end
    if para_start is not None:
        yield para_start, para_end, None


def _heading(line: str) -> str | None:
    match = _HEADING.match(line) or _PAGE_MARK.match(line.strip())
    return " ".join(match.group(1).split()) if match else None


def _cuts(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """Spans of text[start:end], each at most PIECE_CHARS long, cut at a sentence end or a
    space in the second half of the span where there is one."""
    while end - start > PIECE_CHARS:
        cut = _cut_point(text, start)
        yield start, cut
        start = cut
    yield start, end


def _cut_point(text: str, start: int) -> int:
    window = text[start : start + PIECE_CHARS]
    for pattern in (_SENTENCE_END, _SPACE):
        ends = [m.end() for m in pattern.finditer(window, PIECE_CHARS // 2)]
        if ends:
            return start + ends[-1]
    return start + PIECE_CHARS
