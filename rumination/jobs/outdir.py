"""Where batch outputs go: a local folder or any fsspec URL (s3://, gs://, az://, memory://...).

    out = OutDir.open("s3://bucket/reports")   # or "reports/", "file:///srv/reports"
    out.write_text("q1.md", text)              # whole-object: never half a report visible
    out.read_text("batch-state.json")          # None when absent

Local folders (plain paths and file:// URLs) are written through a temporary file and a
rename. Object stores are written with one PUT, which they publish whole; any other fsspec
filesystem gets a temporary object and a move. Credentials come from the environment (the
driver's usual variables, or FSSPEC_<PROTOCOL>_<OPTION>); a URL carrying a password is
refused so that no secret is ever written into batch state, summaries or the run store.
"""

from __future__ import annotations

import posixpath
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rumination.errors import UsageError
from rumination.jobs.output import check_writable_folder, write_atomic

# Filesystems that publish an object only once its upload is complete.
_WHOLE_OBJECT_PROTOCOLS = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "memory"}


def is_url(target: str) -> bool:
    return "://" in target


class OutDir(ABC):
    """A folder of named text files; `location(name)` says where one is, for people."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/") if is_url(target) else target

    @classmethod
    def open(cls, target: str | Path) -> OutDir:
        text = str(target)
        if not is_url(text):
            return LocalDir(Path(text))
        parts = urlsplit(text)
        if parts.password:
            raise UsageError(
                f"--out-dir {parts.scheme}://…: put credentials in the environment, not the URL"
            )
        if parts.scheme == "file":
            return LocalDir(Path(parts.path))
        return RemoteDir(text)

    @abstractmethod
    def child(self, name: str) -> OutDir: ...

    @abstractmethod
    def location(self, name: str) -> str: ...

    @abstractmethod
    def exists(self, name: str) -> bool: ...

    @abstractmethod
    def read_text(self, name: str) -> str | None: ...

    def write_text(self, name: str, text: str) -> None:
        self.write_bytes(name, text.encode("utf-8"))

    @abstractmethod
    def write_bytes(self, name: str, data: bytes) -> None: ...

    @property
    def identity(self) -> str:
        """The same string for the same folder, from any machine or working directory."""
        return self.target

    def check_writable(self, what: str = "--out-dir") -> None:
        """UsageError now if reports could not be written here later (local folders; a
        remote store answers for itself at the first write)."""
        return None

    def __str__(self) -> str:
        return self.target


class LocalDir(OutDir):
    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self.path = path

    @property
    def identity(self) -> str:
        return str(self.path.resolve())

    def check_writable(self, what: str = "--out-dir") -> None:
        check_writable_folder(self.path, what)

    def child(self, name: str) -> OutDir:
        return LocalDir(self.path / name)

    def location(self, name: str) -> str:
        return str(self.path / name)

    def exists(self, name: str) -> bool:
        return (self.path / name).exists()

    def read_text(self, name: str) -> str | None:
        path = self.path / name
        return path.read_text(encoding="utf-8") if path.exists() else None

    def write_bytes(self, name: str, data: bytes) -> None:
        write_atomic(self.path / name, data)


class RemoteDir(OutDir):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        try:
            import fsspec

            self.fs: Any
            self.fs, self.root = fsspec.core.url_to_fs(self.target)
        except ImportError as exc:  # the protocol's driver (s3fs, gcsfs, adlfs) is missing
            raise UsageError(f"--out-dir {url}: {exc}") from None
        except ValueError as exc:  # "Protocol not known"
            raise UsageError(f"--out-dir {url}: {exc}") from None
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        self.whole_object = bool(_WHOLE_OBJECT_PROTOCOLS.intersection(protocols))

    def child(self, name: str) -> OutDir:
        return RemoteDir(f"{self.target}/{name}")

    def _path(self, name: str) -> str:
        return posixpath.join(self.root, name)

    def location(self, name: str) -> str:
        return f"{self.target}/{name}"

    def exists(self, name: str) -> bool:
        return bool(self.fs.exists(self._path(name)))

    def read_text(self, name: str) -> str | None:
        path = self._path(name)
        if not self.fs.exists(path):
            return None
        return bytes(self.fs.cat_file(path)).decode("utf-8")

    def write_bytes(self, name: str, data: bytes) -> None:
        path = self._path(name)
        if self.whole_object:
            self.fs.pipe_file(path, data)
            return
        self.fs.makedirs(self.root, exist_ok=True)
        temporary = self._path(f".{name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            self.fs.pipe_file(temporary, data)
            self.fs.mv(temporary, path)
        except BaseException:
            if self.fs.exists(temporary):
                self.fs.rm(temporary)
            raise
