"""Pydantic data shared by every part of the framework."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

Role = Literal["system", "user", "assistant", "observation"]
ToolName = Literal["search", "click", "open", "finish"]
Mode = Literal["rumination", "write"]
# how requests reach the model server (Settings.wire)
Wire = Literal["auto", "chat", "completions"]
ReportFormat = Literal["md", "html", "json", "pdf", "docx"]
Verdict = Literal["supported", "unsupported", "unsure"]


class Message(BaseModel):
    role: Role
    content: str


class ToolCall(BaseModel):
    name: ToolName
    arguments: dict[str, Any] = Field(default_factory=dict)


class SearchHit(BaseModel):
    """One result from a search backend, before it gets a citation id."""

    title: str
    url: str
    snippet: str = ""


class Page(BaseModel):
    """Readable text of a document, from a backend or from the web."""

    url: str
    title: str
    text: str
    content_type: str = "text/plain"
    published: str | None = None
    rendered: bool = False
    """Its text was read from the DOM of a headless browser (the plain page needed JavaScript)."""
    """Publication date (YYYY-MM-DD) when the document states one."""


class Source(BaseModel):
    """A document the model has been shown, under its stable citation id."""

    source_id: int
    url: str
    title: str
    snippet: str = Field(default="", exclude=True)
    fetched_at: datetime | None = None
    rendered: bool = Field(
        default=False, description="its text was read in a headless browser (JavaScript page)"
    )


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Prompt tokens served from vLLM's prefix cache (usage.prompt_tokens_details.cached_tokens,
    # reported when the server runs with --enable-prompt-tokens-details; else 0).
    cached_prompt_tokens: int = 0
    # True when some of these counts are the harness's estimate: the server reported no usage
    # (llama-cpp-python's streams, for one) and could not count the text exactly either.
    estimated: bool = False

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cached_prompt_tokens=self.cached_prompt_tokens + other.cached_prompt_tokens,
            estimated=self.estimated or other.estimated,
        )


class Turn(BaseModel):
    """One model generation in the loop and what the framework did with it."""

    index: int
    assistant_text: str
    thinking: str = ""
    tool_call: ToolCall | None = None
    observation: str | None = None
    protocol_error: str | None = None
    usage: Usage = Field(default_factory=Usage)
    model_seconds: float = 0.0
    tool_seconds: float = 0.0


class Support(BaseModel):
    """A judge's verdict on whether a source supports a statement that cites it."""

    verdict: Verdict
    score: float = Field(ge=0.0, le=1.0, description="how well the evidence covers the statement")
    evidence: str = Field(default="", description="best evidence span, at most ~300 characters")
    judge: str = Field(description="the judge: lexical, or llm:MODEL")
    reason: str = ""


class CheckedStatement(Support):
    """One cited statement–source pair of the answer and its verdict."""

    statement: str
    number: int = Field(description="the citation number [k] it carries")
    source_id: int
    occurrence: int | None = Field(
        default=None,
        description="index of its reference among the answer's references; null if dropped",
    )
    action: Literal["kept", "flagged", "dropped"] = Field(
        default="kept", description="what unsupported_citations did with its marker"
    )


class Citation(BaseModel):
    number: int
    source_id: int
    url: str
    title: str
    support: Support | None = Field(
        default=None, description="the weakest verdict among the statements citing this source"
    )


class ReportFigures(BaseModel):
    """What a report's citations amount to; computed by support.figures.compute_figures."""

    citations: int = Field(0, description="citation references kept in the answer")
    distinct_sources_cited: int = 0
    sources_not_cited: int = Field(0, description="sources the model saw but did not cite")
    invalid_ids: int = Field(0, description="distinct ids cited that the run never showed")
    citations_removed: int = Field(0, description="references to invalid ids removed")
    cited_paragraph_share: float = Field(0.0, ge=0.0, le=1.0)
    words: int = 0
    tokens_estimate: int = 0
    statements_checked: int = Field(default=0, description="cited statement–source pairs judged")
    statements_supported: int = 0
    statements_unsupported: int = 0
    statements_unsure: int = 0
    citation_accuracy: float | None = Field(
        default=None, ge=0.0, le=1.0, description="supported / checked (FACT); null if none checked"
    )
    effective_citations: int = Field(
        default=0, description="distinct supported statement–source pairs (FACT)"
    )
    protocol_errors: int = Field(default=0,
                                 description="research turns without a usable tool call")
    repeated_calls: int = Field(default=0, description="calls already made, answered from memory")
    tokens_cut: int = Field(default=0,
                            description="tokens of generations cut out of the conversation")


class ChangedSource(BaseModel):
    url: str
    title: str


class FigureChange(BaseModel):
    before: int | float | None  # a count stays an int in JSON, a share is a float
    after: int | float | None


class ReportChanges(BaseModel):
    """What changed since an earlier run of the same job (or question): sources cited now
    and not then and the reverse, statements new or gone (compared as normalised sentences,
    so a small edit of wording is no change), and the figures before and after."""

    since_run: str = Field(description="the earlier run's id")
    since: str = Field(description="when the earlier run was made (ISO 8601)")
    new_sources: list[ChangedSource] = Field(default_factory=list)
    dropped_sources: list[ChangedSource] = Field(default_factory=list)
    new_statements: list[str] = Field(default_factory=list)
    removed_statements: list[str] = Field(default_factory=list)
    figures: dict[str, FigureChange] = Field(
        default_factory=dict, description="citation_accuracy and sources_cited, before and after"
    )


# what ended research before the model finished: a budget, or a full context window
StopKind = Literal["turns", "wall_time", "tokens", "cost", "context_window", "no_progress",
                   "protocol_errors"]


class Report(BaseModel):
    """A finished research job: the answer with its citations resolved and numbered from 1,
    the sources the run showed the model (ids from 0), and what the run cost.
    `rumination.reports.render_report(report, "md" | "html" | "json")` writes it for readers
    (`report_bytes` also writes "pdf" and "docx").

    Attributes:
        question: the question as asked.
        answer_markdown: the answer, citations written `[k]`.
        citations: the numbered sources the answer cites, in order of first citation.
        sources: every source the run showed the model, cited or not.
        turns: model turns before the answer, one tool call each (1 in write mode).
        usage: prompt and completion tokens of the run's requests.
        warnings: what the reader should know (invalid ids removed, budgets hit, SIMULATED).
        run_id: the run's id in the run store (`rumination runs show RUN_ID`).
        model: the model that wrote it (the name sent to the server).
        mode: `rumination` (the model drives) or `write` (one writing call).
        figures: what the citations amount to (counts, citation accuracy).
        simulated: written by the protocol simulator, not by a model.
        statements: every cited statement with its support verdict.
        stopped_by: the budget that ended research (`turns`, `wall_time`, `tokens`, `cost`,
            `context_window`); None when the model finished on its own.
        cost: what `usage` cost at the configured prices; None when no price is set.
        changes: what changed since an earlier run of the same job (when asked for).
    """

    question: str
    answer_markdown: str
    citations: list[Citation] = Field(default_factory=list)
    sources: list[Source] = Field(default_factory=list)
    turns: int = 0
    usage: Usage = Field(default_factory=Usage)
    warnings: list[str] = Field(default_factory=list)
    run_id: str
    model: str
    mode: Mode = "rumination"
    figures: ReportFigures | None = None
    simulated: bool = False  # written by rumination's protocol simulator, not by a model
    statements: list[CheckedStatement] = Field(
        default_factory=list, description="every cited statement with its support verdict"
    )
    stopped_by: StopKind | None = Field(
        default=None, description="the budget that ended research; null if the model finished"
    )
    cost: float | None = Field(
        default=None, description="the run's cost at the configured prices; null if unpriced"
    )
    changes: ReportChanges | None = Field(
        default=None, description="what changed since an earlier run; null unless asked for"
    )
    extra: dict[str, Any] = Field(default_factory=dict, exclude=True)
