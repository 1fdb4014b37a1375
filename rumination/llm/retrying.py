"""How long to wait before trying a request again: jittered backoff, and what a server's
Retry-After header asks for (shared by the LLM client and the remote search backends)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with full jitter: about 0.5 s, 1 s, 2 s … capped at 20 s."""
    return random.uniform(0.0, min(20.0, 0.5 * 2 ** (attempt - 1))) + 0.1


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds asked for by a Retry-After header: a number or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
