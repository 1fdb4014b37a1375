"""Who may use the service: a request carrying the api_token setting, as a bearer token
(programs) or as the cookie the web page's sign-in form sets (browsers: EventSource cannot
send headers). No token set: everyone (the server then listens on loopback only)."""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = "rumination_token"


def presented_token(request: Request) -> str:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    return request.cookies.get(COOKIE, "")


def matches(given: str, token: str) -> bool:
    return secrets.compare_digest(given.encode(), token.encode())


def is_allowed(request: Request, token: str | None) -> bool:
    return token is None or matches(presented_token(request), token)


class TokenGate:
    """ASGI middleware: HTTP requests without the token get 401 (the MCP server's HTTP app)."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not is_allowed(Request(scope), self.token):
            reply = JSONResponse({"error": "missing or wrong bearer token", "status": 401},
                                 status_code=401, headers={"WWW-Authenticate": "Bearer"})
            await reply(scope, receive, send)
            return
        await self.app(scope, receive, send)
