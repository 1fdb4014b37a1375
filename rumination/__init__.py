"""rumination: a deep-research harness for GLM-Z1-Rumination-32B-0414 served by vLLM.

The public names are imported on first use, so that `rumination --help` and
`rumination --version` start without loading the framework."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rumination.agent.researcher import Researcher
    from rumination.agent.sync import research
    from rumination.errors import (
        BackendError,
        ConfigError,
        ContextLengthExceeded,
        FetchError,
        FetchRefused,
        Interrupted,
        LLMError,
        LLMUnavailable,
        RuminationError,
        UsageError,
    )
    from rumination.events import Event
    from rumination.models import (
        CheckedStatement,
        Citation,
        Message,
        Report,
        ReportFigures,
        SearchHit,
        Source,
        Support,
        ToolCall,
        Turn,
        Usage,
    )
    from rumination.settings import Settings

__version__ = "0.1.0"

_HOMES = {
    "Researcher": "agent.researcher", "research": "agent.sync", "Event": "events",
    "Settings": "settings",
    **dict.fromkeys(["BackendError", "ConfigError", "ContextLengthExceeded", "FetchError",
                     "FetchRefused", "Interrupted", "LLMError", "LLMUnavailable",
                     "RuminationError", "UsageError"], "errors"),
    **dict.fromkeys(["CheckedStatement", "Citation", "Message", "Report", "ReportFigures",
                     "SearchHit", "Source", "Support", "ToolCall", "Turn", "Usage"], "models"),
}  # fmt: skip

__all__ = [
    "BackendError", "CheckedStatement", "Citation", "ConfigError", "ContextLengthExceeded",
    "Event", "FetchError", "FetchRefused", "Interrupted", "LLMError", "LLMUnavailable",
    "Message", "Report", "ReportFigures", "Researcher", "RuminationError", "SearchHit",
    "Settings", "Source", "Support", "ToolCall", "Turn", "Usage", "UsageError", "research",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'rumination' has no attribute {name!r}")
    value = getattr(import_module(f".{home}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
