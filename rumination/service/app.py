"""The HTTP API (FastAPI): start, watch, read, cancel and resume research runs.

Store reads run in worker threads, so a slow store delays the request that reads it, not
the runs' event streams. Every route but the OpenAPI schema needs `Authorization: Bearer
<api_token>` when the setting is set. Errors are JSON: `{"error": "one line", "status": N}`:
400 for a body that is no JSON or names an unknown backend or a model the LLM server does
not serve, 422 for a field out of bounds, 502/503 when the LLM server is no LLM API / does
not answer.
"""


import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from rumination.errors import LLMError, LLMUnavailable, NotAnLLMServer, UsageError
from rumination.reports.render import (
    FILE_FORMATS,
    FORMATS,
    MEDIA_TYPES,
    check_format,
    render_report,
    report_bytes,
)
from rumination.service.auth import is_allowed
from rumination.service.limits import BodySizeLimit
from rumination.service.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from rumination.service.metrics import ServiceMetrics
from rumination.service.pages import page_router
from rumination.service.runner import Conflict, NotFound, QueueFull, RunQueue
from rumination.service.views import (
    ErrorBody,
    RunList,
    RunRequest,
    RunStatus,
    RunView,
    listing,
    view,
)
from rumination.settings import Settings
from rumination.store.run_store import RunStore, open_store

RUN_ID = Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="the run id")
CANCEL_WAIT_S = 10.0


def queue_of(request: Request) -> RunQueue:
    queue: RunQueue = request.app.state.queue
    return queue


Queue = Annotated[RunQueue, Depends(queue_of)]
RunId = Annotated[str, RUN_ID]


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorBody} for code in (401, 422, *codes)}


def create_app(settings: Settings, store: RunStore | None = None, *,
               take_up: bool = True) -> FastAPI:
    """The API over `settings` (the server's defaults for every run) and the run store.
    `take_up`: on start, run what the store has queued (accepted or interrupted before a
    restart)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_store = store is None
        run_store = store or open_store(settings)
        app.state.queue = RunQueue(settings, run_store, observer=metrics.observe)
        await app.state.queue.start(take_up)
        try:
            yield
        finally:
            await app.state.queue.close()
            if own_store:
                run_store.close()

    def run_states() -> list[str]:
        queue: RunQueue | None = getattr(app.state, "queue", None)
        return [ticket.status for ticket in queue.tickets()] if queue else []

    metrics = ServiceMetrics(run_states)
    bearer = HTTPBearer(auto_error=False, description="the server's api_token setting")

    def authorized(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        if not is_allowed(request, settings.api_token):
            raise HTTPException(401, "missing or wrong bearer token",
                                headers={"WWW-Authenticate": "Bearer"})

    app = FastAPI(
        title="rumination", version="1", lifespan=lifespan,
        description="Deep research runs over HTTP: start, follow (Server-Sent Events), read "
        "the cited report, cancel, resume. Runs are the same records as CLI runs.",
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.api_max_request_bytes)
    _add_error_handlers(app)
    app.include_router(page_router(settings))
    api = APIRouter(dependencies=[Depends(authorized)])

    @api.post("/runs", status_code=202, response_model=RunView,
              responses=_errors(400, 413, 415, 429, 502, 503))
    async def start_run(body: RunRequest, queue: Queue) -> RunView:
        """Queue a research run; its id comes back at once and it runs in the background.
        Refused at once (not queued) when the backend is not installed, the LLM server does
        not serve the model (400) or does not answer (503)."""
        ticket = await queue.submit(body.question, body.overrides(), body.compare_to)
        return await asyncio.to_thread(view, queue, ticket.run_id)

    @api.get("/runs", response_model=RunList, responses=_errors())
    async def list_runs(
        queue: Queue,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        status: Annotated[RunStatus | None, Query(description="only runs in this status")]
        = None,
        q: Annotated[str | None, Query(description="only questions containing this text")]
        = None,
    ) -> RunList:
        """Runs waiting in this service, then stored runs (CLI runs too), newest first."""
        return await asyncio.to_thread(listing, queue, limit, status, q)

    @api.get("/runs/{run_id}", response_model=RunView, responses=_errors(404))
    async def get_run(run_id: RunId, queue: Queue) -> RunView:
        """A run's status, turns, sources seen and, once finished, its report's figures."""
        return await asyncio.to_thread(view, queue, run_id)

    @api.get(
        "/runs/{run_id}/events", responses={**_errors(404), 200: {
            "content": {"text/event-stream": {}},
            "description": "Server-Sent Events: every `--trace` event of the run from the "
            "start (or after Last-Event-ID), live while the run goes on, then an `end` event "
            "with the run's status.",
        }},
        response_class=StreamingResponse,
    )
    async def run_events(
        run_id: RunId, queue: Queue,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    ) -> StreamingResponse:
        """The run's events as Server-Sent Events."""
        view(queue, run_id)  # 404 before the stream starts
        start = int(last_event_id) + 1 if last_event_id and last_event_id.isdigit() else 0
        return StreamingResponse(
            _event_stream(queue, run_id, start), media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @api.get(
        "/runs/{run_id}/report", responses={**_errors(400, 404, 409), 200: {"content": {
            media.split(";")[0]: {} for media in MEDIA_TYPES.values()}}},
        response_class=Response,
    )
    async def run_report(
        run_id: RunId, queue: Queue,
        format: Annotated[str, Query(pattern=f"^({'|'.join(FORMATS)})$")] = "md",
    ) -> Response:
        """The finished run's report, with its citations and sources: md, html or json as
        text, pdf or docx as a file to download (400 when the server lacks the extra)."""
        found = view(queue, run_id, detail=False)
        report = queue.store.report(run_id)
        if report is None:
            raise Conflict(f"run {run_id} has no report (status {found.status})")
        check_format(format)
        if format in FILE_FORMATS:
            content = await asyncio.to_thread(report_bytes, report, format)
            disposition = f'attachment; filename="{run_id}.{format}"'
            return Response(content, media_type=MEDIA_TYPES[format],
                            headers={"Content-Disposition": disposition})
        record = queue.store.get_run(run_id)
        style = json.loads(record.settings_json).get("citation_style", "numbered")
        text = render_report(report, format, citation_style=style)
        return Response(text, media_type=MEDIA_TYPES[format])

    @api.post("/runs/{run_id}/resume", status_code=202, response_model=RunView,
              responses=_errors(400, 404, 409, 429, 502, 503))
    async def resume_run(run_id: RunId, queue: Queue) -> RunView:
        """Continue an interrupted run from its last committed turn (queued like a new run)."""
        await queue.resume(run_id)
        return view(queue, run_id)

    @api.delete("/runs/{run_id}", response_model=RunView, responses=_errors(404, 409))
    async def cancel_run(run_id: RunId, queue: Queue) -> RunView:
        """Cancel a queued or running run. A running run stops and stays resumable
        (status interrupted)."""
        ticket = queue.cancel(run_id)
        if ticket.task is not None:
            await asyncio.wait([ticket.task], timeout=CANCEL_WAIT_S)
        return view(queue, run_id)

    @api.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        """Prometheus metrics of this service (text exposition format)."""
        return Response(metrics.exposition(), media_type=METRICS_CONTENT_TYPE)

    app.include_router(api)
    return app


async def _event_stream(queue: RunQueue, run_id: str, start: int) -> AsyncIterator[str]:
    async for index, record in queue.log(run_id).follow(start):
        if record is None:
            yield ": keep-alive\n\n"
            continue
        data = json.dumps(record, ensure_ascii=False)
        yield f"id: {index}\nevent: {record['event']}\ndata: {data}\n\n"
    final = view(queue, run_id, detail=False)
    yield f"event: end\ndata: {json.dumps({'run_id': run_id, 'status': final.status})}\n\n"


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    body = ErrorBody(error=message, status=status, **extra)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status)


def _add_error_handlers(app: FastAPI) -> None:
    statuses = ((NotFound, 404), (Conflict, 409), (QueueFull, 429), (LLMUnavailable, 503),
                (NotAnLLMServer, 502), (UsageError, 400), (LLMError, 502))  # first match wins

    async def on_rumination_error(request: Request, exc: Exception) -> JSONResponse:
        status = next(code for kind, code in statuses if isinstance(exc, kind))
        return _error(status, str(exc))

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        response = _error(exc.status_code, str(exc.detail))
        response.headers.update(exc.headers or {})
        return response

    async def on_invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        unreadable = _unreadable_body(request, exc.errors())
        if unreadable is not None:
            return _error(*unreadable)
        fields = [{"loc": [str(p) for p in e["loc"]], "msg": e["msg"]} for e in exc.errors()]
        first = fields[0] if fields else {"loc": [], "msg": "invalid request"}
        return _error(422, f"{'.'.join(first['loc'])}: {first['msg']}", fields=fields)

    for kind, _ in statuses:
        app.add_exception_handler(kind, on_rumination_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_invalid)


def _unreadable_body(request: Request, errors: Sequence[Any]) -> tuple[int, str] | None:
    """(status, message) when the body could not be read as a JSON object at all: not JSON,
    empty, or sent as another media type (`curl -d` without a JSON content type)."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    for error in errors:
        loc = tuple(error["loc"])
        if error["type"] == "json_invalid":
            reason = error.get("ctx", {}).get("error", "not JSON")
            where = f" at character {loc[1]}" if len(loc) > 1 else ""
            return 400, f"invalid JSON body: {reason}{where}"
        if loc == ("body",) and error["type"] == "missing":
            return 400, "invalid JSON body: the body is empty"
        if loc == ("body",) and not (media == "application/json" or media.endswith("+json")):
            return 415, ("the body must be JSON sent with Content-Type: application/json (this "
                         f"one came as {media or 'no content type'})")
    return None
