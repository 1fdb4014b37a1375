"""Composite backends: `fallback` tries backends in order, `merge` fuses their rankings.

Both name their children in their options, e.g. in the config file:

    [backends.fallback]
    backends = ["searxng", "local"]

    [backends.merge]
    backends = ["local", "wikipedia"]
    rrf_k = 60

or as a comma-separated string (`RUMINATION_FALLBACK_BACKENDS=searxng,local`,
`--backend-opt backends=searxng,local`). Children are built with `create_backend`; within one
build a backend named twice (say `local` under both `fallback` and a nested `merge`) is made
once and shared, and a composite that would contain itself is refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, TypeVar

from pydantic import AfterValidator, Field

from rumination.agent.backends import (
    BackendOptions,
    CommaList,
    SearchBackend,
    backend_options,
    create_backend,
)
from rumination.errors import BackendError, ConfigError
from rumination.models import Page, SearchHit
from rumination.urls import normalize_url

if TYPE_CHECKING:
    from rumination.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


def _no_repeats(names: list[str]) -> list[str]:
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"lists {', '.join(repeated)} more than once")
    return names


BackendNames = Annotated[CommaList, AfterValidator(_no_repeats)]


class CompositeOptions(BackendOptions):
    backends: BackendNames


class FallbackOptions(CompositeOptions):
    backends: BackendNames = Field(min_length=1, description="backends to try, in order")


class MergeOptions(CompositeOptions):
    backends: BackendNames = Field(min_length=2, description="backends to query together")
    rrf_k: int = Field(60, ge=0, description="reciprocal rank fusion constant: 1/(k + rank)")
    limit: int | None = Field(
        None, ge=1, description="hits asked of each backend (default: the search limit)"
    )


OptionsT = TypeVar("OptionsT", bound=CompositeOptions)


# ---- building children: cycle refusal and sharing -------------------------------------------


@dataclass
class _Build:
    """The composites being built (outermost first) and the backends made so far."""

    path: list[str] = field(default_factory=list)
    made: dict[str, SearchBackend] = field(default_factory=dict)


_BUILD: ContextVar[_Build | None] = ContextVar("rumination_composite_build", default=None)


@contextmanager
def _building(name: str) -> Iterator[_Build]:
    """Enter the build of composite `name`; a ConfigError if it is already being built."""
    outer = _BUILD.get()
    build = _Build() if outer is None else outer
    token = _BUILD.set(build) if outer is None else None
    try:
        if name in build.path:
            cycle = " -> ".join([*build.path[build.path.index(name) :], name])
            raise ConfigError(f"backend {name} contains itself: {cycle}")
        build.path.append(name)
        try:
            yield build
        finally:
            build.path.pop()
    finally:
        if token is not None:
            _BUILD.reset(token)


def _create_children(
    settings: Settings, build: _Build, names: Sequence[str]
) -> tuple[list[SearchBackend], list[SearchBackend]]:
    """The backends `names`, and those of them made here (the caller owns and closes those)."""
    children: list[SearchBackend] = []
    owned: list[SearchBackend] = []
    try:
        for name in names:
            child = build.made.get(name)
            if child is None:
                child = build.made[name] = create_backend(settings, name)
                owned.append(child)
            children.append(child)
    except BaseException:
        build.made = {n: b for n, b in build.made.items() if all(b is not o for o in owned)}
        _discard(owned)
        raise
    return children, owned


def _assemble(
    settings: Settings, name: str, model: type[OptionsT]
) -> tuple[OptionsT, list[SearchBackend], list[SearchBackend]]:
    """Options, children and owned children of composite `name`, built from settings."""
    with _building(name) as build:
        options = backend_options(settings, name, model)
        children, owned = _create_children(settings, build, options.backends)
    return options, children, owned


_closing: set[asyncio.Task[None]] = set()


def _discard(backends: list[SearchBackend]) -> None:
    """Close backends made before a sibling failed to build (from_settings is not async)."""
    if not backends:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(_close_quietly(backends))
        return
    task = loop.create_task(_close_quietly(backends))
    _closing.add(task)
    task.add_done_callback(_closing.discard)


async def _close_quietly(backends: Sequence[SearchBackend]) -> None:
    try:
        await close_all(backends)
    except Exception:
        log.warning("closing a backend after a failed build raised", exc_info=True)


async def close_all(backends: Sequence[SearchBackend]) -> None:
    """Close every backend, even when some raise; then raise the first error."""
    results = await asyncio.gather(*(b.aclose() for b in backends), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    for extra in errors[1:]:
        log.warning("closing a backend also raised: %r", extra)
    if errors:
        raise errors[0]


def _every_failed(reasons: Sequence[str]) -> str:
    return "every backend failed: " + "; ".join(reasons)


# ---- the composites --------------------------------------------------------------------------


class _Composite:
    name = "composite"

    def __init__(
        self, children: Sequence[SearchBackend], *, owned: Sequence[SearchBackend] | None = None
    ) -> None:
        """`children` in order; `owned` are the ones closed by `aclose` (default: all)."""
        self.children = list(children)
        self._owned = list(children if owned is None else owned)

    async def _in_order(self, ask: Callable[[SearchBackend], Awaitable[T]]) -> T | None:
        """The first non-empty answer of the children in order. A child raising BackendError
        is skipped; when every child raised, a BackendError giving each reason."""
        reasons: list[str] = []
        for child in self.children:
            try:
                answer = await ask(child)
            except BackendError as exc:
                log.warning("%s: skipping %s: %s", self.name, child.name, exc)
                reasons.append(str(exc))
                continue
            if answer:
                return answer
        if self.children and len(reasons) == len(self.children):
            raise BackendError(self.name, _every_failed(reasons))
        return None

    async def fetch(self, url: str) -> Page | None:
        """The first child that holds `url` gives the page; None if no child does."""
        return await self._in_order(lambda child: child.fetch(url))

    async def aclose(self) -> None:
        await close_all(self._owned)


class FallbackBackend(_Composite):
    """Tries its backends in order and returns the first non-empty result list."""

    name = "fallback"
    requires = "backends = [NAMES] in [backends.fallback]: tried in order until one has hits"
    options = FallbackOptions

    @classmethod
    def from_settings(cls, settings: Settings) -> FallbackBackend:
        _, children, owned = _assemble(settings, cls.name, FallbackOptions)
        return cls(children, owned=owned)

    async def search(
        self, query: str, *, limit: int, language: str | None = None
    ) -> list[SearchHit]:
        hits = await self._in_order(
            lambda child: child.search(query, limit=limit, language=language)
        )
        return hits or []


class MergeBackend(_Composite):
    """Queries its backends concurrently and fuses their rankings (reciprocal rank fusion)."""

    name = "merge"
    requires = "backends = [NAMES] (two or more) in [backends.merge]: results fused by rank"
    options = MergeOptions

    def __init__(
        self,
        children: Sequence[SearchBackend],
        *,
        owned: Sequence[SearchBackend] | None = None,
        rrf_k: int = 60,
        child_limit: int | None = None,
    ) -> None:
        super().__init__(children, owned=owned)
        self.rrf_k = rrf_k
        self.child_limit = child_limit

    @classmethod
    def from_settings(cls, settings: Settings) -> MergeBackend:
        options, children, owned = _assemble(settings, cls.name, MergeOptions)
        return cls(children, owned=owned, rrf_k=options.rrf_k, child_limit=options.limit)

    async def search(
        self, query: str, *, limit: int, language: str | None = None
    ) -> list[SearchHit]:
        asked = self.child_limit or limit
        results = await asyncio.gather(
            *(c.search(query, limit=asked, language=language) for c in self.children),
            return_exceptions=True,
        )
        rankings = self._rankings(results)
        return [hit for hit, _ in reciprocal_rank_fusion(rankings, self.rrf_k)[:limit]]

    def _rankings(
        self, results: Sequence[list[SearchHit] | BaseException]
    ) -> list[list[SearchHit]]:
        """The children's hit lists; failures are logged, or raised when every child failed.
        An exception other than BackendError is a bug and is raised as it is."""
        rankings: list[list[SearchHit]] = []
        reasons: list[str] = []
        for result in results:
            if isinstance(result, BackendError):
                reasons.append(str(result))
            elif isinstance(result, BaseException):
                raise result
            else:
                rankings.append(result)
        if not rankings and reasons:
            raise BackendError(self.name, _every_failed(reasons))
        if reasons:
            log.warning("%s: merging without failed backends: %s", self.name, "; ".join(reasons))
        return rankings


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[SearchHit]], k: int = 60
) -> list[tuple[SearchHit, float]]:
    """Hits of several rankings fused: a document's score is the sum over rankings of
    1/(k + rank), rank counted from 1. Documents are recognised by `normalize_url`; each
    keeps the hit (title, snippet, URL) of the ranking that placed it highest (the earlier
    ranking on a tie), and a ranking listing a document twice counts its first place only.
    Equal scores keep the order in which the documents were first seen."""
    scores: dict[str, float] = {}
    best: dict[str, tuple[int, SearchHit]] = {}
    for hits in rankings:
        seen: set[str] = set()
        for rank, hit in enumerate(hits, start=1):
            key = normalize_url(hit.url)
            if key in seen:
                continue
            seen.add(key)
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
            if key not in best or rank < best[key][0]:
                best[key] = (rank, hit)
    order = sorted(scores, key=lambda key: -scores[key])
    return [(best[key][1], scores[key]) for key in order]
