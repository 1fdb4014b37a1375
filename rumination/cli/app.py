"""The Typer application every command module registers on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from rumination import __version__

if TYPE_CHECKING:  # the framework is imported inside each command: `--help` stays fast
    pass



# rich_markup_mode=None: plain help, so `[pdf]` in a help text stays as written and rich is
# not imported for --help
app = typer.Typer(
    help="Deep research with GLM-Z1-Rumination: a tool loop, search backends, cited reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
T = TypeVar("T")


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"rumination {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_show_version, is_eager=True,
                     help="print the version and exit"),
    ] = None,
) -> None:
    """Deep research with GLM-Z1-Rumination: a tool loop, search backends, cited reports."""
