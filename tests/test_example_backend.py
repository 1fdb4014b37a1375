"""The example plugin in examples/custom_backend works as a backend, without installing it."""

from __future__ import annotations

import importlib
import tomllib
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from types import ModuleType

import pytest

import rumination.agent.backends
from rumination.agent.backends import (
    ENTRY_POINT_GROUP,
    SearchBackend,
    available_backends,
    create_backend,
)
from rumination.errors import ConfigError
from rumination.settings import Settings

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "examples" / "custom_backend"
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def declared(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, EntryPoint]]:
    """The example's entry points as its pyproject declares them, importable from its folder
    and registered in place of the installed ones."""
    project = tomllib.loads((PACKAGE_DIR / "pyproject.toml").read_text(encoding="utf-8"))
    table = project["project"]["entry-points"][ENTRY_POINT_GROUP]
    points = {name: EntryPoint(name, value, ENTRY_POINT_GROUP) for name, value in table.items()}
    monkeypatch.syspath_prepend(str(PACKAGE_DIR))
    monkeypatch.setattr(rumination.agent.backends, "_entry_points", lambda: points)
    yield points


@pytest.fixture
def example(declared: dict[str, EntryPoint]) -> ModuleType:
    return importlib.import_module("rumination_glossary.backend")


def test_the_pyproject_entry_point_names_an_importable_backend_class(
    declared: dict[str, EntryPoint], example: ModuleType
) -> None:
    assert list(declared) == ["glossary"]
    factory = declared["glossary"].load()
    assert factory is example.GlossaryBackend
    assert factory.requires and callable(factory.from_settings)
    assert issubclass(factory.options, rumination.agent.backends.BackendOptions)
    lines = available_backends()["glossary"]
    assert lines[0] == factory.requires
    assert any(line.startswith("min_words (default 1; RUMINATION_GLOSSARY_MIN_WORDS)")
               for line in lines)


async def test_the_example_backend_searches_and_fetches_through_the_protocol(
    declared: dict[str, EntryPoint],
) -> None:
    backend = create_backend(Settings(backend="glossary"))
    assert isinstance(backend, SearchBackend)
    hits = await backend.search("what is the bivalent point of a heat pump", limit=3)
    assert hits[0].title == "Bivalent point"
    assert hits[0].url == "glossary://bivalent-point"
    assert len(hits) == 3
    page = await backend.fetch(hits[0].url)
    assert page is not None and "second heat source" in page.text
    assert await backend.fetch("https://example.org/") is None
    assert await backend.search("zebra", limit=3) == []
    await backend.aclose()


async def test_the_example_reads_its_options_from_settings(
    declared: dict[str, EntryPoint], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = tmp_path / "terms.json"
    own.write_text('[{"term": "Kelp", "definition": "A large brown seaweed."}]', "utf-8")
    monkeypatch.setenv("RUMINATION_GLOSSARY_MIN_WORDS", "2")
    backend = create_backend(Settings(backend="glossary", backends={"glossary": {"file": own}}))
    assert await backend.search("kelp", limit=5) == []  # one word matched, two required
    hits = await backend.search("brown kelp", limit=5)
    assert [hit.url for hit in hits] == ["glossary://kelp"]


def test_a_bad_glossary_file_is_a_one_line_config_error(
    declared: dict[str, EntryPoint], tmp_path: Path
) -> None:
    settings = Settings(backend="glossary", backends={"glossary": {"file": tmp_path / "no.json"}})
    with pytest.raises(ConfigError, match="backend glossary: cannot read .*no.json"):
        create_backend(settings)
    with pytest.raises(ConfigError, match="backend glossary: option min_words"):
        create_backend(Settings(backend="glossary", backends={"glossary": {"min_words": 0}}))
