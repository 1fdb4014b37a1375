"""Neutralise untrusted text (pages, snippets, titles) before it reaches the prompt.

A fetched page can contain the model's special tokens or fake citation markers. Left raw,
`<|user|>` would forge a new conversation turn and `【99†…】` a citation to a source that the
framework never registered. Each is replaced by a visibly similar but inert form.
"""

from __future__ import annotations

import re

_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|observation|>",
    "[MASK]",
    "[gMASK]",
    "[sMASK]",
    "<sop>",
    "<eop>",
    "<think>",
    "</think>",
)
_SPECIAL_RE = re.compile(
    "|".join(re.escape(t) for t in _SPECIAL_TOKENS) + r"|<\|[a-z_]+\|>", re.IGNORECASE
)
# 【 】 † are the citation markers; their lookalikes keep the text readable.
_MARKER_TABLE = str.maketrans({"【": "[", "】": "]", "†": "+"})
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _defuse(match: re.Match[str]) -> str:
    token = match.group(0)
    return token.replace("<", "‹").replace(">", "›").replace("[", "(").replace("]", ")")


def neutralise(text: str) -> str:
    """Return `text` with special tokens, think tags and citation markers made inert."""
    text = _CONTROL_RE.sub("", text)
    text = _SPECIAL_RE.sub(_defuse, text)
    return text.translate(_MARKER_TABLE)


QUESTION_NEUTRALISED = (
    "the question contained model control text (special tokens such as <|user|>, think tags "
    "or citation markers); it was sent with those made inert"
)


def question_text(question: str) -> tuple[str, str | None]:
    """The question as the model may see it, and the warning to give when that changed it.
    The chat template cuts every message up to its last </think>, and special tokens would
    forge turns: a question is made inert like any page."""
    safe = neutralise(question)
    return safe, (QUESTION_NEUTRALISED if safe != question else None)


def one_line(text: str, limit: int = 300) -> str:
    """Neutralised text on one line, for titles and URLs inside a marker."""
    flat = " ".join(neutralise(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
