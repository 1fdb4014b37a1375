"""Layered settings: defaults -> config file -> RUMINATION_* environment -> explicit arguments.

The config file is TOML, found at $RUMINATION_CONFIG or ~/.config/rumination/config.toml.
Every field can be set in the environment as RUMINATION_<FIELD> (upper case); list fields
take comma-separated values there.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from rumination import defaults
from rumination.errors import ConfigError
from rumination.models import Mode, ReportFormat, Wire
from rumination.urls import redacted

ENV_PREFIX = "RUMINATION_"


CONFIG_VARIABLE = f"{ENV_PREFIX}CONFIG"


def default_config_path() -> Path:
    return _config_source(None)[0]


def _config_source(given: Path | None) -> tuple[Path, str | None]:
    """The config file to read and what named it: the argument, $RUMINATION_CONFIG, or None
    for the default place (read only if it exists; a file named explicitly must exist)."""
    if given is not None:
        return given, "config_file"
    explicit = os.environ.get(CONFIG_VARIABLE)
    if explicit:
        return Path(explicit), CONFIG_VARIABLE
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "rumination" / "config.toml", None


class Settings(BaseModel):
    """Everything a research run can be told. Defaults follow the model card."""

    model_config = {"extra": "forbid", "validate_assignment": True}

    # LLM server (vLLM's OpenAI-compatible API). Several endpoints: a list, or comma-separated
    # in a string; stored comma-separated, read them as `llm_urls`.
    llm_url: str = Field(
        defaults.LLM_URL,
        description="base URL of the LLM server's OpenAI-compatible API (ending in /v1); "
        "several, comma-separated: runs spread over them, each run staying on one",
    )
    endpoint_cooldown_s: float = Field(
        30.0, ge=0, description="seconds a failed endpoint rests before it is tried again"
    )
    model: str = Field(
        defaults.MODEL, description="model name sent with every request; the server must serve it"
    )
    api_key: str | None = Field(
        None, description="bearer token for the LLM server (and the llm judge's); masked "
        "wherever settings are recorded"
    )
    temperature: float = Field(0.95, ge=0.0, le=2.0, description="sampling temperature")
    top_p: float = Field(0.7, gt=0.0, le=1.0, description="nucleus sampling: top_p")
    max_tokens: int = Field(16384, gt=0, description="new tokens per turn")
    answer_max_tokens: int = Field(16384, gt=0, description="new tokens for the final answer")
    request_timeout_s: float = Field(
        600.0, gt=0, description="longest silence of the LLM server while sending or receiving"
    )
    connect_timeout_s: float = Field(10.0, gt=0, description="to connect to the LLM server")
    retries: int = Field(
        4, ge=0, description="further tries of an LLM request after a connection error, 429 or "
        "5xx (backing off, honouring Retry-After); other 4xx answers are not retried"
    )
    stream: bool = Field(
        True, description="stream answers as server-sent events; off: one JSON answer per request"
    )
    wire: Wire = Field(
        "auto", description="how requests reach the model: chat (/v1/chat/completions, the "
        "server renders the chat template), completions (/v1/completions with the model's "
        "template rendered by rumination), auto (chat where the server takes the observation "
        "role and renders the model's template, else completions)"
    )
    slot_affinity: bool = Field(
        False, description="llama-server with --parallel slots: pin each run to one slot "
        "(id_slot); off, llama-server picks the slot whose cache matches the prompt best, "
        "which measured better (docs/benchmarks.md)"
    )
    context_window: int | None = Field(
        None, gt=0, description="tokens; default: the server's max_model_len, else 32768"
    )

    # Research loop
    mode: Mode = Field(
        defaults.MODE, description="rumination: the model calls search / click / open / finish; "
        "write: the framework searches, then one writing call (for chat models)"
    )
    max_turns: int = Field(
        defaults.MAX_TURNS, gt=0, description="model turns before the final answer is asked for"
    )
    max_repeated_calls: int = Field(
        3, gt=0, description="calls the run already made (answered from its memory, not run "
        "again), in a row, before research ends (stopped_by no_progress)"
    )
    max_protocol_errors: int = Field(
        3, gt=0, description="turns in a row without a usable tool call (empty, unparseable, "
        "cut for repeating itself or at the token cap) before research ends "
        "(stopped_by protocol_errors)"
    )
    tell_date: bool = Field(
        True, description="start the question with today's date (the model's fixed prompt "
        "says the year is 2025)"
    )
    max_wall_time_s: float = Field(
        7200.0, gt=0, description="research time (checked before each turn) before the final "
        "answer is asked for"
    )

    max_total_tokens: int | None = Field(
        None, gt=0, description="prompt + completion tokens of the research turns (checked "
        "before each turn) before the final answer is asked for; the answer's own request "
        "comes on top; none: no limit"
    )
    max_cost: float | None = Field(
        None, gt=0, description="cost of the research turns, by the price_per_1k_* settings "
        "(checked before each turn), before the final answer is asked for; none: no limit"
    )
    price_per_1k_prompt_tokens: float | None = Field(
        None, ge=0, description="price of 1000 prompt tokens, in any currency: reports and "
        "summaries then show the cost"
    )
    price_per_1k_completion_tokens: float | None = Field(
        None, ge=0, description="price of 1000 completion tokens, in the same currency"
    )

    # Search and reading
    backend: str = Field(
        defaults.BACKEND, description="search backend by name (`rumination backends` lists them)"
    )
    backends: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="options per backend: [backends.NAME] tables in the config file; "
        "RUMINATION_<NAME>_<OPTION> in the environment (see rumination.agent.backends)",
    )
    corpus: str | None = Field(
        None, description="the local backend's corpus, a SQLite file or a tantivy folder "
        "(`rumination index` builds one); default: the bundled demo corpus"
    )
    search_limit: int = Field(10, gt=0, le=50, description="results asked for per search")
    search_language: str | None = Field(
        None, description="language code passed to backends that support one (e.g. de, ja)"
    )
    observation_style: Literal["model", "card"] = Field(
        "model",
        description="search results as the model writes them, 【id†title†url】 then the snippet "
        "(model), or as the model card's mock pipeline does, 【id†title†url\\nsnippet】 (card)",
    )
    page_window_chars: int = Field(12000, ge=500, description="page characters per click")
    fetch_timeout_s: float = Field(20.0, gt=0, description="whole fetch, redirects included")
    fetch_connect_timeout_s: float = Field(
        10.0, gt=0, description="to connect to a page's server (at most fetch_timeout_s)"
    )
    fetch_read_timeout_s: float = Field(15.0, gt=0, description="longest wait between reads")
    fetch_max_redirects: int = Field(
        5, ge=0, le=30, description="redirects followed per fetch, each target checked anew"
    )
    fetch_max_bytes: int = Field(
        5_000_000, gt=0, description="body cap, as sent and once decompressed"
    )
    fetch_allow_hosts: list[str] = Field(
        default_factory=list,
        description="host names, IP addresses or networks (10.0.0.0/8) that may be fetched "
        "although they are private: intranet deployments",
    )
    prefetch: int = Field(
        3, ge=0, le=20, description="top search hits fetched while the model thinks (0: off)"
    )
    fetch_per_host: int = Field(4, ge=1, le=64, description="concurrent fetches per host")
    browser: Literal["auto", "always", "never"] = Field(
        "auto", description="render pages in headless Chromium (extra browser): auto renders an "
        "HTML page when the plain fetch looks like a script shell, always renders every HTML "
        "page, never renders none; auto without Playwright or a browser renders none"
    )
    browser_executable: str | None = Field(
        None, description="the Chromium to run; default: chromium, chromium-browser or "
        "google-chrome on PATH, else Playwright's own browser if installed"
    )
    browser_timeout_s: float = Field(
        15.0, gt=0, description="hard cap on rendering one page; the DOM as it stands then is read"
    )
    browser_settle_s: float = Field(
        1.0, gt=0, description="a rendered page is read once the network has been idle for "
        "500 ms or its text has not changed for this long"
    )
    browser_max_bytes: int = Field(
        10_000_000, gt=0, description="bytes one rendered page may load, its resources included"
    )
    browser_pages: int = Field(2, ge=1, le=16, description="pages rendering at once")
    http_cache: bool = Field(False, description="keep fetched pages on disk across runs")
    http_cache_path: str | None = Field(
        None, description="default: $XDG_CACHE_HOME/rumination/http-cache.db"
    )
    http_cache_max_age_s: float = Field(
        86400.0, gt=0, description="longest a cached page is reused, whatever its headers say"
    )
    http_cache_max_mb: float = Field(512.0, gt=0, description="oldest pages dropped past this")
    user_agent: str = Field(
        "rumination/0.1 (+deep-research harness)",
        description="User-Agent of page fetches and remote search backends",
    )

    # Write mode: planned searches, fetched pages, one writing call
    write_max_sources: int = Field(8, gt=0, le=50, description="pages handed to the writer")
    write_source_chars: int = Field(6000, ge=200, description="characters kept per source")

    # Run store (every turn committed; runs resumable)
    keep_runs: bool = Field(
        True, description="record every run (resumable, `runs` commands, judge cache); "
        "off: nothing is stored"
    )
    run_store: str | None = Field(None, description="default: $XDG_DATA_HOME/rumination/runs.db")
    store_url: str | None = Field(
        None, description="sqlite:///PATH or postgresql://USER@HOST/DB; wins over run_store"
    )
    job_lease_s: float = Field(
        30.0, gt=0, description="a batch job whose driver is silent this long is taken over"
    )

    # Support check: does each cited source say what the citing statement claims?
    judge: Literal["lexical", "llm"] = Field(
        "lexical", description="lexical (offline, default) or llm (an OpenAI-compatible model)"
    )
    judge_url: str | None = Field(None, description="the llm judge's base URL; default llm_url")
    judge_model: str | None = Field(None, description="the llm judge's model; default model")
    judge_batch: int = Field(8, ge=1, le=50, description="statements per llm judge request")
    judge_concurrency: int = Field(4, ge=1, le=64, description="llm judge requests at once")
    judge_evidence_chars: int = Field(
        8000, ge=500, description="source text shown to the llm judge per request"
    )
    unsupported_citations: Literal["keep", "flag", "drop"] = Field(
        "flag", description="unsupported citations: keep silently, flag in the report, or drop"
    )

    # HTTP API and web page (`rumination api`)
    api_token: str | None = Field(
        None, description="bearer token every API request must carry; required to listen "
        "beyond loopback"
    )
    api_concurrency: int = Field(2, ge=1, le=256, description="runs researched at once")
    api_max_queued: int = Field(1000, ge=0, description="runs waiting beyond those (then 429)")
    api_max_request_bytes: int = Field(65536, ge=1024, description="largest request body")
    api_events_dir: str | None = Field(
        None, description="each API run's events as JSONL; default: $XDG_DATA_HOME/rumination/"
        "events"
    )

    # Output
    format: ReportFormat = Field(
        defaults.FORMAT, description="report format; an --out file name's extension or "
        "--format wins"
    )
    citation_style: Literal["numbered", "footnotes"] = Field(
        "numbered", description="Markdown reports: [k] with a numbered source list, or "
        "footnotes"
    )
    changes: bool = Field(
        False, description="open a report with what changed since the last run of the same "
        "job (or question): research and batch --changes; schedule sets it unless --no-changes"
    )

    @field_validator("llm_url", mode="before")
    @classmethod
    def _join_urls(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list | tuple):
            urls = [str(u).strip() for u in value if str(u).strip()]
            if not urls:
                raise ValueError("at least one LLM server URL is needed")
            for url in urls:
                check_llm_url(url)
            return ",".join(urls)
        return value

    @field_validator("fetch_allow_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [h.strip() for h in value.split(",") if h.strip()]
        return value

    @model_validator(mode="after")
    def _cost_needs_a_price(self) -> Settings:
        priced = (self.price_per_1k_prompt_tokens, self.price_per_1k_completion_tokens)
        if self.max_cost is not None and all(price is None for price in priced):
            raise ValueError("max_cost needs price_per_1k_prompt_tokens or "
                             "price_per_1k_completion_tokens to count a cost")
        return self

    def public_json(self) -> str:
        """These settings as JSON with every secret (API keys, tokens, passwords) masked:
        what the run store records and `runs show` prints."""
        data = self.model_dump(mode="json")
        for name in SECRET_FIELDS:
            data[name] = _masked(data[name])
        if data["store_url"]:
            data["store_url"] = redacted(data["store_url"])
        data["backends"] = {
            name: {k: _masked(v) if is_secret_name(k) else v for k, v in options.items()}
            for name, options in data["backends"].items()
        }
        return json.dumps(data)

    @property
    def llm_urls(self) -> list[str]:
        """Every configured endpoint, in order (one unless several were given)."""
        return self.llm_url.split(",")

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: Any) -> Settings:
        """Build settings from every layer; `overrides` (API args, CLI flags) win."""
        values: dict[str, Any] = {}
        values.update(_read_config_file(*_config_source(config_file)))
        values.update(_read_environment(cls))
        given = {k: v for k, v in overrides.items() if v is not None}
        given["backends"] = _merged_backends(values.get("backends"), given.get("backends"))
        values.update(given)
        return cls._validated(values)

    @classmethod
    def load_saved(cls, saved_json: str) -> Settings:
        """The settings a run was started with (`public_json`), its masked secrets taken
        from the current config file and environment."""
        saved = json.loads(saved_json)
        for name in SECRET_FIELDS:
            if saved.get(name) == MASK:
                del saved[name]
        if MASK in (saved.get("store_url") or ""):
            del saved["store_url"]
        saved["backends"] = {
            name: {k: v for k, v in options.items() if v != MASK}
            for name, options in saved.get("backends", {}).items()
        }
        return cls.load(**{k: v for k, v in saved.items() if k in cls.model_fields})

    @classmethod
    def load_over(cls, base: Settings, overrides: dict[str, Any]) -> Settings:
        """`base` with `overrides` applied and validated."""
        return cls._validated({**base.model_dump(), **overrides})

    @classmethod
    def _validated(cls, values: dict[str, Any]) -> Settings:
        try:
            return cls(**values)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            message = first["msg"].removeprefix("Value error, ")
            subject = f"setting {where}" if where else "settings"
            raise ConfigError(f"invalid {subject}: {message}") from None


SECRET_FIELDS = ("api_key", "api_token")
def check_llm_url(url: str) -> str:
    """`url` if it is an http(s) URL with a host; else a ValueError that says what to give."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL; give the server's base URL, e.g. "
                         f"{defaults.LLM_URL}")
    return url


_SECRET_WORDS = ("key", "token", "secret", "password")


def is_secret_name(option: str) -> bool:
    return any(word in option.lower() for word in _SECRET_WORDS)


MASK = "***"


def _masked(value: Any) -> Any:
    return None if value is None else MASK


def _merged_backends(*layers: Any) -> dict[str, dict[str, Any]]:
    """Backend option tables merged option by option, later layers winning."""
    merged: dict[str, dict[str, Any]] = {}
    for layer in layers:
        if not isinstance(layer, dict):
            if layer is not None:
                raise ConfigError("invalid setting backends: expected a table of backend tables")
            continue
        for name, options in layer.items():
            if not isinstance(options, dict):
                raise ConfigError(f"invalid setting backends.{name}: expected a table of options")
            merged.setdefault(name, {}).update(options)
    return merged


def _read_config_file(path: Path, named_by: str | None) -> dict[str, Any]:
    if not path.is_file():
        if named_by is None:
            return {}
        problem = "is not a file" if path.exists() else "not found"
        raise ConfigError(f"config file {path} {problem} (named by {named_by})")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    section = data.get("rumination", data)
    if not isinstance(section, dict):
        raise ConfigError(f"config file {path}: [rumination] must be a table")
    return section


def _read_environment(model: type[BaseModel]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in model.model_fields:
        variable = environment_variable(name)
        raw = None if variable is None else os.environ.get(variable)
        if raw is not None:
            values[name] = raw
    return values


def environment_variable(field: str) -> str | None:
    """The variable that sets `field`; None for `backends`, whose options have a variable each
    (RUMINATION_<NAME>_<OPTION>, read by rumination.agent.backends)."""
    return None if field == "backends" else ENV_PREFIX + field.upper()
