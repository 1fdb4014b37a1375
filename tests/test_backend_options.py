"""Backend options: config tables, RUMINATION_<NAME>_<OPTION>, --backend-opt; secrets masked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import Field, SecretStr

from rumination.agent.backends import BackendOptions, backend_options, describe_options, env_name
from rumination.cli.common import run_settings
from rumination.errors import ConfigError, UsageError
from rumination.settings import Settings


class DemoOptions(BackendOptions):
    url: str = Field(description="base URL of the service")
    api_key: SecretStr | None = None
    limit: int = 5


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config.toml"
    monkeypatch.setenv("RUMINATION_CONFIG", str(path))
    return path


def test_options_come_from_the_config_table(config_file: Path) -> None:
    config_file.write_text('[backends.demo]\nurl = "https://s.example"\nlimit = 7\n')
    options = backend_options(Settings.load(), "demo", DemoOptions)
    assert (options.url, options.limit, options.api_key) == ("https://s.example", 7, None)


def test_config_table_wins_over_environment_and_arguments_win_over_both(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file.write_text('[backends.demo]\nurl = "https://config.example"\n')
    monkeypatch.setenv("RUMINATION_DEMO_URL", "https://env.example")
    monkeypatch.setenv("RUMINATION_DEMO_API_KEY", "sk-env")
    options = backend_options(Settings.load(), "demo", DemoOptions)
    assert options.url == "https://config.example"
    assert options.api_key is not None and options.api_key.get_secret_value() == "sk-env"
    given = Settings.load(backends={"demo": {"limit": 9}})
    merged = backend_options(given, "demo", DemoOptions)
    assert (merged.url, merged.limit) == ("https://config.example", 9)


def test_a_missing_option_names_the_backend_and_every_place_to_set_it() -> None:
    with pytest.raises(ConfigError) as caught:
        backend_options(Settings(), "demo", DemoOptions)
    message = str(caught.value)
    assert message.startswith("backend demo: option url: Field required")
    assert "[backends.demo]" in message and "RUMINATION_DEMO_URL" in message
    assert "--backend-opt url=" in message


def test_an_unknown_option_is_refused() -> None:
    settings = Settings(backends={"demo": {"url": "https://x.example", "limt": 3}})
    with pytest.raises(ConfigError, match="backend demo: option limt"):
        backend_options(settings, "demo", DemoOptions)


def test_cli_backend_opt_applies_to_the_chosen_backend() -> None:
    settings = run_settings(
        None, None, "demo", None, None, None, None, ["url=https://cli.example", "limit=3"]
    )
    assert settings.backends["demo"] == {"url": "https://cli.example", "limit": "3"}
    assert backend_options(settings, "demo", DemoOptions).limit == 3
    with pytest.raises(UsageError, match="OPTION=VALUE"):
        run_settings(None, None, "demo", None, None, None, None, ["nonsense"])


def test_recorded_settings_mask_secrets_and_resume_takes_them_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(
        api_key="sk-llm",
        backends={"demo": {"url": "https://x.example", "api_key": "sk-search", "token": "t"}},
    )
    recorded = settings.public_json()
    assert "sk-llm" not in recorded and "sk-search" not in recorded
    data = json.loads(recorded)
    masked = {"url": "https://x.example", "api_key": "***", "token": "***"}
    assert data["backends"]["demo"] == masked
    monkeypatch.setenv("RUMINATION_API_KEY", "sk-llm-now")
    monkeypatch.setenv("RUMINATION_DEMO_API_KEY", "sk-search-now")
    restored = Settings.load_saved(recorded)
    assert restored.api_key == "sk-llm-now"
    assert restored.backends["demo"] == {"url": "https://x.example"}
    options = backend_options(restored, "demo", DemoOptions)
    assert options.api_key is not None and options.api_key.get_secret_value() == "sk-search-now"


def test_secret_options_never_show_in_a_repr() -> None:
    options = DemoOptions(url="https://x.example", api_key=SecretStr("sk-hidden"))
    assert "sk-hidden" not in repr(options) and "sk-hidden" not in str(options)


def test_a_malformed_backends_table_is_a_config_error(config_file: Path) -> None:
    config_file.write_text('[backends]\ndemo = "not a table"\n')
    with pytest.raises(ConfigError, match="backends.demo: expected a table"):
        Settings.load()


def test_describe_options_lists_requirement_default_and_variable() -> None:
    lines = describe_options("demo", DemoOptions)
    assert lines[0] == "url (required; RUMINATION_DEMO_URL) - base URL of the service"
    assert lines[2] == "limit (default 5; RUMINATION_DEMO_LIMIT)"
    assert env_name("my-search", "api_key") == "RUMINATION_MY_SEARCH_API_KEY"


def test_a_misconfigured_backend_is_reported_before_the_llm_is_tried() -> None:
    from typer.testing import CliRunner

    from rumination.cli import app

    result = CliRunner().invoke(
        app, ["research", "kelp?", "--backend", "searxng", "--llm-url", "http://127.0.0.1:9/v1"]
    )
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: backend searxng: option url: Field required (set url in [backends.searxng] of "
        "the config file, RUMINATION_SEARXNG_URL, or --backend-opt url=...)"
    ]
