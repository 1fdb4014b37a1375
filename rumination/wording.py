"""Counts in words for messages: "1 warning", "2 warnings"."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def plural(count: int, noun: str, many: str | None = None) -> str:
    """`count` and `noun`, the noun in the plural (`many`, else noun + "s") unless count is 1."""
    return f"{count} {noun if count == 1 else many or noun + 's'}"


def cited(citations: int, sources_cited: int) -> str:
    """Citation marks in the text and the distinct sources they cite: "3 citations of 1 source"."""
    return f"{plural(citations, 'citation')} of {plural(sources_cited, 'source')}"


def counts_phrase(counts: Mapping[str, Any]) -> str:
    """The counts of rumination.support.figures.report_counts (or of a `finished` event,
    which carries the same fields) in words:
    "3 citations of 1 source, 5 sources seen, 0 warnings"."""
    return (f"{cited(counts['citations'], counts['sources_cited'])}, "
            f"{plural(counts['sources'], 'source')} seen, {plural(counts['warnings'], 'warning')}")


def spent(tokens: int, cost: float | None) -> str:
    """Tokens and, where priced, cost: "12,345 tokens" or "12,345 tokens, cost 0.0412"."""
    priced = "" if cost is None else f", cost {cost:.4g}"
    return f"{tokens:,} {'token' if tokens == 1 else 'tokens'}{priced}"
