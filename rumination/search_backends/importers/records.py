"""Importing a collection's records into a corpus: incremental, resumable, with progress.

A record is one document of a collection (a JSONL line, an article of a Wikipedia dump). It
is stored under the key `<source URI>#<record id>`: importing the same file again skips the
records whose title, text and URL are unchanged (their SHA-256), replaces the changed ones
and, once the whole file has been read, removes the records it no longer holds. Work is
committed every `batch` records, together with how far the import got: an interrupted
import resumes after the last committed record without looking at the ones before it.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from rumination.reading.documents import ParsedDocument
from rumination.search_backends.chunking import split_passages
from rumination.search_backends.engines.protocol import CorpusEngine
from rumination.search_backends.importers.converting import (
    conversion_workers,
    converted_ahead,
)
from rumination.search_backends.index_events import IndexStats

PROGRESS_EVERY_S = 1.0


@dataclass(frozen=True)
class Record:
    """One document of a collection; `url` None gives the source's own (`Source.url_for`).
    `to_plain`, when given, turns `text` (wikitext, say) into what is indexed: it runs only
    for a record that is new or changed, since the unchanged check hashes `text` as it is."""

    doc_id: str
    title: str
    text: str
    url: str | None = None
    to_plain: Callable[[str], str] | None = None


@dataclass(frozen=True)
class Unusable:
    """A line or page of the collection that holds no record, and why."""

    where: str
    reason: str


class Source(Protocol):
    """A collection file being read."""

    key_prefix: str  # "<file URI>#"
    name: str

    def records(self) -> Iterator[Record | Unusable]: ...

    def fraction_read(self) -> float | None: ...

    def url_for(self, doc_id: str) -> str: ...


@dataclass(frozen=True)
class ImportProgress:
    """Where a running import is: records read (resumed ones included), the share of the
    file read, records per second in this run, and the seconds it should still take."""

    records: int
    fraction: float | None
    rate: float
    eta_s: float | None
    note: str = ""  # a record skipped, and why

    def describe(self) -> str:
        share = "" if self.fraction is None else f", {self.fraction:.1%} of the file"
        eta = "" if self.eta_s is None else f", about {_duration(self.eta_s)} left"
        return f"imported {self.records:,} records ({self.rate:,.0f}/s{share}{eta})"


@dataclass(frozen=True)
class ImportStats(IndexStats):
    """Records per outcome of one import (`unsupported` stays empty)."""

    resumed_after: int = 0  # records an interrupted import had committed

    def summary(self, documents: int, passages: int) -> str:
        resumed = f", resumed after {self.resumed_after:,} records" if self.resumed_after else ""
        return self.counts_line(documents, passages, resumed)


def import_records(
    corpus: CorpusEngine, source: Source,
    on_progress: Callable[[ImportProgress], None] | None = None,
    batch: int | None = None, workers: int | None = None,
) -> ImportStats:
    """Import every record of `source` into `corpus` (see the module's docstring), texts
    that need converting converted by `workers` processes (`converting`; default: one per
    CPU)."""
    started = time.perf_counter()
    report = on_progress or (lambda progress: None)
    state_key = f"import:{source.key_prefix}"
    stamp, resume_after = _state(corpus.meta(state_key))
    batch = batch or corpus.records_per_commit
    counts: Counter[str] = Counter()
    now = datetime.now(UTC).isoformat()
    position, last_report = 0, started
    first_fraction: list[float] = []  # the share already read when this run's work began

    def conversion(at: int, item: Record | Unusable) -> tuple[Callable[[str], str], str] | None:
        """A new or changed record's converter and text, past where a resumed import starts."""
        if (isinstance(item, Record) and item.to_plain is not None and at > resume_after
                and not _unchanged(corpus, source, item)):
            return item.to_plain, item.text
        return None

    records = converted_ahead(source.records(), conversion,
                              conversion_workers() if workers is None else workers)
    with closing(records):
        while True:
            with corpus.batch():
                for item, plain in records:
                    position += 1
                    if position > resume_after:
                        if not first_fraction:
                            first_fraction.append(source.fraction_read() or 0.0)
                        note = _import_one(corpus, source, item, plain, stamp, now, counts)
                        if note:
                            report(_progress(source, position, counts, started, first_fraction,
                                             note))
                    if position % batch == 0:
                        corpus.set_meta(state_key, f"{stamp} {position}")
                        break
                    if time.perf_counter() - last_report >= PROGRESS_EVERY_S:
                        last_report = time.perf_counter()
                        report(_progress(source, position, counts, started, first_fraction))
                else:
                    counts["removed"] = corpus.remove_stale(source.key_prefix, stamp)
                    corpus.set_meta(state_key, None)
                    break
    report(_progress(source, position, counts, started, first_fraction))
    return ImportStats(
        added=counts["added"], updated=counts["updated"], unchanged=counts["unchanged"],
        removed=counts["removed"], skipped=counts["skipped"], passages=counts["passages"],
        resumed_after=resume_after, seconds=time.perf_counter() - started,
    )


def _import_one(
    corpus: CorpusEngine, source: Source, item: Record | Unusable, plain: Future[str] | None,
    stamp: str, now: str, counts: Counter[str],
) -> str:
    """Imports one record (its text made plain already when `plain` is given); a note when
    it was skipped."""
    if isinstance(item, Unusable):
        counts["skipped"] += 1
        return f"skipped: {item.where}: {item.reason}"
    key, url, digest = _identity(source, item)
    old = corpus.known(key)
    if old is not None and old[0] == digest:
        corpus.restamp(key, stamp)
        counts["unchanged"] += 1
        return ""
    holder = corpus.url_holder(url)
    if plain is not None:
        body = plain.result()
    else:
        body = item.to_plain(item.text) if item.to_plain else item.text
    chunks = split_passages(body)
    if (holder is not None and holder != key) or not chunks:
        counts["skipped"] += 1
        reason = f"its URL {url} is already taken" if chunks else "no text"
        return f"skipped: {source.name} record {item.doc_id}: {reason}"
    doc = ParsedDocument(title=item.title or item.doc_id, url=url, body=body)
    corpus.store(key, doc, chunks, digest=digest, stamp=stamp, doc_id=item.doc_id, now=now)
    counts["updated" if old else "added"] += 1
    counts["passages"] += len(chunks)
    return ""


def _identity(source: Source, record: Record) -> tuple[str, str, str]:
    """A record's key in the corpus, its URL and the digest of what it holds."""
    url = record.url or source.url_for(record.doc_id)
    digest = hashlib.sha256("\0".join((record.title, record.text, url)).encode()).hexdigest()
    return source.key_prefix + record.doc_id, url, digest


def _unchanged(corpus: CorpusEngine, source: Source, record: Record) -> bool:
    key, _, digest = _identity(source, record)
    known = corpus.known(key)
    return known is not None and known[0] == digest


def _state(value: str | None) -> tuple[str, int]:
    """(run stamp, records committed) of an interrupted import, or a new stamp and 0."""
    if value:
        stamp, _, done = value.partition(" ")
        if done.isdigit():
            return stamp, int(done)
    return uuid.uuid4().hex, 0


def _progress(
    source: Source, position: int, counts: Counter[str], started: float,
    first_fraction: list[float], note: str = "",
) -> ImportProgress:
    """The ETA assumes the rest of the file goes as fast as this run's share of it did."""
    elapsed = max(time.perf_counter() - started, 1e-9)
    done = sum(counts[k] for k in ("added", "updated", "unchanged", "skipped"))
    fraction = source.fraction_read()
    gained = fraction - first_fraction[0] if fraction is not None and first_fraction else 0.0
    eta = elapsed * (1 - fraction) / gained if fraction is not None and gained > 0 else None
    return ImportProgress(position, fraction, done / elapsed, eta, note)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
