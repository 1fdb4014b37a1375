"""The llm support judge: any OpenAI-compatible chat model decides, FACT-style, whether a
page supports the statements citing it (prompts/support_judge.j2).

Statements citing the same source go to the model together, `batch` at a time, with
`concurrency` requests in flight; verdicts are cached by (model, statement, source text).
A reply that cannot be read leaves its statements `unsure`: a judge failure never fails
the report.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import defaultdict
from collections.abc import Sequence

from rumination.errors import LLMError
from rumination.llm.client import ChatModel
from rumination.models import Message, Support
from rumination.support.judge_cache import JudgementCache, cache_key
from rumination.support.lexical import SPAN_CHARS, LexicalJudge, content_terms, prepare_evidence
from rumination.templates import render

_LIST = re.compile(r"\[.*\]", re.DOTALL)
_VERDICTS = {"supported", "unsupported", "unsure"}
_SCORES = {"supported": 1.0, "unsure": 0.5, "unsupported": 0.0}
MAX_REPLY_TOKENS = 4096


def focus_evidence(evidence: str, statements: Sequence[str], limit: int) -> str:
    """`evidence` if it fits in `limit` characters, else its sentences sharing the most
    words with the statements (in page order) up to the limit."""
    if len(evidence) <= limit:
        return evidence
    prepared = prepare_evidence(evidence)
    wanted = frozenset().union(*(content_terms(s).stems for s in statements))
    ranked = sorted(range(len(prepared.sentences)),
                    key=lambda i: -len(prepared.terms[i].stems & wanted))
    chosen, used = [], 0
    for i in ranked:
        size = len(prepared.sentences[i]) + 1
        if used + size > limit:
            continue
        chosen.append(i)
        used += size
    return " … ".join(prepared.sentences[i] for i in sorted(chosen))


def parse_verdicts(reply: str, count: int) -> list[dict[str, str]] | None:
    """The judge's JSON list (after any reasoning), one entry per statement, or None."""
    tail = reply.rsplit("</think>", 1)[-1]
    match = _LIST.search(tail)
    if match is None:
        return None
    try:
        items = json.loads(match.group(0))
    except ValueError:
        return None
    if not isinstance(items, list):
        return None
    entries = [item for item in items if isinstance(item, dict)]
    by_index: dict[int, dict[str, str]] = {}
    for item in entries:  # numbered entries first, then unnumbered ones by position
        index = item.get("statement")
        if isinstance(index, int) and 1 <= index <= count:
            by_index[index] = {k: str(v) for k, v in item.items()}
    for position, item in enumerate(entries, start=1):
        if "statement" not in item and position <= count:
            by_index.setdefault(position, {k: str(v) for k, v in item.items()})
    return [by_index.get(i, {}) for i in range(1, count + 1)]


class LLMJudge:
    def __init__(
        self, llm: ChatModel, *, cache: JudgementCache | None = None, batch: int = 8,
        concurrency: int = 4, evidence_chars: int = 8000,
    ) -> None:
        self.llm = llm
        self.name = f"llm:{llm.model}"
        self.cache = cache
        self.batch = batch
        self.evidence_chars = evidence_chars
        self._limit = asyncio.Semaphore(concurrency)
        self._lexical = LexicalJudge()
        self.failures: list[LLMError] = []  # requests the server failed (their statements: unsure)

    async def judge_many(self, pairs: list[tuple[str, str]]) -> list[Support]:
        results: list[Support | None] = [None] * len(pairs)
        pending: dict[str, list[int]] = defaultdict(list)
        for index, (statement, evidence) in enumerate(pairs):
            cached = self.cache.get(self._key(statement, evidence)) if self.cache else None
            if cached is not None:
                results[index] = cached
            else:
                pending[evidence].append(index)
        requests = [
            (evidence, indexes[i:i + self.batch])
            for evidence, indexes in pending.items()
            for i in range(0, len(indexes), self.batch)
        ]
        answers = await asyncio.gather(
            *(self._ask(evidence, [pairs[i][0] for i in chunk]) for evidence, chunk in requests)
        )
        for (evidence, chunk), supports in zip(requests, answers, strict=True):
            for index, support in zip(chunk, supports, strict=True):
                results[index] = support
                if self.cache is not None and not support.reason.startswith("judge failed"):
                    self.cache.put(self._key(pairs[index][0], evidence), support)
        return [r for r in results if r is not None]

    def _key(self, statement: str, evidence: str) -> str:
        return cache_key(self.name, statement, evidence)

    async def _ask(self, evidence: str, statements: list[str]) -> list[Support]:
        prompt = render("support_judge", statements=statements,
                        evidence=focus_evidence(evidence, statements, self.evidence_chars))
        try:
            async with self._limit:
                completion = await self.llm.chat([Message(role="user", content=prompt)],
                                                 max_tokens=MAX_REPLY_TOKENS)
        except LLMError as exc:
            self.failures.append(exc)
            return [self._failed(f"judge failed: {exc}") for _ in statements]
        verdicts = parse_verdicts(completion.content, len(statements))
        if verdicts is None:
            return [self._failed("judge failed: unreadable reply") for _ in statements]
        return [self._support(s, evidence, v) for s, v in zip(statements, verdicts, strict=True)]

    def _failed(self, reason: str) -> Support:
        return Support(verdict="unsure", score=0.5, judge=self.name, reason=reason[:300])

    def _support(self, statement: str, evidence: str, item: dict[str, str]) -> Support:
        verdict = item.get("verdict", "").strip().lower()
        if verdict not in _VERDICTS:
            return self._failed("judge failed: no verdict for this statement")
        quote = " ".join(item.get("quote", "").split())
        if not quote or quote not in " ".join(evidence.split()) or len(quote) > SPAN_CHARS:
            quote = self._lexical.judge(statement, evidence).evidence
        return Support(verdict=verdict, score=_SCORES[verdict], evidence=quote,  # type: ignore[arg-type]
                       judge=self.name, reason=item.get("reason", "")[:300])
