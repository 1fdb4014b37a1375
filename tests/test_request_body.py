"""Chat request bodies: the same JSON as encoding the whole dict, each message encoded once."""

from __future__ import annotations

import json

import pytest

from rumination.llm.request_body import MessageEncoder
from rumination.models import Message

MESSAGES = [
    Message(role="user", content="Kelp forests: \"carbon\" stores?\n【0†x】 ünïcode 冰川"),
    Message(role="assistant", content='<think>a</think>{"name": "search"}'),
    Message(role="observation", content="\\ backslash \t tab \x00 nul"),
]
OPTIONS = {"model": "m", "max_tokens": 5, "stop": ["<|user|>"], "stream": True}


def test_the_body_is_the_json_of_messages_and_options() -> None:
    body = MessageEncoder().body(MESSAGES, OPTIONS)
    assert json.loads(body) == {"messages": [m.model_dump() for m in MESSAGES], **OPTIONS}
    assert json.loads(MessageEncoder().body([], {})) == {"messages": []}


def test_each_message_is_encoded_once_and_the_cache_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    encoded: list[str] = []
    real = Message.model_dump

    def counting(self: Message, **kwargs: object) -> dict[str, object]:
        encoded.append(self.content)
        return real(self, **kwargs)

    monkeypatch.setattr(Message, "model_dump", counting)
    encoder = MessageEncoder(limit=4)
    encoder.body(MESSAGES[:2], OPTIONS)
    encoder.body(MESSAGES, OPTIONS)  # one new message: one more encoding
    assert len(encoded) == 3
    copies = [Message(role=m.role, content=m.content) for m in MESSAGES]
    assert json.loads(encoder.body(copies, OPTIONS))["messages"] == [
        {"role": m.role, "content": m.content} for m in MESSAGES
    ]
    assert len(encoded) == 3  # equal messages share an encoding
    encoder.body([*MESSAGES, Message(role="user", content="4"), Message(role="user", content="5")],
                 OPTIONS)
    assert len(encoded) == 5  # past the limit the cache starts again: still correct bodies


def test_the_key_covers_every_field_of_a_message() -> None:
    # the cache keys on (role, content): a new Message field must become part of the key
    assert set(Message.model_fields) == {"role", "content"}
