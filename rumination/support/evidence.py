"""The text of each source exactly as the model was shown it, read back from observations.

Search results (`【id†title†url】\\nsnippet` or `【id†title†url\\nsnippet】`), page windows
(`【id†title†url】` then a `Visible: a% - b%` line and the text) and the writing mode's source
blocks all start with the same header; untrusted text in them has had `【】†` neutralised,
so a header is always the framework's own. Every block shown for a source is kept, in order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from rumination.citation_marks import SOURCE_HEADER

_HEADER = re.compile(SOURCE_HEADER + r"(】)?\n?")
# the framework's lines about a window, not the source's text: which part is shown, and
# whether the page was rendered in a browser
_VISIBLE = re.compile(r"^(?:Visible: \d+% - \d+%|Rendered: )[^\n]*\n?", re.MULTILINE)


def evidence_by_source(observations: Iterable[str]) -> dict[int, str]:
    """source id -> the title and every snippet and page window shown for it."""
    blocks: dict[int, list[str]] = {}
    for text in observations:
        headers = list(_HEADER.finditer(text))
        for i, header in enumerate(headers):
            end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
            body = text[header.end():end].strip()
            if header.group(4) is None and body.endswith("】"):  # snippet inside the bracket
                body = body[:-1].rstrip()
            body = _VISIBLE.sub("", body).strip()
            source_id = int(header.group(1))
            shown = blocks.setdefault(source_id, [header.group(2).strip()])
            if body and body not in shown:
                shown.append(body)
    return {source_id: "\n\n".join(parts) for source_id, parts in blocks.items()}
