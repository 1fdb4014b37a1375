"""Render the jinja2 templates shipped in the `prompts` package (StrictUndefined).

Templates named `*.html.j2` are HTML-escaped automatically; the others are plain text."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

import jinja2


class _PackageLoader(jinja2.BaseLoader):
    """Loads `<name>.j2` from a package's resources, so it works from wheels and zips."""

    def __init__(self, package: str) -> None:
        self.package = package

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str | None, Any]:
        resource = files(self.package) / template
        if not resource.is_file():
            raise jinja2.TemplateNotFound(template)
        return resource.read_text(encoding="utf-8"), None, lambda: True


@cache
def environment(package: str = "rumination.prompts") -> jinja2.Environment:
    return jinja2.Environment(
        loader=_PackageLoader(package),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
        keep_trailing_newline=False,
    )


def render(name: str, package: str = "rumination.prompts", **values: Any) -> str:
    """Render `<name>.j2` with `values`; a missing variable is an error, never blank."""
    return environment(package).get_template(f"{name}.j2").render(**values).strip()
