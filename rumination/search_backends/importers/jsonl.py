"""JSONL collections: one document a line, as BEIR and Pyserini lay them out.

A line is a JSON object with an id (`id` or `_id`), a text (`text` or `contents`), and
optionally `title` and `url`; other fields are ignored. A record without a URL is given
`doc://<file name>/<id>`. `.jsonl.gz` and `.jsonl.bz2` files are read as they stream.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from rumination.search_backends.importers.files import FileSource
from rumination.search_backends.importers.records import Record, Unusable

SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.bz2", ".ndjson")


def is_jsonl(path: Path) -> bool:
    return path.name.lower().endswith(SUFFIXES)


class JsonlSource(FileSource):
    """The records of one JSONL file."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, url_label=path.name.split(".", 1)[0])

    def records(self) -> Iterator[Record | Unusable]:
        reader = self.open()
        try:
            for number, line in enumerate(reader.stream, 1):
                if line.strip():
                    yield _record(line, f"{self.name} line {number}")
        finally:
            reader.close()


def _record(line: bytes, where: str) -> Record | Unusable:
    try:
        row = json.loads(line)
    except ValueError as exc:
        return Unusable(where, f"not JSON ({exc})")
    if not isinstance(row, dict):
        return Unusable(where, "not a JSON object")
    doc_id = row.get("_id", row.get("id"))
    text = row.get("text", row.get("contents"))
    if not isinstance(doc_id, (str, int)) or isinstance(doc_id, bool) or str(doc_id) == "":
        return Unusable(where, 'no "id" or "_id"')
    if not isinstance(text, str):
        return Unusable(where, 'no "text" or "contents"')
    title, url = row.get("title"), row.get("url")
    return Record(
        doc_id=str(doc_id), title=" ".join(title.split()) if isinstance(title, str) else "",
        text=text, url=url if isinstance(url, str) and url.strip() else None,
    )
