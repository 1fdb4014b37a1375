"""Which importer reads a collection file, by its name."""

from __future__ import annotations

from pathlib import Path

from rumination.errors import UsageError
from rumination.search_backends.importers import jsonl, wikipedia_dump
from rumination.search_backends.importers.records import Source

KINDS = "a folder, a JSONL collection (.jsonl, .jsonl.gz, .jsonl.bz2) or a Wikipedia XML dump " \
        "(.xml, .xml.bz2)"


def source_for(path: Path) -> Source:
    """The collection in the file `path`; a usage error for a file of no known kind."""
    if not path.is_file():
        raise UsageError(f"not found: {path} (index reads {KINDS})")
    if jsonl.is_jsonl(path):
        return jsonl.JsonlSource(path)
    if wikipedia_dump.is_dump(path):
        return wikipedia_dump.WikipediaDumpSource(path)
    raise UsageError(f"{path}: not a collection rumination reads; index reads {KINDS}")
