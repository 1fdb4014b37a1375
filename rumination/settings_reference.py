"""The settings reference page, generated from the Settings model:
`python -m rumination.settings_reference > docs/settings.md` (the committed page is checked
against the model by tests/test_settings_reference.py)."""

from __future__ import annotations

import json
import re
import sys
import types
import typing
from typing import Any, Literal

from pydantic.fields import FieldInfo

from rumination.settings import Settings, environment_variable

COMMAND = "python -m rumination.settings_reference > docs/settings.md"

# the first setting of each group, in the order Settings declares them
SECTIONS = {
    "llm_url": "LLM server",
    "mode": "Research loop",
    "backend": "Search and reading",
    "write_max_sources": "Write mode",
    "keep_runs": "Run store",
    "judge": "Support check",
    "api_token": "HTTP API and web page",
    "format": "Output",
}

LAYERS = """\
## Where settings come from

Four layers, each overriding the one before it (`Settings.load`):

1. **Defaults**: the Default column below.
2. **Config file** (TOML): the file named by `RUMINATION_CONFIG`, which must then exist (else
   a one-line error, exit 2), or else `$XDG_CONFIG_HOME/rumination/config.toml`
   (`~/.config/rumination/config.toml`) if there is one. Settings are the keys of its
   `[rumination]` table, or of the whole file when it has none; backend options go in a
   `backends.NAME` table (`[backends.searxng]`).
3. **Environment**: `RUMINATION_<NAME>`, named under each setting below. Values are text,
   converted to the setting's type (`true`/`false`, numbers); `llm_url` and
   `fetch_allow_hosts` take comma-separated lists. Backend options have a variable each,
   `RUMINATION_<BACKEND>_<OPTION>` (e.g. `RUMINATION_SEARXNG_URL`), which a config file's
   value for that option overrides.
4. **Command line and Python arguments**: flags such as `--llm-url`, `--model`, `--backend`,
   `--corpus`, `--format`, `--max-turns`, `--mode`, `--store` (`store_url`) and
   `--backend-opt OPTION=VALUE`, or keyword arguments of `research(...)` and
   `Settings.load(...)`. An argument left out (None) keeps the lower layers' value; backend
   options are merged option by option.

`Settings(...)` built directly reads neither file nor environment; `research()` and
`Researcher()` given no settings call `Settings.load()`. A value that does not fit its
setting stops the command with one line, `invalid setting NAME: reason` (exit 2).
"""

_BOUNDS = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}


def type_text(field: FieldInfo) -> str:
    """The type as a reader sets it: choices for a Literal, bounds after the type."""
    annotation = field.annotation
    args = typing.get_args(annotation)
    if isinstance(annotation, types.UnionType) and type(None) in args:  # `X | None`: unset
        annotation = next(a for a in args if a is not type(None))
    if typing.get_origin(annotation) is Literal:
        *others, last = (f"`{choice}`" for choice in typing.get_args(annotation))
        return f"{', '.join(others)} or {last}"
    name = annotation.__name__ if isinstance(annotation, type) else repr(annotation)
    bounds = [f"{sign} {getattr(bound, key):g}" for bound in field.metadata
              for key, sign in _BOUNDS.items() if hasattr(bound, key)]
    return ", ".join([f"`{name.replace('typing.', '')}`", *bounds])


def default_text(field: FieldInfo) -> str:
    value: Any = field.get_default(call_default_factory=True)
    return "unset" if value is None else f"`{json.dumps(value, ensure_ascii=False)}`"


def cell(text: str) -> str:
    """Plain text for a table cell: pipes escaped, `<` kept visible outside code spans."""
    pieces = re.split(r"(`[^`]*`)", text.replace("|", "\\|"))
    return "".join(p if p.startswith("`") else p.replace("<", "&lt;") for p in pieces)


def settings_reference() -> str:
    lines = [
        "# Settings reference", "",
        f"<!-- generated from rumination/settings.py by `{COMMAND}`: edit the model, "
        "not this page -->", "",
        "Every setting of a research run, with its type, default, environment variable and "
        "meaning. Durations are in seconds (`_s`), sizes in characters (`_chars`), bytes "
        "(`_bytes`) or megabytes (`_mb`).", "",
        LAYERS.rstrip(),
    ]
    for name, field in Settings.model_fields.items():
        if name in SECTIONS:
            lines += ["", f"## {SECTIONS[name]}", "",
                      "| Setting | Type | Default | Description |", "|---|---|---|---|"]
        variable = environment_variable(name)
        setting = f"`{name}`" + (f"<br>`{variable}`" if variable else "")
        lines.append(f"| {setting} | {type_text(field)} | {default_text(field)} "
                     f"| {cell(field.description or '')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(settings_reference())
