"""One exception tree for the whole framework, rooted at RuminationError.

Errors that come from the outside world (a dead server, a bad config file, a bad
question) are subclasses here and carry a one-line message fit for a terminal.
Framework bugs are ordinary Python exceptions and are never caught silently.
"""

from __future__ import annotations


class RuminationError(Exception):
    """Base of every error the framework raises on purpose."""

    exit_code = 1


class UsageError(RuminationError):
    """Bad input from the user: arguments, config, question, files."""

    exit_code = 2


class ConfigError(UsageError):
    """A settings file or environment variable could not be used."""


class LLMError(RuminationError):
    """The LLM server answered, but not with something usable."""

    exit_code = 3


class LLMUnavailable(LLMError):
    """The LLM server could not be reached (after retries)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"LLM server unreachable at {url}: {reason}")
        self.url = url
        self.reason = reason


class ModelNotServed(UsageError, LLMError):
    """The server is up but does not serve the model asked for (a wrong --model)."""


class NotAnLLMServer(UsageError, LLMError):
    """The URL answers, but not as an OpenAI-compatible API (a wrong --llm-url)."""


class ServerRefused(UsageError, LLMError):
    """The server answered the request with an error of its own (a role, a parameter or a
    form it does not take): reachable, so not LLMUnavailable. The message quotes the server."""


class ContextLengthExceeded(LLMError):
    """The server refused a request because prompt + max_tokens exceed its window."""


class BackendError(RuminationError):
    """A search backend failed; during a run this becomes an observation."""

    def __init__(self, backend: str, message: str) -> None:
        super().__init__(f"search backend {backend!r}: {message}")
        self.backend = backend


class FetchError(RuminationError):
    """A page could not be fetched or read; during a run this becomes an observation."""


class FetchRefused(FetchError):
    """A URL was refused by the fetch rules (scheme, private address, size)."""


class PageTooLarge(FetchRefused):
    """A body passed its byte cap (as sent or once decompressed)."""


class StoreUnavailable(RuminationError):
    """The run store (a PostgreSQL server) stopped answering; the run stays resumable."""


class CannotListen(RuminationError):
    """A server command cannot listen on its address (in use, not allowed, not local)."""

    exit_code = 5


class Interrupted(RuminationError):
    """The run was stopped by the user; what it produced so far is kept."""

    exit_code = 4
