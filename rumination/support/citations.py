"""Find the model's citation markers, resolve them against the run's sources, renumber.

The model cites as `【12†source】`; variants seen in the wild are accepted too: `【12】`,
`【12†L3-L9】`, `【3, 7†source】`, `[12†source]` and full-width digits. Valid ids become
`[k]` with k = 1..n in order of first appearance; ids the run never showed the model are
removed and reported with the sentence they stood in, and the space or list comma before
them goes too (no `claim .`). Nothing else in the text changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rumination.models import Citation, Source

_FULLWIDTH = str.maketrans("０１２３４５６７８９，", "0123456789,")
_MARKER = re.compile(
    r"【\s*([0-9０-９]+(?:\s*[,，、]\s*[0-9０-９]+)*)\s*(?:†[^】\n]*)?】"
    r"|\[\s*([0-9０-９]+(?:\s*[,，]\s*[0-9０-９]+)*)\s*†[^\]\n]*\]"
)
_SENTENCE_END = re.compile(r"[.!?。！？\n]")
_TRAILING = re.compile(r"(?:[ \t.!?。！？]|" + _MARKER.pattern + r")*\Z")
_LOOK_BACK = 2000
_REMOVED = "\x00"  # stands where a marker with no valid id was, until the text is tidied
_GAP_BEFORE_STOP = re.compile(r"[ \t]*\x00+(?=[.,;:!?。，、；：！？)\]]|\n|\Z)")
_LIST_SEPARATOR = re.compile(r"(?<=\])[ \t]*[,;，、][ \t]*\x00+")  # `[1], 【bad】` -> `[1]`
_GAP_BOTH_SIDES = re.compile(r"[ \t]+\x00+[ \t]+")


@dataclass
class CitationResult:
    text: str
    citations: list[Citation] = field(default_factory=list)
    invalid_ids: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    markers_found: int = 0


def _ids(group: str) -> list[int]:
    return [int(part) for part in re.split(r"[,、]", group.translate(_FULLWIDTH)) if part.strip()]


def _sentence_around(text: str, start: int, end: int) -> str:
    """The sentence a marker belongs to; a marker right after a full stop cites the sentence
    it follows."""
    # skip back over spaces, closing punctuation and markers glued before this one
    trailing = _TRAILING.search(text, max(0, start - _LOOK_BACK), start)
    anchor = trailing.start() if trailing else start
    left = max((m.end() for m in _SENTENCE_END.finditer(text, 0, anchor)), default=0)
    if _SENTENCE_END.search(_MARKER.sub("", text[anchor:start])):
        right = start  # the marker follows a full stop: that sentence ends before it
    else:
        right_match = _SENTENCE_END.search(text, end)
        right = right_match.end() if right_match else len(text)
    return " ".join(_MARKER.sub("", text[left:right]).split())


def resolve_citations(answer: str, sources: list[Source]) -> CitationResult:
    by_id = {s.source_id: s for s in sources}
    numbers: dict[int, int] = {}
    result = CitationResult(text="")

    def replace(match: re.Match[str]) -> str:
        result.markers_found += 1
        kept: list[str] = []
        for source_id in _ids(match.group(1) or match.group(2)):
            source = by_id.get(source_id)
            if source is None:
                result.invalid_ids.append(source_id)
                sentence = _sentence_around(answer, match.start(), match.end())
                result.warnings.append(
                    f"removed citation to unknown source id {source_id} in: {sentence!r}"
                )
                continue
            if source_id not in numbers:
                numbers[source_id] = len(numbers) + 1
                result.citations.append(
                    Citation(
                        number=numbers[source_id],
                        source_id=source_id,
                        url=source.url,
                        title=source.title,
                    )
                )
            kept.append(f"[{numbers[source_id]}]")
        return "".join(dict.fromkeys(kept)) or _REMOVED

    result.text = _tidy(_MARKER.sub(replace, answer))
    return result


def _tidy(text: str) -> str:
    """Drop the places of removed markers without leaving `word .`, `[1], .` or double
    spaces."""
    text = _LIST_SEPARATOR.sub("", text)
    text = _GAP_BEFORE_STOP.sub("", text)
    text = _GAP_BOTH_SIDES.sub(" ", text)
    return text.replace(_REMOVED, "")
