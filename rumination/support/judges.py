"""Pick the support judge the settings ask for, and run the support check with it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from rumination.errors import LLMUnavailable
from rumination.llm.client import LLMClient
from rumination.llm.server_answers import model_not_served
from rumination.models import Report
from rumination.settings import Settings
from rumination.store.run_store import store_target
from rumination.support.check import Judge, check_support
from rumination.support.judge_cache import JudgementCache
from rumination.support.lexical import LexicalJudge
from rumination.support.llm_judge import LLMJudge

JUDGES = ("lexical", "llm")


@asynccontextmanager
async def open_judge(settings: Settings, check_first: bool = False) -> AsyncIterator[Judge]:
    """The configured judge; an llm judge's client and cache are closed on exit.
    `check_first`: an llm judge's server must answer and serve its model before it is used."""
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
        if check_first:
            await check_judge_server(client)
        yield LLMJudge(client, cache=cache, batch=s.judge_batch,
                       concurrency=s.judge_concurrency, evidence_chars=s.judge_evidence_chars)
    finally:
        await client.aclose()
        if cache is not None:
            cache.close()


async def check_judge_server(client: LLMClient) -> None:
    """The one-line errors research gives, before any statement is judged: LLMUnavailable
    (exit 3) for a server that does not answer, ModelNotServed or NotAnLLMServer (exit 2)."""
    if not await client.health():
        raise LLMUnavailable(client.base_url, "health check failed")
    served = await client.served_models()
    if served and client.model not in served:
        raise model_not_served(client.base_url, client.model, served, option="--judge-model")


async def verified(
    report: Report, evidence: dict[int, str], settings: Settings, strict: bool = False
) -> Report:
    """`report` with its support check done by the judge `settings` name. `strict` (for
    `verify`, where judging is the whole job): an llm judge's server is checked first, and a
    judge request that fails raises its error instead of leaving its statements unsure."""
    async with open_judge(settings, check_first=strict) as judge:
        checked = await check_support(report, evidence, judge, settings.unsupported_citations)
        if strict and isinstance(judge, LLMJudge) and judge.failures:
            raise judge.failures[0]
        return checked
