"""Reading a collection file as it streams (plain, gzip or bzip2), with how much was read;
what every file source shares."""

from __future__ import annotations

import bz2
import gzip
from pathlib import Path
from typing import IO, BinaryIO, cast
from urllib.parse import quote


class CompressedReader:
    """A file opened for reading, decompressed by its suffix (.gz, .bz2); `fraction_read`
    is the share of the file on disk read so far, compressed bytes for a compressed one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = max(path.stat().st_size, 1)
        self._raw: BinaryIO = path.open("rb")
        suffix = path.suffix.lower()
        self.stream: IO[bytes]
        if suffix == ".bz2":
            self.stream = bz2.BZ2File(self._raw)
        elif suffix == ".gz":
            self.stream = cast(IO[bytes], gzip.GzipFile(fileobj=self._raw))
        else:
            self.stream = self._raw

    def fraction_read(self) -> float:
        try:
            return min(self._raw.tell() / self.size, 1.0)
        except ValueError:  # closed
            return 1.0

    def close(self) -> None:
        self.stream.close()
        self._raw.close()


class FileSource:
    """What the importers of one collection file share: the keys of its records (`<file
    URI>#<id>`), the share of the file read, and `doc://<label>/<id>` URLs for records
    that bring none."""

    def __init__(self, path: Path, url_label: str) -> None:
        self.path = path
        self.name = path.name
        self.key_prefix = path.resolve().as_uri() + "#"
        self._url_label = quote(url_label, safe="")
        self._reader: CompressedReader | None = None

    def open(self) -> CompressedReader:
        self._reader = CompressedReader(self.path)
        return self._reader

    def fraction_read(self) -> float | None:
        return self._reader.fraction_read() if self._reader else None

    def url_for(self, doc_id: str) -> str:
        return f"doc://{self._url_label}/{quote(doc_id, safe='')}"
