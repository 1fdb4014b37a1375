"""Research as a service: the HTTP API and web page (`rumination api`, extra `api`) and the
Model Context Protocol server (`rumination mcp`, extra `mcp`).

Nothing here imports FastAPI or the MCP SDK at import time: `require` names the extra to
install when one is missing.
"""

from __future__ import annotations

import importlib.util

from rumination.errors import UsageError

EXTRAS = {"api": ("fastapi", "uvicorn"), "mcp": ("mcp", "uvicorn")}


def require(extra: str, command: str) -> None:
    """Raise a one-line UsageError when a module of `extra` is not installed."""
    missing = [m for m in EXTRAS[extra] if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(
            f"`rumination {command}` needs {', '.join(missing)}: pip install 'rumination[{extra}]'"
        )
