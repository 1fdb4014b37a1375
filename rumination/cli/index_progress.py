"""Progress of `rumination index` on stderr: per file for folders, rate and ETA for
collections."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Self

import typer

if TYPE_CHECKING:  # the framework is imported inside each command: `--help` stays fast
    from rumination.search_backends.corpus import FileEvent
    from rumination.search_backends.importers.records import ImportProgress

PLAIN_LINE_EVERY_S = 10.0


class _StderrBar:
    """A rich progress bar on stderr when it is a terminal (`bar` is None otherwise): the
    `label`, the bar, a count of files when `counted`, and the task's description."""

    def __init__(self, force_terminal: bool | None, label: str, counted: bool,
                 total: float | None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.console = Console(stderr=True, highlight=False, force_terminal=force_terminal)
        columns = [TextColumn(label), BarColumn(), *([MofNCompleteColumn()] if counted else []),
                   TextColumn("{task.description}", markup=False, style="dim")]  # names raw
        self.bar = Progress(*columns, console=self.console, transient=True,
                            ) if self.console.is_terminal else None
        self.task = self.bar.add_task("", total=total) if self.bar else None

    def __enter__(self) -> Self:
        if self.bar:
            self.bar.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.bar:
            self.bar.stop()


class _IndexProgress(_StderrBar):
    """Index progress on stderr. On a terminal: a bar, with updated, removed and skipped
    files printed above it. Otherwise one plain line per added, updated, removed or skipped
    file (unchanged files are not mentioned)."""

    def __init__(self, force_terminal: bool | None = None) -> None:
        super().__init__(force_terminal, "indexing", counted=True, total=None)

    def __call__(self, event: FileEvent) -> None:
        if self.bar is None or self.task is None:
            if event.action != "unchanged":
                typer.echo(event.describe(), err=True)
            return
        self.bar.update(self.task, completed=event.position, total=event.total,
                        description=event.path.name)
        if event.action not in ("unchanged", "added"):
            self.console.print(event.describe(), markup=False)


class ImportProgressDisplay(_StderrBar):
    """Import progress on stderr. On a terminal: a bar over the share of the file read,
    with records, rate and ETA beside it, and skipped records printed above it. Otherwise
    a plain line every PLAIN_LINE_EVERY_S seconds, one per skipped record, and a last one."""

    def __init__(self, force_terminal: bool | None = None) -> None:
        super().__init__(force_terminal, "importing", counted=False, total=1.0)
        self.last_line = time.monotonic()
        self.latest: ImportProgress | None = None

    def __exit__(self, *exc_info: object) -> None:
        super().__exit__(*exc_info)
        if self.bar is None and self.latest is not None:
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
