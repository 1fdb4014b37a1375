"""The `rumination` command. Thin: every command calls the Python API.

Each module of this folder registers one group of commands on the app (cli/app.py)."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import NoReturn

import typer

from rumination.cli.app import app

# each group registers its commands on the app when imported: this is `rumination --help`'s order
COMMAND_GROUPS = ("research", "jobs", "runs", "tools", "search", "service")
for _group in COMMAND_GROUPS:
    importlib.import_module(f"rumination.cli.{_group}")


def main(argv: list[str] | None = None) -> NoReturn:
    sys.exit(_exit_code(argv))


def _exit_code(argv: list[str] | None) -> int:
    """Run the command. Click's own errors (a missing argument, an unknown option, a value of
    the wrong type) become one `error:` line, exit 2, like every other bad input."""
    errors = _click_exceptions()
    try:
        code = app(args=argv, prog_name="rumination", standalone_mode=False)
    except getattr(errors, "NoArgsIsHelpError", ()) as exc:  # `rumination`, `rumination runs`
        exc.show()
        return int(exc.exit_code)
    except errors.ClickException as exc:
        context = getattr(exc, "ctx", None)
        hint = f" (see '{context.command_path} --help')" if context is not None else ""
        typer.echo(f"error: {' '.join(exc.format_message().split())}{hint}", err=True)
        return int(exc.exit_code)
    except typer.Abort:  # end of input at a prompt
        typer.echo("error: aborted", err=True)
        return 1
    return code if isinstance(code, int) else 0


def _click_exceptions() -> ModuleType:
    """The exceptions of the click that typer runs on: its own copy in newer typer."""
    try:
        return importlib.import_module("typer._click.exceptions")
    except ImportError:
        return importlib.import_module("click.exceptions")


if __name__ == "__main__":
    main()
