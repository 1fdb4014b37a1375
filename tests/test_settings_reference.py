"""docs/settings.md is generated from the Settings model and says how the layers stack."""

from __future__ import annotations

from pathlib import Path

import pytest

from rumination.settings import Settings
from rumination.settings_reference import COMMAND, SECTIONS, cell, settings_reference, type_text

PAGE = Path(__file__).parent.parent / "docs" / "settings.md"


def test_the_committed_settings_page_matches_the_model() -> None:
    assert PAGE.read_text(encoding="utf-8") == settings_reference(), (
        f"docs/settings.md is stale: {COMMAND}")


def test_every_setting_has_a_description_and_a_section() -> None:
    fields = Settings.model_fields
    assert [name for name, field in fields.items() if not field.description] == []
    assert next(iter(fields)) in SECTIONS and set(SECTIONS) <= set(fields)


def test_types_show_choices_and_bounds_and_cells_stay_one_cell() -> None:
    fields = Settings.model_fields
    assert type_text(fields["temperature"]) == "`float`, ≥ 0, ≤ 2"
    assert type_text(fields["unsupported_citations"]) == "`keep`, `flag` or `drop`"
    assert type_text(fields["corpus"]) == "`str`"  # unset by default, not a union to read
    assert cell("a | b, <NAME> and `<NAME>`") == "a \\| b, &lt;NAME> and `<NAME>`"


def test_the_layers_stack_as_the_page_says(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(f"RUMINATION_{name.upper()}", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("RUMINATION_CONFIG", raising=False)
    assert Settings.load().max_turns == Settings().max_turns  # no config file: the defaults
    default_place = tmp_path / "rumination" / "config.toml"
    default_place.parent.mkdir()
    default_place.write_text("max_turns = 7\nprefetch = 1\nsearch_limit = 4\n", encoding="utf-8")
    assert Settings.load().max_turns == 7
    named = tmp_path / "named.toml"
    named.write_text("[rumination]\nmax_turns = 8\nprefetch = 2\nstream = false\n",
                     encoding="utf-8")
    monkeypatch.setenv("RUMINATION_CONFIG", str(named))
    monkeypatch.setenv("RUMINATION_PREFETCH", "5")
    monkeypatch.setenv("RUMINATION_FETCH_ALLOW_HOSTS", "intranet.example, 10.0.0.0/8")
    loaded = Settings.load(max_turns=9, prefetch=None)  # None: not given
    assert (loaded.max_turns, loaded.prefetch, loaded.stream) == (9, 5, False)
    # the named file replaces the default place
    assert loaded.search_limit == Settings().search_limit
    assert loaded.fetch_allow_hosts == ["intranet.example", "10.0.0.0/8"]
    assert Settings().max_turns == Settings.model_fields["max_turns"].default  # reads no layer
