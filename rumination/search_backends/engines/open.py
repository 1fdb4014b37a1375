"""Opening a local corpus with the engine it was built with.

A corpus names its engine by its form: a SQLite file is the `sqlite` engine's, a folder
holding `catalog.db` and `index/` the `tantivy` engine's (which needs rumination[tantivy]).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from rumination.errors import UsageError
from rumination.search_backends.corpus import Corpus
from rumination.search_backends.engines.protocol import CorpusEngine

EngineName = Literal["sqlite", "tantivy"]
ENGINES: tuple[EngineName, ...] = ("sqlite", "tantivy")
# a new corpus gets this engine unless --engine says otherwise (docs/backends.md says why)
DEFAULT_ENGINE: EngineName = "sqlite"
# from here on a sqlite corpus's searches are several times slower than tantivy's (measured)
TANTIVY_ADVISED_PASSAGES = 100_000


def engine_advice(corpus: CorpusEngine) -> str | None:
    """A hint for a sqlite corpus large enough that the tantivy engine pays off."""
    passages = corpus.passage_count()
    if corpus.engine != "sqlite" or passages < TANTIVY_ADVISED_PASSAGES:
        return None
    return (f"hint: {passages:,} passages: a corpus this size searches several times faster "
            "with --engine tantivy (index the source again into a new --db; see "
            "docs/backends.md)")


def engine_of(path: Path) -> EngineName | None:
    """The engine of the corpus at `path`, or None when nothing is there yet."""
    if path.is_dir():
        return "tantivy"
    return "sqlite" if path.exists() else None


def open_corpus(
    path: str | Path, *, engine: str | None = None, create: bool = False
) -> CorpusEngine:
    """The corpus at `path`, opened with its engine; with `create`, a new one (of `engine`,
    else DEFAULT_ENGINE) when nothing is there. An `engine` that differs from an existing
    corpus's is a usage error."""
    path = Path(path)
    if engine is not None and engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    found = engine_of(path)
    if found is not None and engine is not None and found != engine:
        raise UsageError(f"{path} is a {found} corpus; --engine {engine} cannot open it "
                         f"(index into another path, or leave --engine out)")
    chosen = found or engine or DEFAULT_ENGINE
    if chosen == "sqlite":
        return Corpus(path, create=create)
    return _tantivy_corpus(path, create)


def _tantivy_corpus(path: Path, create: bool) -> CorpusEngine:
    try:
        from rumination.search_backends.engines.tantivy_corpus import TantivyCorpus
    except ImportError:
        raise UsageError("the tantivy engine needs the tantivy package: "
                         "pip install 'rumination[tantivy]'") from None
    return TantivyCorpus(path, create=create)
