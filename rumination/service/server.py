"""`rumination api`: the HTTP API and web page under uvicorn, refusing to listen beyond
loopback without a bearer token. The listening socket is bound before uvicorn starts, so a
bad port or an address in use is one line, not uvicorn's traceback or exit code."""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable
from contextlib import closing
from typing import Any

from rumination.errors import CannotListen, RuminationError, UsageError
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


def serve_api(settings: Settings, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *,
              take_up: bool = True) -> None:
    from rumination.service.app import create_app
    from rumination.store.run_store import open_store

    check_exposure(host, settings)
    # the store is opened here, not in the app's startup, so a bad one is one line too
    with listening_socket(host, port) as listener, closing(open_store(settings)) as store:
        run_uvicorn(create_app(settings, store, take_up=take_up), listener, host,
                    timeout_graceful_shutdown=15)


def run_uvicorn(app: Callable[..., Any], listener: socket.socket, host: str, **options: Any,
                ) -> None:  # fmt: skip
    """Serve `app` with uvicorn on `listener` (bound to `host`) until stopped; uvicorn's own
    startup failure is one line."""
    import uvicorn

    port = listener.getsockname()[1]
    where = _address(host, port)

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            # uvicorn names the address only for sockets it bound itself
            logging.getLogger("uvicorn.error").info(
                "Uvicorn running on http://%s (Press CTRL+C to quit)", where)

    server = Server(uvicorn.Config(app, host=host, port=port, log_level="info", **options))
    try:
        server.run(sockets=[listener])
    except SystemExit as exc:  # uvicorn's own startup failure; its reason is logged above
        if exc.code:
            raise RuminationError(f"the server on {where} did not start "
                                  "(the reason is on the lines above)") from None
        raise


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port (port 0: a free one), for uvicorn to listen on.
    Refused in one line: a port out of range or an unknown host (UsageError), an address
    that cannot be listened on (CannotListen: in use, not allowed, not this machine's)."""
    if not 0 <= port <= 65535:
        raise UsageError(f"--port {port} is not a port: give 1 to 65535 (0: any free port)")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise UsageError(f"cannot listen on {host}: {exc.strerror}") from None
    listener = socket.socket(family, kind, proto)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        listener.bind(address)
    except OSError as exc:
        listener.close()
        raise CannotListen(f"cannot listen on {_address(host, port)}: "
                           f"{exc.strerror or exc}") from None
    return listener


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
