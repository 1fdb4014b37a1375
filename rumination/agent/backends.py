"""The search backend contract and the registry that finds backends through entry points.

A third-party package adds a backend by declaring, in its own pyproject.toml:

    [project.entry-points."rumination.search_backends"]
    mysearch = "mypackage.backend:MySearchBackend"

The named class must provide `from_settings(settings)` and the `SearchBackend` methods.

Options: a backend that needs options (a URL, an API key, an index name) declares them as a
`BackendOptions` model in its `options` attribute and reads them with `backend_options()`.
Users set them, lowest layer first, in the environment (`RUMINATION_<NAME>_<OPTION>`, e.g.
`RUMINATION_SEARXNG_URL`), in the config file (`[backends.NAME]` table; a run's recorded or
API-given values sit in the same place), or on the command line (`--backend-opt OPTION=VALUE`,
for the chosen backend). Unlike ordinary settings, the environment is the lowest layer here.
Options whose names contain key, token, secret or password are masked wherever settings are
recorded or shown; declare them as `pydantic.SecretStr` so they never appear in a repr or a
log line either.
"""

from __future__ import annotations

import os
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Annotated, Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, BeforeValidator, ValidationError

from rumination.errors import ConfigError, UsageError
from rumination.models import Page, SearchHit

if TYPE_CHECKING:
    from rumination.settings import Settings

ENTRY_POINT_GROUP = "rumination.search_backends"


@runtime_checkable
class SearchBackend(Protocol):
    name: str

    async def search(
        self, query: str, *, limit: int, language: str | None = None
    ) -> list[SearchHit]: ...

    async def fetch(self, url: str) -> Page | None:
        """The document behind `url` if this backend holds it, else None (fetch from the web)."""
        ...

    async def aclose(self) -> None: ...


class BackendOptions(BaseModel):
    """Base of a backend's options model; unknown options are refused (typos surface)."""

    model_config = {"extra": "forbid"}


OptionsT = TypeVar("OptionsT", bound=BackendOptions)


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


CommaList = Annotated[list[str], BeforeValidator(_split_commas)]
"""A list option that the environment or --backend-opt may give as "a,b,c"."""


def env_name(backend: str, option: str) -> str:
    """The environment variable that sets `option` of `backend`."""
    return f"RUMINATION_{backend}_{option}".upper().replace("-", "_")


def backend_options(settings: Settings, backend: str, model: type[OptionsT]) -> OptionsT:
    """The options of `backend`: config/API values in `settings.backends[backend]` over the
    environment; a ConfigError naming the backend, the option and where to set it."""
    values: dict[str, Any] = {}
    for option in model.model_fields:
        raw = os.environ.get(env_name(backend, option))
        if raw is not None:
            values[option] = raw
    values.update(settings.backends.get(backend, {}))
    try:
        return model(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        option = ".".join(str(p) for p in first["loc"]) or "options"
        hint = ""
        if option in model.model_fields:
            hint = (f" (set {option} in [backends.{backend}] of the config file, "
                    f"{env_name(backend, option)}, or --backend-opt {option}=...)")
        raise ConfigError(f"backend {backend}: option {option}: {first['msg']}{hint}") from None


def describe_options(backend: str, model: type[BackendOptions]) -> list[str]:
    """One line per option for `rumination backends`: name, required or default, variable."""
    lines = []
    for option, field in model.model_fields.items():
        default = (
            "required" if field.is_required()
            else f"default {field.get_default(call_default_factory=True)!r}"
        )
        about = f" - {field.description}" if field.description else ""
        lines.append(f"{option} ({default}; {env_name(backend, option)}){about}")
    return lines


class BackendFactory(Protocol):
    requires: str
    """One line for `rumination backends`: what the backend needs (keys, URL, corpus)."""

    def from_settings(self, settings: Settings) -> SearchBackend: ...


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_backends() -> dict[str, list[str]]:
    """Installed backend names mapped to what each needs: a summary line, then one line per
    option (or why the backend cannot load)."""
    described: dict[str, list[str]] = {}
    for name, ep in sorted(_entry_points().items()):
        try:
            factory = ep.load()
        except Exception as exc:  # a broken plugin must not hide the others
            described[name] = [f"cannot load: {type(exc).__name__}: {exc}"]
            continue
        options = getattr(factory, "options", None)
        described[name] = [str(getattr(factory, "requires", ""))]
        if isinstance(options, type) and issubclass(options, BackendOptions):
            described[name] += describe_options(name, options)
    return described


def installed_backend(name: str) -> EntryPoint:
    """The entry point of the installed backend `name`; UsageError naming the installed ones."""
    points = _entry_points()
    ep = points.get(name)
    if ep is None:
        known = ", ".join(sorted(points)) or "none installed"
        raise UsageError(f"unknown search backend {name!r} (installed: {known})")
    return ep


def create_backend(settings: Settings, name: str | None = None) -> SearchBackend:
    """Instantiate the backend `name` (default: `settings.backend`)."""
    name = name or settings.backend
    factory: BackendFactory = installed_backend(name).load()
    given = settings.backends.get(name)
    options = getattr(factory, "options", None)
    if given and not (isinstance(options, type) and issubclass(options, BackendOptions)):
        raise ConfigError(f"backend {name} takes no options (got {', '.join(sorted(given))}); "
                          "`rumination backends` lists each backend's options")
    return factory.from_settings(settings)
