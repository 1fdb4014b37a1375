"""Local corpus benchmark: index generated documents, re-index after one change, query, at
several corpus sizes in one run.

For each size, writes deterministic documents (Markdown, text and HTML; a few long enough to
be split into many passages) into a temporary folder, then prints for `Corpus.index_folder`
(what `rumination index` runs): the first index's time, passages/s and database size; the
time to re-index after one file changed (exactly 1 file must be updated); and p50/p95
latency of `--queries` searches (plain words, phrases, prefixes, and some FTS5 syntax). The
per-passage columns show whether a step grows faster than the corpus.

Sizes are given in passages (`--passages 100000 --passages 1000000`: the number of documents
is estimated from a sample, the passages actually indexed are printed) or in documents
(`--docs`). With neither, 2,000 documents.

    python bench/index.py [--passages N ...] [--docs N ...] [--queries 200] [--seed 7]
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rumination.search_backends.chunking import split_passages
from rumination.search_backends.corpus import Corpus, read_document

SYLLABLES = "ka lo mi ne ru sa ti vo ze pa gre tor lin dus mar fen qua bri sol wen".split()
LONG_SHARE = 0.08  # documents of 8,000 to 40,000 characters


def vocabulary(rng: random.Random, size: int = 3000) -> list[str]:
    words = {"".join(rng.choices(SYLLABLES, k=rng.randint(2, 4))) for _ in range(size * 2)}
    return sorted(words)[:size]


class Writer:
    """Deterministic documents over a vocabulary with Zipf-like word frequencies."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.words = vocabulary(self.rng)
        self.cum_weights = list(itertools.accumulate(1 / r for r in range(1, len(self.words) + 1)))

    def sentence(self) -> str:
        words = self.rng.choices(self.words, cum_weights=self.cum_weights,
                                 k=self.rng.randint(6, 20))
        return " ".join(words).capitalize() + "."

    def paragraph(self) -> str:
        return " ".join(self.sentence() for _ in range(self.rng.randint(2, 7)))

    def document(self, number: int) -> tuple[str, str]:
        """(file name, contents) of document `number`."""
        title = " ".join(self.rng.choices(self.words, k=3)).title()
        long = self.rng.random() < LONG_SHARE
        size = self.rng.randint(8000, 40000) if long else self.rng.randint(300, 3000)
        sections: list[tuple[str, str]] = []
        while sum(len(text) for _, text in sections) < size:
            heading = " ".join(self.rng.choices(self.words, k=2)).capitalize()
            text = "\n\n".join(self.paragraph() for _ in range(self.rng.randint(1, 4)))
            sections.append((heading, text))
        kind = self.rng.random()
        if kind < 0.05:
            body = "".join(f"<h2>{h}</h2><p>{t}</p>" for h, t in sections)
            html = f"<html><head><title>{title}</title></head><body><article>{body}</article>"
            return f"doc{number:05d}.html", html + "</body></html>"
        if kind < 0.15:
            return f"doc{number:05d}.txt", "\n\n".join(t for _, t in sections)
        markdown = "\n\n".join(f"## {h}\n\n{t}" for h, t in sections)
        return f"doc{number:05d}.md", f"# {title}\n\n{markdown}"

    def query(self, text: str) -> str:
        """A query like a model's: words, sometimes a phrase from `text`, a prefix, syntax."""
        kind = self.rng.random()
        if kind < 0.15:
            words = text.split()
            start = self.rng.randrange(max(1, len(words) - 3))
            return '"' + " ".join(words[start : start + 3]).strip(".,#") + '"'
        if kind < 0.3:
            return self.rng.choice(self.words)[:4] + "* " + self.rng.choice(self.words)
        if kind < 0.35:
            return self.rng.choice(['"', "AND (", "NEAR(", "*", "-"]) + self.rng.choice(self.words)
        return " ".join(self.rng.choices(self.words, k=self.rng.randint(2, 5)))


QUERY_TEXTS = 500  # documents kept in memory to draw phrase queries from


@dataclass(frozen=True)
class Measurement:
    docs: int
    passages: int
    index_s: float
    index_cpu_s: float
    db_bytes: int
    reindex_s: float
    updated: int
    latencies_ms: list[float]
    hits: int


def write_folder(folder: Path, docs: int, writer: Writer) -> list[str]:
    """Writes `docs` documents; returns a sample of their texts for phrase queries."""
    sample: list[str] = []
    every = max(1, docs // QUERY_TEXTS)
    for number in range(docs):
        name, text = writer.document(number)
        part = folder / f"part{number % 20:02d}"
        part.mkdir(exist_ok=True)
        (part / name).write_text(text, encoding="utf-8")
        if number % every == 0:
            sample.append(text)
    return sample


def passages_per_document(seed: int, sample: int = 400) -> float:
    """Mean passages per generated document, from `sample` documents (their own Writer)."""
    writer = Writer(seed + 1)
    total = 0
    for number in range(sample):
        name, text = writer.document(number)
        total += len(split_passages(read_document(Path(name), text.encode()).body))
    return total / sample


def measure(docs: int, queries: int, seed: int) -> Measurement:
    writer = Writer(seed)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp, "docs")
        folder.mkdir()
        texts = write_folder(folder, docs, writer)
        db_path = Path(tmp, "corpus.db")
        corpus = Corpus(db_path, create=True)
        try:
            cpu = time.process_time()
            first = corpus.index_folder(folder)
            index_cpu_s = time.process_time() - cpu
            db_bytes = db_path.stat().st_size
            changed = next(folder.glob("part07/*.md"))
            changed.write_text(changed.read_text(encoding="utf-8") + "\n\nOne more line.\n",
                               encoding="utf-8")
            second = corpus.index_folder(folder)
            if second.updated != 1 or second.added or second.removed:
                raise SystemExit("re-indexing after one change did not update exactly one file")
            latencies, hits = [], 0
            for _ in range(queries):
                query = writer.query(writer.rng.choice(texts))
                started = time.perf_counter()
                hits += len(corpus.search(query))
                latencies.append((time.perf_counter() - started) * 1000)
        finally:
            corpus.close()
    return Measurement(docs, first.passages, first.seconds, index_cpu_s, db_bytes, second.seconds,
                       second.updated, latencies, hits)


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def print_row(m: Measurement) -> None:
    p50, p95 = percentile(m.latencies_ms, 0.5), percentile(m.latencies_ms, 0.95)
    print(f"{m.passages:>9} {m.docs:>8} {m.index_s:>8.1f} {m.passages / m.index_s:>10.0f} "
          f"{1e6 * m.index_s / m.passages:>7.1f} {1e6 * m.index_cpu_s / m.passages:>7.1f} "
          f"{m.db_bytes / 2**20:>8.1f} "
          f"{m.db_bytes / m.passages:>7.0f} {m.reindex_s:>8.2f} "
          f"{1e6 * m.reindex_s / m.docs:>7.1f} {p50:>7.2f} {p95:>8.2f} "
          f"{statistics.fmean(m.latencies_ms):>7.2f} {m.hits / len(m.latencies_ms):>5.1f}",
          flush=True)


HEADER = (f"{'passages':>9} {'docs':>8} {'index s':>8} {'passages/s':>10} {'us/pass':>7} "
          f"{'cpu us':>7} "
          f"{'DB MiB':>8} {'B/pass':>7} {'reidx s':>8} {'us/doc':>7} {'p50 ms':>7} "
          f"{'p95 ms':>8} {'mean ms':>7} {'hits':>5}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--passages", type=int, action="append", default=[],
                        help="a corpus size in passages (repeatable)")
    parser.add_argument("--docs", type=int, action="append", default=[],
                        help="a corpus size in documents (repeatable)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    sizes = list(args.docs)
    if args.passages:
        ratio = passages_per_document(args.seed)
        print(f"{ratio:.2f} passages per generated document (from a sample of 400)")
        sizes += [max(1, round(target / ratio)) for target in args.passages]
    print("us/pass: index wall time per passage, cpu us: its CPU time per passage (this process"
          " only: what the machine's other work cannot inflate); reidx: re-index after one file"
          " changed (1 file updated each time); us/doc: its time per document; hits: per query")
    print(HEADER, flush=True)
    for docs in sorted(sizes or [2000]):
        print_row(measure(docs, args.queries, args.seed))


if __name__ == "__main__":
    main()
