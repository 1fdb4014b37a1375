"""Local corpus benchmark: index generated documents, re-index after one change, query.

Writes `--docs` deterministic documents (Markdown, text and HTML; a few long enough to be
split into many passages) into a temporary folder, then prints for `Corpus.index_folder`
(what `rumination index` runs): files/s and passages of the first index; the time to
re-index after one file changed (exactly 1 file must be updated); and p50/p95 latency of
`--queries` searches (plain words, phrases, prefixes, and some FTS5 syntax).

    python bench/index.py [--docs 2000] [--queries 200] [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from rumination.search_backends.corpus import Corpus, IndexStats

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
        self.weights = [1 / rank for rank in range(1, len(self.words) + 1)]

    def sentence(self) -> str:
        words = self.rng.choices(self.words, self.weights, k=self.rng.randint(6, 20))
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


def write_folder(folder: Path, docs: int, writer: Writer) -> list[str]:
    texts = []
    for number in range(docs):
        name, text = writer.document(number)
        (folder / f"part{number % 20:02d}").mkdir(exist_ok=True)
        (folder / f"part{number % 20:02d}" / name).write_text(text, encoding="utf-8")
        texts.append(text)
    return texts


def row(step: str, stats: IndexStats, files: int) -> str:
    changed = stats.added + stats.updated
    return (f"{step:>18} {files:>6} {changed:>8} {stats.passages:>9} {stats.seconds:>8.2f} "
            f"{files / stats.seconds:>9.0f}")


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    writer = Writer(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp, "docs")
        folder.mkdir()
        texts = write_folder(folder, args.docs, writer)
        corpus = Corpus(Path(tmp, "corpus.db"), create=True)
        try:
            first = corpus.index_folder(folder)
            changed = next(folder.glob("part07/*.md"))
            changed.write_text(changed.read_text(encoding="utf-8") + "\n\nOne more line.\n",
                               encoding="utf-8")
            second = corpus.index_folder(folder)
            latencies, hits = [], 0
            for _ in range(args.queries):
                query = writer.query(writer.rng.choice(texts))
                started = time.perf_counter()
                hits += len(corpus.search(query))
                latencies.append((time.perf_counter() - started) * 1000)
            long_docs = corpus._db.execute(
                "SELECT count(*) FROM (SELECT document_id FROM passages GROUP BY document_id"
                " HAVING count(*) > 3)"
            ).fetchone()[0]
        finally:
            corpus.close()
    print(f"{'step':>18} {'files':>6} {'indexed':>8} {'passages':>9} {'seconds':>8} "
          f"{'files/s':>9}")
    print(row("first index", first, args.docs))
    print(row("one file changed", second, args.docs))
    print(f"{first.passages} passages of {args.docs} documents ({long_docs} with more than 3); "
          f"updated after the change: {second.updated} file (expected 1)")
    print(f"{args.queries} queries: p50 {percentile(latencies, 0.5):.2f} ms, "
          f"p95 {percentile(latencies, 0.95):.2f} ms, mean "
          f"{statistics.fmean(latencies):.2f} ms, {hits / args.queries:.1f} hits per query")
    if second.updated != 1 or second.added or second.removed:
        raise SystemExit("re-indexing after one change did not update exactly one file")


if __name__ == "__main__":
    main()
