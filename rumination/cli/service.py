"""`api` and `mcp`: research as a service."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from rumination.errors import UsageError

if TYPE_CHECKING:  # the framework is imported inside each command: `--help` stays fast
    pass
from rumination.cli.app import app
from rumination.cli.common import guarded


@app.command()
def api(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8765,
    resume: Annotated[bool, typer.Option(
        "--resume/--no-resume", help="on start, run the queued runs the store holds (accepted "
        "or interrupted before a stop)")] = True,
) -> None:
    """Serve research over HTTP: the API (OpenAPI at /docs) and the web page at /. Beyond
    loopback it needs the api_token setting. Needs rumination[api]."""

    def body() -> None:
        from rumination.service import require
        from rumination.settings import Settings

        require("api", "api")
        from rumination.service.server import serve_api

        serve_api(Settings.load(), host, port, take_up=resume)

    guarded(body)


@app.command()
def mcp(
    transport: Annotated[str, typer.Option(help="stdio, or http (streamable HTTP at /mcp)")]
    = "stdio",
    host: Annotated[str, typer.Option(help="address to listen on (http)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on (http)")] = 8766,
) -> None:
    """Serve research as Model Context Protocol tools: research, search_runs, get_report.
    Over http beyond loopback it needs the api_token setting. Needs rumination[mcp]."""

    def body() -> None:
        from rumination.service import require
        from rumination.settings import Settings

        require("mcp", "mcp")
        if transport not in ("stdio", "http"):
            raise UsageError(f"--transport is stdio or http, not {transport!r}")
        from rumination.service.mcp_server import serve_mcp

        serve_mcp(Settings.load(), transport, host, port)

    guarded(body)
