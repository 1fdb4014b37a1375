"""A protocol simulator: plays the rumination model's part from the observations it is sent.

It is NOT the model and never claims to be. It searches with keywords drawn from the
question, clicks the best unread hits, calls finish, then writes a multi-section answer
made only of sentences it actually read, each cited as 【id†source】. Deterministic: the
same conversation always gives the same next turn. Stateless: everything is derived from
the messages, so it can sit behind an HTTP server shared by concurrent runs.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rumination.citation_marks import PAGE_HEADER, SOURCE_HEADER

STOPWORDS = frozenset(
    """a an and are as at be by can do does for from how in is it its of on or that the
    this to was what when where which who why will with what's their they there these
    than then into about should would could much many more most well""".split()
)
HITS_TO_CLICK_PER_SEARCH = 3
MAX_SEARCHES = 3
SENTENCES_PER_SOURCE = 2

# a search hit in either observation style: 【id†title†url】\nsnippet, or 【id†title†url\nsnippet】
_HIT = re.compile(f"^{SOURCE_HEADER}】?$", re.MULTILINE)
# a page window: groups id, title, url, visible from, visible to, then the page text
_PAGE = re.compile(rf"\A{PAGE_HEADER}[^\n]*\n(.*)\Z", re.DOTALL)
# a source of the search-based writing mode: 【id†title†url】, a newline, then its text
_SOURCE = re.compile(
    rf"^{SOURCE_HEADER}】\n(.*?)(?=\n\n{SOURCE_HEADER}】\n|\Z)", re.MULTILINE | re.DOTALL
)
_DATE_LINE = re.compile(r"\AToday's date is [^\n]*\n+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


@dataclass
class _Page:
    source_id: int
    title: str
    text: str


@dataclass
class _Search:
    query: str
    hits: list[int] = field(default_factory=list)
    clicks: int = 0


@dataclass
class _History:
    question: str
    searches: list[_Search] = field(default_factory=list)
    clicked: list[int] = field(default_factory=list)
    pages: dict[int, _Page] = field(default_factory=dict)
    finished: bool = False


def keywords(question: str) -> list[str]:
    words = re.findall(r"[\w'-]+", question.lower())
    return list(dict.fromkeys(w for w in words if w not in STOPWORDS and len(w) > 2))


def planned_queries(question: str) -> list[str]:
    words = keywords(question)
    queries = [" ".join(words[:6]), " ".join(words[:3] + ["explained"]), " ".join(words[3:8])]
    return [q for q in dict.fromkeys(queries) if q.strip()][:MAX_SEARCHES]


def _content(message: Any) -> str:
    return str(message.get("content") or "") if isinstance(message, dict) else ""


def _call_of(text: str) -> dict[str, Any] | None:
    tail = text.rsplit("</think>", 1)[-1].strip()
    try:
        call = json.loads(tail)
    except ValueError:
        return None
    return call if isinstance(call, dict) else None


def read_history(messages: Sequence[dict[str, Any]]) -> _History:
    users = [m for m in messages if m.get("role") == "user"]
    question = _DATE_LINE.sub("", _content(users[0]) if users else "").strip()
    history = _History(question=question)
    for message in messages:
        role, text = message.get("role"), _content(message)
        if role == "assistant":
            call = _call_of(text) or {}
            args = call.get("arguments") or {}
            if call.get("name") == "search":
                history.searches.append(_Search(str(args.get("query", ""))))
            elif call.get("name") == "click":
                history.clicked.append(int(args.get("link_id", -1)))
                if history.searches:
                    history.searches[-1].clicks += 1
            elif call.get("name") == "finish":
                history.finished = True
        elif role == "observation":
            page = _PAGE.match(text.strip())
            if page:
                sid = int(page.group(1))
                history.pages[sid] = _Page(sid, page.group(2), page.group(6))
            elif history.searches:
                history.searches[-1].hits.extend(int(m.group(1)) for m in _HIT.finditer(text))
    return history


def _think(text: str) -> str:
    return f"<think>[simulator] {text}</think>"  # the call follows at once, as the model writes


def _call(name: str, **arguments: Any) -> str:
    return json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)


def next_action(history: _History) -> str:
    """The next tool-call turn, following a fixed plan: search, click the top hits, repeat."""
    queries = planned_queries(history.question)
    if history.searches:
        last = history.searches[-1]
        unread = [i for i in last.hits if i not in history.clicked]
        if unread and last.clicks < HITS_TO_CLICK_PER_SEARCH:
            target = unread[0]
            return _think(f"Result {target} looks relevant; reading it.") + _call(
                "click", link_id=target
            )
    if len(history.searches) < len(queries):
        query = queries[len(history.searches)]
        return _think(f"Searching for: {query}.") + _call("search", query=query)
    return _think(f"I have read {len(history.pages)} sources; finishing.") + _call("finish")


def _best_sentences(page: _Page, words: list[str]) -> list[str]:
    body = "\n".join(line for line in page.text.splitlines() if not line.startswith("#"))
    sentences = [s.strip() for s in _SENTENCE.split(" ".join(body.split())) if len(s) > 40]
    scored = sorted(
        range(len(sentences)),
        key=lambda i: -sum(w in sentences[i].lower() for w in words),
    )
    chosen = sorted(scored[:SENTENCES_PER_SOURCE])
    return [sentences[i] for i in chosen]


_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_VERB = re.compile(r"\b(is|are|was|were|can|does|do|has|have|will)\b")


def _unsupported(sentence: str, index: int) -> str:
    """`sentence` made false to its source, by the kinds of error deep-research reports
    make: a changed figure, else a negation."""
    number = _NUMBER.search(sentence)
    if number is not None and index % 2 == 0:
        changed = str(int(float(number.group(0))) + 13)
        return sentence[: number.start()] + changed + sentence[number.end():]
    verb = _VERB.search(sentence)
    if verb is not None:
        return sentence[: verb.end()] + " not" + sentence[verb.end():]
    return "It is not true that " + sentence[0].lower() + sentence[1:]


def _overreaching(sentence: str) -> str:
    """`sentence` stretched past its source: as many unrelated words again appended, so only
    about half of it is in the source (a judge should be unsure)."""
    words = len(re.findall(r"[A-Za-z]{4,}", sentence))
    tail = " ".join((GLACIER_WORDS * (1 + words // len(GLACIER_WORDS)))[:words])
    return f"{sentence.rstrip('.')}, much as with {tail}."


def write_answer(history: _History, unsupported: int = 0, unsure: int = 0) -> str:
    """A cited report built only from sentences of the pages the simulator read; for tests
    of the support check, the first `unsupported` cited sentences are altered so that their
    source no longer supports them (a changed number or a negation), and the next `unsure`
    are stretched past what their source says."""
    words = keywords(history.question)
    lines = [f"# {history.question}", ""]
    lines.append(
        "This report was written by the rumination protocol simulator from the sources it "
        "read; it quotes them and draws no conclusions of its own."
    )
    if not history.pages:
        lines += ["", "No source could be read, so there is nothing to report."]
        return "\n".join(lines)
    altered = 0
    for page in history.pages.values():
        sentences = _best_sentences(page, words)
        if not sentences:
            continue
        for i, sentence in enumerate(sentences):
            if altered < unsupported:
                sentences[i] = _unsupported(sentence, altered)
            elif altered < unsupported + unsure:
                sentences[i] = _overreaching(sentence)
            altered += 1
        lines += ["", f"## {page.title}", ""]
        lines.append(" ".join(f"{s}【{page.source_id}†source】" for s in sentences))
    lines += ["", "## Summary", ""]
    cited = ", ".join(f"{p.title}【{p.source_id}†source】" for p in history.pages.values())
    lines.append(f"The sources consulted were: {cited}.")
    return "\n".join(lines)


def writing_sources(messages: Sequence[dict[str, Any]]) -> dict[int, _Page] | None:
    """The sources of a search-based writing request (a system message and observations of
    `【id†title†url】\ncontent` blocks), or None if the conversation is not one."""
    if not any(m.get("role") == "system" for m in messages):
        return None
    observations = [_content(m) for m in messages if m.get("role") == "observation"]
    if not observations:
        return None
    return {
        int(m.group(1)): _Page(int(m.group(1)), m.group(2), m.group(4))
        for text in observations
        for m in _SOURCE.finditer(text)
    }


def simulate(messages: Sequence[dict[str, Any]], unsupported: int = 0, unsure: int = 0) -> str:
    """The simulator's next assistant text for a conversation: a tool call or the cited
    answer in the rumination protocol, or the written report for a writing request.
    `unsupported`, `unsure`: how many cited sentences of the answer to make unsupported, and
    how many to stretch past their source."""
    history = read_history(messages)
    sources = writing_sources(messages)
    if sources is not None:
        history.pages = sources
        return write_answer(history, unsupported, unsure)
    if history.finished:
        return write_answer(history, unsupported, unsure)
    return next_action(history)


def with_unsupported(count: int, unsure: int = 0) -> Any:
    """A `simulate` responder whose answers carry `count` unsupported citations, then
    `unsure` citations of sentences stretched past their source."""

    def respond(messages: Sequence[dict[str, Any]]) -> str:
        return simulate(messages, unsupported=count, unsure=unsure)

    return respond


def scripted(texts: Sequence[str]) -> Any:
    """A responder replaying recorded assistant texts: request k gets texts[k], where k is
    the number of assistant messages already in the conversation."""

    def respond(messages: Sequence[dict[str, Any]]) -> str:
        index = sum(1 for m in messages if m.get("role") == "assistant")
        if index >= len(texts):
            raise IndexError(f"the script has {len(texts)} turns; turn {index + 1} was asked for")
        return texts[index]

    return respond


_PAGE_WINDOW = re.compile(PAGE_HEADER)


def long_reader(tool_calls: int) -> Any:
    """A responder for context tests: reads every hit to its end, window after window,
    until it has made `tool_calls` calls, then finishes and answers like `simulate`."""

    def respond(messages: Sequence[dict[str, Any]]) -> str:
        history = read_history(messages)
        if history.finished:
            return write_answer(history)
        made = sum(1 for m in messages if m.get("role") == "assistant")
        if made >= tool_calls:
            return _think("Call budget reached.") + _call("finish")
        last = _content(messages[-1]).strip() if messages[-1].get("role") == "observation" else ""
        window = _PAGE_WINDOW.match(last)
        if window and int(window.group(5)) < 100:
            return _think("Reading on.") + _call("click", link_id=int(window.group(1)))
        hits = [i for s in history.searches for i in s.hits if i not in history.clicked]
        if hits:
            return _think("Next result.") + _call("click", link_id=hits[0])
        query = f"{history.question} part {len(history.searches) + 1}"
        return _think("Searching again.") + _call("search", query=query)

    return respond


GLACIER_WORDS = (
    "glacier moraine ablation firn crevasse meltwater albedo calving serac cirque basal "
    "sliding isostatic rebound outwash drumlin esker kettle till striation accumulation"
).split()


def long_corpus(folder: Path, docs: int = 12, words: int = 6000) -> Path:
    """A corpus of long, deterministic filler documents for `long_reader` runs: writes
    `docs` Markdown files of `words` words each into `folder` and indexes them."""
    from rumination.search_backends.corpus import (
        Corpus,  # testing support only: the core never needs it
    )

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(docs):
        text = " ".join(random.Random(i).choices(GLACIER_WORDS, k=words))
        (folder / f"doc{i}.md").write_text(f"# Glacier report {i}\n\n{text}", encoding="utf-8")
    db = folder / "corpus.db"
    corpus = Corpus(db, create=True)
    try:
        corpus.index_folder(folder)
    finally:
        corpus.close()
    return db
