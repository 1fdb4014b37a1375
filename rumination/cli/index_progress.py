"""Progress of `rumination index` on stderr: per file for folders, rate and ETA for
collections."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:  # the framework is imported inside each command: `--help` stays fast
    from rumination.search_backends.corpus import FileEvent
    from rumination.search_backends.importers.records import ImportProgress

PLAIN_LINE_EVERY_S = 10.0


class _IndexProgress:
    """Index progress on stderr. On a terminal: a bar, with updated, removed and skipped
    files printed above it. Otherwise one plain line per added, updated, removed or skipped
    file (unchanged files are not mentioned)."""

    def __init__(self, force_terminal: bool | None = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.console = Console(stderr=True, highlight=False, force_terminal=force_terminal)
        self.bar = Progress(
            TextColumn("indexing"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.description}", markup=False, style="dim"),  # file names raw
            console=self.console, transient=True,
        ) if self.console.is_terminal else None
        self.task = self.bar.add_task("", total=None) if self.bar else None

    def __enter__(self) -> _IndexProgress:
        if self.bar:
            self.bar.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.bar:
            self.bar.stop()

    def __call__(self, event: FileEvent) -> None:
        if self.bar is None or self.task is None:
            if event.action != "unchanged":
                typer.echo(event.describe(), err=True)
            return
        self.bar.update(self.task, completed=event.position, total=event.total,
                        description=event.path.name)
        if event.action not in ("unchanged", "added"):
            self.console.print(event.describe(), markup=False)


class ImportProgressDisplay:
    """Import progress on stderr. On a terminal: a bar over the share of the file read,
    with records, rate and ETA beside it, and skipped records printed above it. Otherwise
    a plain line every PLAIN_LINE_EVERY_S seconds, one per skipped record, and a last one."""

    def __init__(self, force_terminal: bool | None = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn

        self.console = Console(stderr=True, highlight=False, force_terminal=force_terminal)
        self.bar = Progress(
            TextColumn("importing"), BarColumn(),
            TextColumn("{task.description}", markup=False, style="dim"),
            console=self.console, transient=True,
        ) if self.console.is_terminal else None
        self.task = self.bar.add_task("", total=1.0) if self.bar else None
        self.last_line = time.monotonic()
        self.latest: ImportProgress | None = None

    def __enter__(self) -> ImportProgressDisplay:
        if self.bar:
            self.bar.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.bar:
            self.bar.stop()
        elif self.latest is not None:
            typer.echo(self.latest.describe(), err=True)

    def __call__(self, progress: ImportProgress) -> None:
        self.latest = progress
        if self.bar is None or self.task is None:
            if progress.note:
                typer.echo(progress.note, err=True)
            if time.monotonic() - self.last_line >= PLAIN_LINE_EVERY_S:
                self.last_line = time.monotonic()
                typer.echo(progress.describe(), err=True)
            return
        self.bar.update(self.task, completed=progress.fraction or 0.0,
                        description=progress.describe())
        if progress.note:
            self.console.print(progress.note, markup=False)
