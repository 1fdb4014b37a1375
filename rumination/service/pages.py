"""The web page: the runs list, one run's live progress and its report. Server-rendered
templates and a little plain JavaScript, all shipped in this package: no build step, no
external assets."""

from importlib.resources import files
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from rumination.service.auth import COOKIE, is_allowed, matches
from rumination.service.runner import RunQueue
from rumination.service.views import listing, view
from rumination.settings import Settings
from rumination.templates import render

PACKAGE = "rumination.service"
# The page's own scripts only; the report is framed from the same origin.
POLICY = ("default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; "
          "frame-src 'self'; img-src data:; form-action 'self'; base-uri 'none'")
HEADERS = {"Content-Security-Policy": POLICY, "Cache-Control": "no-store"}


def page_router(settings: Settings) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def page(name: str, status: int = 200, **values: object) -> HTMLResponse:
        return HTMLResponse(render(name, PACKAGE, **values), status_code=status, headers=HEADERS)

    def sign_in(wrong: bool = False) -> HTMLResponse:
        return page("login.html", 401, title="sign in", wrong=wrong)

    @router.get("/")
    async def runs_page(request: Request) -> HTMLResponse:
        if not is_allowed(request, settings.api_token):
            return sign_in()
        queue: RunQueue = request.app.state.queue
        return page("runs.html", title="runs", runs=listing(queue, 100, None, None).runs)

    @router.get("/ui/runs/{run_id}")
    async def run_page(
        request: Request, run_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    ) -> HTMLResponse:
        if not is_allowed(request, settings.api_token):
            return sign_in()
        queue: RunQueue = request.app.state.queue
        run = view(queue, run_id, detail=False)
        has_report = queue.store.report(run_id) is not None
        return page("run.html", title=f"run {run_id}", run=run, has_report=has_report)

    @router.post("/ui/login")
    async def login(request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        given = form.get("token", [""])[0]
        if settings.api_token is not None and not matches(given, settings.api_token):
            return sign_in(wrong=True)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, given, httponly=True, samesite="strict")
        return response

    @router.get("/ui/{script}.js")
    async def script(script: str) -> Response:
        if script not in ("run", "runs"):
            return Response(status_code=404)
        text = (files(PACKAGE) / f"{script}.js").read_text(encoding="utf-8")
        return Response(text, media_type="text/javascript", headers=HEADERS)

    return router
