"""Who may use the service: a request carrying the api_token setting, as a bearer token
(programs) or as the cookie the web page's sign-in form sets (browsers: EventSource cannot
send headers). No token set: everyone (the server then listens on loopback only)."""

from __future__ import annotations

import secrets

from starlette.requests import Request

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
