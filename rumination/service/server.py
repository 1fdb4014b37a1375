"""`rumination api`: the HTTP API and web page under uvicorn, refusing to listen beyond
loopback without a bearer token."""

from __future__ import annotations

import ipaddress

from rumination.errors import UsageError
from rumination.settings import Settings

DEFAULT_PORT = 8765


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, settings: Settings) -> None:
    if not is_loopback(host) and not settings.api_token:
        raise UsageError(f"refusing to listen on {host} without a token: set api_token "
                         "(RUMINATION_API_TOKEN) or listen on 127.0.0.1")


def serve_api(settings: Settings, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
    import uvicorn

    from .app import create_app

    check_exposure(host, settings)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info",
                timeout_graceful_shutdown=15)
