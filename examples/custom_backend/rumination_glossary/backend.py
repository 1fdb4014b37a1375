"""`glossary`: an example search backend that searches a small JSON glossary.

It shows every part a rumination backend needs:

1. the protocol (`rumination.agent.backends.SearchBackend`): a `name`, `async search(query, *,
   limit, language=None)` returning `SearchHit`s, `async fetch(url)` returning the `Page`
   behind a URL it holds (or None: rumination then fetches the URL from the web), and
   `async aclose()`;
2. a factory: the class itself, with a one-line `requires` for `rumination backends`, an
   `options` model and `from_settings(settings)`;
3. options: a `BackendOptions` model read with `backend_options()`, so users can set them in
   `[backends.glossary]` of the config file, as `RUMINATION_GLOSSARY_<OPTION>`, or with
   `--backend-opt OPTION=VALUE`;
4. errors: a problem with the user's input is a `ConfigError` (one line, exit code 2); a
   failing search service would raise `BackendError`, which a run shows the model as an
   observation instead of crashing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from rumination.agent.backends import BackendOptions, backend_options
from rumination.errors import ConfigError
from rumination.models import Page, SearchHit

if TYPE_CHECKING:
    from rumination.settings import Settings

_WORD = re.compile(r"\w+")
URL_PREFIX = "glossary://"


class GlossaryOptions(BackendOptions):
    """Options of the glossary backend (unknown names are refused, so typos surface)."""

    file: Path | None = Field(
        None, description="a JSON list of {term, definition} (default: the bundled glossary)"
    )
    min_words: int = Field(
        1, ge=1, description="query words an entry must contain to be a hit"
    )


@dataclass(frozen=True)
class GlossaryEntry:
    term: str
    definition: str

    @property
    def url(self) -> str:
        """A stable URL per entry: search hits carry it, `fetch` recognises it."""
        return URL_PREFIX + "-".join(_words(self.term))

    def matches(self, query_words: set[str]) -> int:
        """How many distinct query words occur in the term or the definition."""
        return len(query_words & set(_words(f"{self.term} {self.definition}")))


def _words(text: str) -> list[str]:
    return [word.lower() for word in _WORD.findall(text)]


def load_glossary(path: Path | None = None) -> list[GlossaryEntry]:
    """The entries of a JSON glossary file (default: the one bundled with this package)."""
    source = path if path is not None else files("rumination_glossary") / "glossary.json"
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
        return [GlossaryEntry(str(item["term"]), str(item["definition"])) for item in data]
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"backend glossary: cannot read {source}: {exc}") from None


class GlossaryBackend:
    """Search backend over a list of glossary entries, ranked by query words matched."""

    name = "glossary"
    requires = "nothing: a bundled heat pump glossary (option file: your own JSON glossary)"
    options = GlossaryOptions

    def __init__(self, entries: list[GlossaryEntry], *, min_words: int = 1) -> None:
        self.entries = entries
        self.min_words = min_words

    @classmethod
    def from_settings(cls, settings: Settings) -> GlossaryBackend:
        """Called by rumination (`create_backend`) when a user picks `--backend glossary`."""
        options = backend_options(settings, cls.name, GlossaryOptions)
        return cls(load_glossary(options.file), min_words=options.min_words)

    async def search(
        self, query: str, *, limit: int, language: str | None = None
    ) -> list[SearchHit]:
        """Entries with the most query words first (ties keep the glossary's order).
        `language` is ignored: the glossary is English only."""
        wanted = set(_words(query))
        scored = [(entry.matches(wanted), entry) for entry in self.entries]
        ranked = sorted((pair for pair in scored if pair[0] >= self.min_words),
                        key=lambda pair: -pair[0])
        return [
            SearchHit(title=entry.term, url=entry.url, snippet=entry.definition)
            for _, entry in ranked[:limit]
        ]

    async def fetch(self, url: str) -> Page | None:
        """The entry behind a glossary:// URL; None for any other URL (the web has it)."""
        for entry in self.entries:
            if entry.url == url:
                return Page(url=url, title=entry.term, text=f"# {entry.term}\n\n{entry.definition}")
        return None

    async def aclose(self) -> None:
        """Nothing to release here; a backend with an HTTP client closes it in aclose."""
