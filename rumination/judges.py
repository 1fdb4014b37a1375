"""Pick the support judge the settings ask for, and run the support check with it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from .judge_cache import JudgementCache
from .lexical import LexicalJudge
from .llm import LLMClient
from .llm_judge import LLMJudge
from .models import Report
from .settings import Settings
from .store import store_target
from .support import Judge, check_support

JUDGES = ("lexical", "llm")


@asynccontextmanager
async def open_judge(settings: Settings) -> AsyncIterator[Judge]:
    """The configured judge; an llm judge's client and cache are closed on exit."""
    if settings.judge == "lexical":
        yield LexicalJudge()
        return
    s = settings
    client = LLMClient(
        s.judge_url or s.llm_urls[0], s.judge_model or s.model, api_key=s.api_key,
        temperature=0.0, timeout_s=s.request_timeout_s, connect_timeout_s=s.connect_timeout_s,
        retries=s.retries, stream=False,
    )
    cache = JudgementCache(store_target(s)) if s.keep_runs else None
    try:
        yield LLMJudge(client, cache=cache, batch=s.judge_batch,
                       concurrency=s.judge_concurrency, evidence_chars=s.judge_evidence_chars)
    finally:
        await client.aclose()
        if cache is not None:
            cache.close()


async def verified(report: Report, evidence: dict[int, str], settings: Settings) -> Report:
    """`report` with its support check done by the judge `settings` name."""
    async with open_judge(settings) as judge:
        return await check_support(report, evidence, judge, settings.unsupported_citations)
