"""The search-based writing mode (`--mode write`): the framework researches, the model writes.

Queries are planned from the question (no model call), searched with the backend, the top
pages fetched and registered under citation ids 1..n, then ONE chat call writes the report:
the GLM-4-32B-0414 model card's writing system prompt (prompts/writing_system.j2, Chinese or
English by the question's script), the question, and the sources as an observation in the
card's `【{id}†{title}†{url}】\\n{content}` format. The answer goes through the same citation
resolution as the rumination mode. Works with GLM-4-32B-0414 or any chat model.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from dataclasses import dataclass
from datetime import date

from rumination.agent.backends import SearchBackend, create_backend
from rumination.agent.budgets import run_cost
from rumination.agent.checking import checked_report
from rumination.agent.sources import SourceRegistry
from rumination.cjk import has_cjk
from rumination.errors import BackendError, ContextLengthExceeded, FetchError, UsageError
from rumination.events import EventHandler, emit
from rumination.llm.client import ChatModel
from rumination.llm.endpoints import settings_client
from rumination.llm.protocol import clean_final_answer
from rumination.llm.provenance import mark_simulated
from rumination.models import Message, Report, SearchHit, Turn, Usage
from rumination.reading.browser_render import page_fetcher
from rumination.reading.fetch import PageFetcher
from rumination.reading.untrusted import neutralise, one_line, question_text
from rumination.settings import Settings
from rumination.store.run_store import FAILED, FINISHED, RunStore, open_store
from rumination.support.citations import resolve_citations
from rumination.support.evidence import evidence_by_source
from rumination.support.figures import compute_figures, report_counts, with_outcome_warning
from rumination.telemetry.spans import traced
from rumination.templates import render
from rumination.urls import normalize_url

MAX_QUERIES = 3
FETCH_CONCURRENCY = 4
_STOPWORDS = frozenset(
    """a an and are as at be by can do does for from how in is it its of on or that the this
    to was what when where which who why will with their they there these than then into
    about should would could much many more most well""".split()
)


@dataclass
class _Candidate:
    hit: SearchHit
    text: str
    fetched: bool
    problem: str = ""


def plan_queries(question: str) -> list[str]:
    """The question itself, then keyword variants of it (deterministic, no model call)."""
    words = [w for w in re.findall(r"[\w'-]+", question.lower()) if w not in _STOPWORDS]
    words = list(dict.fromkeys(w for w in words if len(w) > 2 or has_cjk(w)))
    variants = [" ".join(question.split()), " ".join(words[:6]), " ".join(words[:3] + words[6:9])]
    return [q for q in dict.fromkeys(variants) if q.strip()][:MAX_QUERIES]


def truncate(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word boundary, marked with an ellipsis."""
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", limit // 2, limit)
    return text[: cut if cut > 0 else limit].rstrip() + " …"


async def _search_all(
    queries: list[str], backend: SearchBackend, settings: Settings,
    on_event: EventHandler | None, warnings: list[str],
) -> list[SearchHit]:
    """Hits of every query, interleaved by rank, one per document, best first."""
    ranked: list[list[SearchHit]] = []
    for index, query in enumerate(queries):
        await emit(on_event, "tool_called", index=index, name="search", arguments={"query": query})
        try:
            ranked.append(await backend.search(
                query, limit=settings.search_limit, language=settings.search_language
            ))
        except BackendError as exc:
            warnings.append(f"search {query!r} failed: {exc}")
    seen: dict[str, SearchHit] = {}
    for rank in range(max((len(hits) for hits in ranked), default=0)):
        for hits in ranked:
            if rank < len(hits):
                seen.setdefault(normalize_url(hits[rank].url), hits[rank])
    return list(seen.values())


async def _read(hit: SearchHit, backend: SearchBackend, fetcher: PageFetcher) -> _Candidate:
    """The hit's page text (from the backend, else the web), or its snippet if unreadable."""
    try:
        page = await backend.fetch(hit.url) or await fetcher.fetch(hit.url)
    except FetchError as exc:
        return _Candidate(hit, hit.snippet.strip(), fetched=False, problem=str(exc))
    if not hit.title.strip():
        hit = hit.model_copy(update={"title": page.title})
    return _Candidate(hit, page.text, fetched=True)


# A source list the server refuses for length is halved and sent again, at most this often.
_FIT_ATTEMPTS = 4


def _halved(blocks: list[dict[str, object]]) -> list[dict[str, object]]:
    """Each source with the first half of its text (its header and id kept)."""
    return [{**b, "content": str(b["content"])[: len(str(b["content"])) // 2].rstrip() + " …"}
            for b in blocks]  # fmt: skip


async def _gather_sources(
    hits: list[SearchHit], backend: SearchBackend, fetcher: PageFetcher,
    registry: SourceRegistry, settings: Settings, warnings: list[str],
) -> list[dict[str, object]]:
    limit = asyncio.Semaphore(FETCH_CONCURRENCY)

    async def read(hit: SearchHit) -> _Candidate:
        async with limit:
            return await _read(hit, backend, fetcher)

    candidates = await asyncio.gather(*(read(h) for h in hits[: settings.write_max_sources]))
    blocks: list[dict[str, object]] = []
    for candidate in candidates:
        if candidate.problem and not candidate.text:
            warnings.append(f"dropped {candidate.hit.url}: {candidate.problem}")
            continue
        if candidate.problem:
            warnings.append(f"using the search snippet of {candidate.hit.url}: {candidate.problem}")
        source = registry.register(candidate.hit.url, one_line(candidate.hit.title or "untitled"))
        if candidate.fetched:
            registry.mark_fetched(source.source_id)
        content = truncate(neutralise(candidate.text), settings.write_source_chars)
        blocks.append({"source_id": source.source_id, "title": source.title,
                       "url": one_line(source.url, 2000), "content": content or "(no text)"})
    return blocks


async def write_report(
    question: str, settings: Settings, llm: ChatModel, backend: SearchBackend,
    fetcher: PageFetcher, on_event: EventHandler | None = None, store: RunStore | None = None,
) -> Report:
    """Research and write; with a `store`, the run is recorded like a rumination run (one
    turn: the writing call, its sources, the report)."""
    question = question.strip()
    if not question:
        raise UsageError("the question is empty")
    run_id = uuid.uuid4().hex[:12]
    if store is not None:
        store.create_run(run_id, question, llm.model, backend.name, "write",
                         settings.public_json())
    try:
        report, turn = await _write(run_id, question, settings, llm, backend, fetcher, on_event)
    except BaseException:
        if store is not None:
            with contextlib.suppress(Exception):  # never hide the original error
                store.set_status(run_id, FAILED)
        raise
    if store is not None:
        store.save_turn(run_id, turn, report.sources)
        store.set_status(run_id, FINISHED, report)
    return report


async def _write(
    run_id: str, question: str, settings: Settings, llm: ChatModel, backend: SearchBackend,
    fetcher: PageFetcher, on_event: EventHandler | None,
) -> tuple[Report, Turn]:
    registry = SourceRegistry()
    safe_question, warning = question_text(question)
    warnings: list[str] = [warning] if warning else []
    await emit(on_event, "run_started", run_id=run_id, question=question, model=llm.model,
               backend=backend.name)
    hits = await _search_all(plan_queries(question), backend, settings, on_event, warnings)
    blocks = await _gather_sources(hits, backend, fetcher, registry, settings, warnings)
    for source in registry.all():
        await emit(on_event, "source_added", source_id=source.source_id, title=source.title,
                   url=source.url)
    if not blocks:
        warnings.append("no source could be found or read; the answer cites nothing")
    today = date.today().isoformat() if settings.tell_date else ""
    head = [
        Message(role="system", content=render("writing_system", chinese=has_cjk(question))),
        Message(role="user", content=render("question", question=safe_question, today=today)),
    ]
    await emit(on_event, "answer_started")

    async def delta(text: str) -> None:
        await emit(on_event, "answer_delta", text=text)

    answer, usage, raw, thinking = "", Usage(), "", ""
    completion = None
    for attempt in range(_FIT_ATTEMPTS):
        shown = render("writing_sources", sources=blocks)
        messages = [*head, Message(role="observation", content=shown)]
        try:
            completion = await llm.chat(messages, max_tokens=settings.answer_max_tokens,
                                        on_delta=delta)
            break
        except ContextLengthExceeded as exc:
            if attempt + 1 == _FIT_ATTEMPTS or not blocks:
                warnings.append(f"no answer: {exc} (lower write_max_sources or "
                                "write_source_chars)")
                break
            blocks = _halved(blocks)
            warnings.append(f"the server refused the sources for length ({exc}); each source "
                            f"shortened to {max(len(str(b['content'])) for b in blocks)} "
                            "characters")
    if completion is not None:
        answer = clean_final_answer(completion.content, completion.reasoning)
        usage, raw, thinking = completion.usage, completion.content, completion.reasoning or ""
        if completion.finish_reason == "length":
            warnings.append("the answer was cut at the token limit")
        if not answer:
            warnings.append("the model produced no answer")
    resolved = resolve_citations(answer, registry.all())
    report = Report(
        question=question, answer_markdown=resolved.text, citations=resolved.citations,
        sources=registry.all(), turns=1, usage=usage, warnings=warnings + resolved.warnings,
        run_id=run_id, model=llm.model, mode="write",
        figures=compute_figures(resolved.text, resolved, registry.all()),
        cost=run_cost(usage, settings),
    )
    report = await checked_report(report, evidence_by_source([shown]), settings, on_event)
    report = with_outcome_warning(report)
    if getattr(llm, "simulated", False):
        mark_simulated(report)
    await emit(on_event, "finished", run_id=run_id, **report_counts(report),
               prompt_tokens=report.usage.prompt_tokens,
               completion_tokens=report.usage.completion_tokens,
               tokens_estimated=report.usage.estimated)
    # the sources the writer was shown, kept with the turn so `rumination verify` can re-check
    return report, Turn(index=0, assistant_text=raw, thinking=thinking, usage=usage,
                        observation=shown)


async def run_write(
    question: str, settings: Settings, on_event: EventHandler | None = None, *,
    llm: ChatModel | None = None, backend: SearchBackend | None = None,
    fetcher: PageFetcher | None = None, store: RunStore | None = None,
) -> Report:
    """write_report with the parts built from settings when not given (and closed after);
    the run store is opened first, so an unusable one is reported before any work."""
    s = settings
    own_store = None
    if store is None and s.keep_runs:
        own_store = store = open_store(s)
    own_llm = llm or settings_client(s.llm_urls[0], s)
    own_backend = backend or create_backend(s)
    own_fetcher = fetcher or page_fetcher(s)
    try:
        with traced(on_event) as on_event:
            return await write_report(question, s, own_llm, own_backend, own_fetcher,
                                      on_event, store)
    finally:
        if own_store is not None:
            own_store.close()
        if fetcher is None:
            await own_fetcher.aclose()
        if backend is None:
            await own_backend.aclose()
        if llm is None:
            await own_llm.aclose()
