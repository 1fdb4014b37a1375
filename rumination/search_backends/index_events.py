"""What indexing a folder reports: one event per file, and the run's counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rumination.wording import plural

FileAction = Literal["added", "updated", "unchanged", "removed", "skipped"]


@dataclass(frozen=True)
class FileEvent:
    """What indexing did with one file: `position` of `total` files found in the folder
    (removals come last, at position `total`); `reason` says why a file was skipped."""

    path: Path
    action: FileAction
    passages: int = 0
    reason: str = ""
    position: int = 0
    total: int = 0

    def describe(self) -> str:
        """One line for a progress log: `added: PATH (3 passages)`, `skipped: PATH: reason`."""
        if self.action == "skipped":
            return f"skipped: {self.path}: {self.reason}"
        if self.action in ("added", "updated"):
            plural = "" if self.passages == 1 else "s"
            return f"{self.action}: {self.path} ({self.passages} passage{plural})"
        return f"{self.action}: {self.path}"


@dataclass(frozen=True)
class IndexStats:
    """Files per outcome of one `index_folder` run, and the passages it wrote."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: int = 0
    passages: int = 0
    seconds: float = field(default=0.0, compare=False)
    unsupported: dict[str, int] = field(default_factory=dict, compare=False)  # by suffix

    def summary(self, documents: int, passages: int) -> str:
        """One line for a corpus now holding `documents` documents in `passages` passages."""
        return self.counts_line(documents, passages, f", {self.unsupported_line()}")

    def counts_line(self, documents: int, passages: int, more: str = "") -> str:
        return (
            f"{plural(documents, 'document')} ({self.added} added, {self.updated} updated, "
            f"{self.unchanged} unchanged, {self.removed} removed), {self.skipped} skipped, "
            f"{plural(passages, 'passage')} ({self.passages} written){more}, "
            f"{self.seconds:.1f}s"
        )

    def unsupported_line(self) -> str:
        """`3 files of other types not read (2 .docx, 1 .png)`, or `no files of other types`."""
        total = sum(self.unsupported.values())
        if not total:
            return "no files of other types"
        kinds = ", ".join(f"{n} {suffix}" for suffix, n in
                          sorted(self.unsupported.items(), key=lambda kv: (-kv[1], kv[0])))
        return f"{plural(total, 'file')} of other types not read ({kinds})"
