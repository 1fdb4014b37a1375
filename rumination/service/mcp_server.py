"""`rumination mcp`: research as Model Context Protocol tools (the official `mcp` SDK), over
stdio or streamable HTTP. Tools: `research` (the cited report and its sources, with progress
notifications while it runs), `search_runs` and `get_report`. Runs go into the same run store
as CLI and API runs."""

from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from rumination import __version__
from rumination.agent.researcher import Researcher
from rumination.errors import RuminationError
from rumination.events import Event
from rumination.models import Citation, ReportFigures, Source
from rumination.reports.render import render_report
from rumination.settings import Settings
from rumination.store.run_store import RunStore, open_store
from rumination.support.figures import report_figures, uncited_reason
from rumination.wording import counts_phrase

INSTRUCTIONS = (
    "Deep research with a tool-using model: `research` searches, reads pages and returns a "
    "report whose [n] citations point at the numbered sources it lists. A run takes minutes; "
    "progress notifications say what it does. `search_runs` and `get_report` read earlier runs."
)


class ResearchResult(BaseModel):
    run_id: str
    question: str
    report_markdown: str = Field(description="the report, citations as [n], sources listed")
    citations: list[Citation] = Field(description="the sources the report cites, by number [n]")
    sources: list[Source] = Field(description="every source the run saw, cited or not")
    figures: ReportFigures = Field(description="figures.citations: citation marks in the "
                                   "text; figures.distinct_sources_cited: the sources they cite")
    warnings: list[str]
    # why the report is no cited answer (no final answer, no source seen, nothing cited)
    uncited: str | None = None
    turns: int
    model: str


class RunSummary(BaseModel):
    run_id: str
    status: str
    question: str
    turns: int
    created_at: str


class Progress:
    """Run events as MCP progress notifications: one step per turn, a message per action."""

    def __init__(self, ctx: Context, max_turns: int) -> None:
        self.ctx = ctx
        self.total = float(max_turns + 1)  # the turns, then the answer
        self.done = 0.0

    async def __call__(self, event: Event) -> None:
        d = event.data
        if event.kind == "tool_called":
            self.done = float(d["index"] + 1)
            args = ", ".join(f"{k}={v!r}" for k, v in d["arguments"].items())
            await self._say(f"turn {d['index'] + 1}: {d['name']}({args})")
        elif event.kind == "answer_started":
            await self._say("writing the report")
        elif event.kind == "finished":
            self.done = self.total
            await self._say(f"done: {counts_phrase(d)}")

    async def _say(self, message: str) -> None:
        await self.ctx.report_progress(min(self.done, self.total), self.total, message)


def build_server(settings: Settings, store: RunStore | None = None) -> MCPServer:
    runs = store or open_store(settings)
    server = MCPServer(name="rumination", version=__version__, instructions=INSTRUCTIONS,
                       log_level="WARNING")  # INFO would log every LLM request on stderr

    @server.tool()
    async def research(
        question: Annotated[str, Field(min_length=1, description="the research question")],
        ctx: Context,
        max_turns: Annotated[int | None, Field(gt=0, le=500, description="tool-call turn "
                                               "budget (default: the server's)")] = None,
    ) -> ResearchResult:
        """Research a question on the web or the configured corpus and return a cited report
        with its sources. Takes minutes; sends progress notifications."""
        try:
            run_settings = Settings.load_over(settings, {"max_turns": max_turns or
                                                         settings.max_turns})
            progress = Progress(ctx, run_settings.max_turns)
            report = await Researcher(run_settings, store=runs).run(question, on_event=progress)
        except RuminationError as exc:
            raise ToolError(str(exc)) from None
        return ResearchResult(
            run_id=report.run_id, question=report.question,
            report_markdown=render_report(report, "md"), citations=report.citations,
            sources=report.sources, figures=report_figures(report), warnings=report.warnings,
            uncited=uncited_reason(report), turns=report.turns, model=report.model,
        )

    @server.tool()
    def search_runs(
        text: Annotated[str, Field(description="text the question contains (any case)")] = "",
        status: Annotated[str | None, Field(description="finished, interrupted, failed or "
                                            "running")] = None,
        limit: Annotated[int, Field(ge=1, le=500)] = 20,
    ) -> list[RunSummary]:
        """Find stored research runs (CLI, API and MCP runs alike), newest first."""
        wanted = text.casefold()
        found = [RunSummary(run_id=r.run_id, status=r.status, question=r.question,
                            turns=r.turns, created_at=r.created_at)
                 for r in runs.list_runs(10_000)
                 if wanted in r.question.casefold() and status in (None, r.status)]
        return found[:limit]

    @server.tool()
    def get_report(
        run_id: Annotated[str, Field(description="a run id from research or search_runs")],
        format: Annotated[str, Field(pattern="^(md|json|html)$")] = "md",
    ) -> str:
        """A finished run's report: markdown (default), json or html."""
        try:
            record = runs.get_run(run_id)
        except RuminationError as exc:
            raise ToolError(str(exc)) from None
        report = runs.report(run_id)
        if report is None:
            raise ToolError(f"run {run_id} has no report (status {record.status})")
        return render_report(report, format)

    return server


def http_app(settings: Settings, host: str, store: RunStore | None = None) -> Any:
    """The streamable HTTP app (at /mcp), behind the api_token setting when it is set."""
    from rumination.service.auth import TokenGate

    return TokenGate(build_server(settings, store).streamable_http_app(host=host),
                     settings.api_token)


def serve_mcp(settings: Settings, transport: str, host: str, port: int) -> None:
    if transport == "stdio":
        build_server(settings).run("stdio")
        return
    from rumination.service.server import check_exposure, listening_socket, run_uvicorn

    check_exposure(host, settings)
    with listening_socket(host, port) as listener:
        run_uvicorn(http_app(settings, host), listener, host)
