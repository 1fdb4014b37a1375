"""Chat request bodies, with each message encoded to JSON once.

A conversation only grows between requests (compaction aside), so re-encoding the whole
message list every turn repeats work that grows with the run. The encoder keeps each message's
JSON, keyed by its role and content (all a Message holds), and a request body is the joined
pieces plus the request's options. The cache is bounded: cleared when it passes `limit`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from rumination.models import Message

JSON_HEADERS = {"Content-Type": "application/json"}


class MessageEncoder:
    def __init__(self, limit: int = 4096) -> None:
        self._encoded: dict[tuple[str, str], str] = {}
        self._limit = limit

    def body(self, messages: Sequence[Message], options: Mapping[str, Any]) -> bytes:
        """The JSON body `{"messages": [...], **options}`, UTF-8 encoded."""
        parts = [self._message(m) for m in messages]
        rest = json.dumps(options, ensure_ascii=False)[1:]  # "key": value, ...}
        joiner = ", " if options else ""
        return f'{{"messages": [{", ".join(parts)}]{joiner}{rest}'.encode()

    def _message(self, message: Message) -> str:
        key = (message.role, message.content)
        text = self._encoded.get(key)
        if text is None:
            if len(self._encoded) >= self._limit:
                self._encoded.clear()
            text = self._encoded[key] = json.dumps(message.model_dump(), ensure_ascii=False)
        return text
