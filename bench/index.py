"""Local corpus benchmark: both engines (sqlite, tantivy) side by side on the same generated
corpus, at several sizes in one run.

Two sources:
- `--source folder` (the default): deterministic documents (Markdown, text and HTML; a few
  long enough to be split into many passages) written as files, indexed with
  `index_folder` (what `rumination index FOLDER` runs), then re-indexed after one file
  changed (exactly 1 file must be updated);
- `--source jsonl`: one JSONL collection of passage-sized records (60-160 words each, one
  passage per record), imported with `import_records` (what `rumination index FILE.jsonl`
  runs); the scale figures.
Words come from a Zipfian vocabulary (`--vocabulary`, 100,000 words by default; the word of
rank r is drawn with weight 1/r). Queries are drawn from the same distribution: `--queries`
of 2-5 words (`--query-mix` adds phrases, prefixes and FTS5 syntax), searched at k = 10.

Each (size, engine) runs in a process of its own, so its peak RSS is its own; a run that
passes `--budget-s` is stopped and reported as such. Printed per row: passages, index time,
passages/s, CPU per passage, index size on disk, peak RSS (the kernel's high-water mark,
index files mapped by Tantivy included) and peak anonymous memory (sampled), re-index time
(folder source), search p50/p95/mean and hits per query.

With `--keep DIR` the data and the corpora are written under DIR/<source>-<size>-seed<seed>
and kept: a later run with the same settings reuses the data (the corpora are built again),
and `bench/search_profile.py` profiles a kept tantivy corpus.

    python bench/index.py [--source folder|jsonl] [--passages N ...] [--docs N ...]
        [--engine sqlite --engine tantivy] [--queries 200] [--vocabulary 100000]
        [--budget-s 3600] [--seed 7] [--keep DIR]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from rumination.search_backends.chunking import split_passages
from rumination.search_backends.corpus import read_document
from rumination.search_backends.engines.open import ENGINES, open_corpus
from rumination.search_backends.importers.jsonl import JsonlSource
from rumination.search_backends.importers.records import import_records

SYLLABLES = "ka lo mi ne ru sa ti vo ze pa gre tor lin dus mar fen qua bri sol wen".split()
LONG_SHARE = 0.08  # documents of 8,000 to 40,000 characters
QUERY_TEXTS = 500  # documents kept to draw phrase queries from


def vocabulary(rng: random.Random, size: int) -> list[str]:
    """`size` distinct made-up words of 2 to 5 syllables, in a seeded random order (the
    order is the Zipf rank)."""
    words: dict[str, None] = {}
    while len(words) < size:
        words["".join(rng.choices(SYLLABLES, k=rng.randint(2, 5)))] = None
    return list(words)


class Writer:
    """Deterministic documents and queries over a Zipfian vocabulary."""

    def __init__(self, seed: int, vocabulary_size: int) -> None:
        self.rng = random.Random(seed)
        self.words = vocabulary(self.rng, vocabulary_size)
        self.cum_weights = list(itertools.accumulate(1 / r for r in range(1, len(self.words) + 1)))

    def zipf_words(self, k: int) -> list[str]:
        return self.rng.choices(self.words, cum_weights=self.cum_weights, k=k)

    def sentence(self) -> str:
        return " ".join(self.zipf_words(self.rng.randint(6, 20))).capitalize() + "."

    def paragraph(self) -> str:
        return " ".join(self.sentence() for _ in range(self.rng.randint(2, 7)))

    def passage(self) -> str:
        """60-160 words: one passage."""
        words = self.zipf_words(self.rng.randint(60, 160))
        return ". ".join(" ".join(words[i:i + 12]).capitalize()
                         for i in range(0, len(words), 12)) + "."

    def title(self) -> str:
        return " ".join(self.zipf_words(3)).title()

    def document(self, number: int) -> tuple[str, str]:
        """(file name, contents) of document `number`."""
        title = self.title()
        long = self.rng.random() < LONG_SHARE
        size = self.rng.randint(8000, 40000) if long else self.rng.randint(300, 3000)
        sections: list[tuple[str, str]] = []
        while sum(len(text) for _, text in sections) < size:
            heading = " ".join(self.zipf_words(2)).capitalize()
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

    def query(self, text: str, mixed: bool) -> str:
        """2-5 Zipfian words; with `mixed`, sometimes a phrase from `text`, a prefix, syntax."""
        kind = self.rng.random() if mixed else 1.0
        if kind < 0.15:
            words = text.split()
            start = self.rng.randrange(max(1, len(words) - 3))
            return '"' + " ".join(words[start : start + 3]).strip(".,#") + '"'
        if kind < 0.3:
            return self.rng.choice(self.words)[:4] + "* " + self.rng.choice(self.words)
        if kind < 0.35:
            return self.rng.choice(['"', "AND (", "NEAR(", "*", "-"]) + self.rng.choice(self.words)
        return " ".join(self.zipf_words(self.rng.randint(2, 5)))


# ---- writing the data (the parent process) ----------------------------------------------------


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


def write_jsonl(path: Path, records: int, writer: Writer) -> list[str]:
    sample: list[str] = []
    every = max(1, records // QUERY_TEXTS)
    with path.open("w", encoding="utf-8") as out:
        for number in range(records):
            text = writer.passage()
            out.write(json.dumps({"id": f"p{number}", "title": writer.title(), "text": text})
                      + "\n")
            if number % every == 0:
                sample.append(text)
    return sample


def passages_per_document(seed: int, vocabulary_size: int, sample: int = 400) -> float:
    """Mean passages per generated document, from `sample` documents (their own Writer)."""
    writer = Writer(seed + 1, vocabulary_size)
    total = 0
    for number in range(sample):
        name, text = writer.document(number)
        total += len(split_passages(read_document(Path(name), text.encode()).body))
    return total / sample


# ---- one measurement (a child process) --------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    engine: str
    passages: int
    index_s: float
    index_cpu_s: float
    size: int
    peak_rss: int
    peak_anon: int
    reindex_s: float | None
    latencies_ms: list[float]
    hits: int


class AnonymousPeak:
    """The peak of this process's anonymous memory (RssAnon in /proc/self/status, sampled
    every 0.2 s): its own memory, without the index files it maps, which count in RSS but
    are page cache the kernel can take back. 0 where /proc is not there."""

    def __init__(self) -> None:
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        status = Path("/proc/self/status")
        while not self._stop.wait(0.2):
            try:
                lines = status.read_text(encoding="ascii").splitlines()
            except OSError:
                return
            for line in lines:
                if line.startswith("RssAnon:"):
                    self.peak_kib = max(self.peak_kib, int(line.split()[1]))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak_kib * 1024


def measure(engine: str, source: Path, queries: list[str], workdir: Path) -> Measurement:
    corpus = open_corpus(workdir / f"corpus-{engine}", engine=engine, create=True)
    anonymous = AnonymousPeak()
    try:
        cpu, started = time.process_time(), time.perf_counter()
        if source.is_dir():
            passages = corpus.index_folder(source).passages
        else:
            passages = import_records(corpus, JsonlSource(source)).passages
        index_s, index_cpu_s = time.perf_counter() - started, time.process_time() - cpu
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        peak_anon = anonymous.stop()
        reindex_s = None
        if source.is_dir():
            changed = next(source.glob("part07/*.md"))
            changed.write_text(changed.read_text(encoding="utf-8") + "\n\nOne more line.\n",
                               encoding="utf-8")
            again = corpus.index_folder(source)
            if again.updated != 1 or again.added or again.removed:
                raise SystemExit("re-indexing after one change did not update exactly one file")
            reindex_s = again.seconds
        corpus.close()  # Tantivy's merges end here: the size below is the settled one
        corpus = open_corpus(workdir / f"corpus-{engine}")
        size = disk_size(workdir / f"corpus-{engine}")
        latencies, hits = [], 0
        for query in queries:
            started = time.perf_counter()
            hits += len(corpus.search(query, 10))
            latencies.append((time.perf_counter() - started) * 1000)
    finally:
        corpus.close()
    return Measurement(engine, passages, index_s, index_cpu_s, size, peak_rss, peak_anon,
                       reindex_s, latencies, hits)


def disk_size(path: Path) -> int:
    """Bytes of a SQLite corpus file, or of every file in a tantivy corpus folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


HEADER = (f"{'engine':<8} {'passages':>10} {'index s':>8} {'passages/s':>10} {'cpu us':>7} "
          f"{'size MiB':>9} {'B/pass':>7} {'RSS MiB':>8} {'anon MiB':>8} {'reidx s':>8} "
          f"{'p50 ms':>7} {'p95 ms':>8} {'mean ms':>8} {'hits':>5}")


def print_row(m: Measurement) -> None:
    lat = m.latencies_ms
    reindex = "-" if m.reindex_s is None else f"{m.reindex_s:.2f}"
    print(f"{m.engine:<8} {m.passages:>10} {m.index_s:>8.1f} {m.passages / m.index_s:>10.0f} "
          f"{1e6 * m.index_cpu_s / m.passages:>7.1f} {m.size / 2**20:>9.1f} "
          f"{m.size / m.passages:>7.0f} {m.peak_rss / 2**20:>8.0f} "
          f"{m.peak_anon / 2**20:>8.0f} {reindex:>8} "
          f"{percentile(lat, 0.5):>7.2f} {percentile(lat, 0.95):>8.2f} "
          f"{statistics.fmean(lat):>8.2f} {m.hits / len(lat):>5.1f}", flush=True)


def run_child(engine: str, source: Path, queries: Path, workdir: Path, budget_s: float) -> None:
    """One measurement in a process of its own: its own peak RSS, a hard time budget."""
    command = [sys.executable, __file__, "--child", engine, str(source), str(queries),
               str(workdir)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=budget_s,
                              check=False)
    except subprocess.TimeoutExpired:
        print(f"{engine:<8} stopped: over the budget of {budget_s:.0f} s", flush=True)
        return
    if done.returncode:
        print(f"{engine:<8} failed: {done.stderr.strip().splitlines()[-1:]}", flush=True)
        return
    print_row(Measurement(**json.loads(done.stdout.strip().splitlines()[-1])))


def child_main(engine: str, source: str, queries: str, workdir: str) -> None:
    texts = json.loads(Path(queries).read_text(encoding="utf-8"))
    print(json.dumps(asdict(measure(engine, Path(source), texts, Path(workdir)))))


def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        child_main(*sys.argv[2:])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", choices=("folder", "jsonl"), default="folder")
    parser.add_argument("--passages", type=int, action="append", default=[],
                        help="a corpus size in passages (repeatable)")
    parser.add_argument("--docs", type=int, action="append", default=[],
                        help="a corpus size in documents (folder source; repeatable)")
    parser.add_argument("--engine", action="append", choices=ENGINES,
                        help="engine to measure, repeatable (default: both)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--query-mix", action="store_true",
                        help="queries also with phrases, prefixes and FTS5 syntax")
    parser.add_argument("--vocabulary", type=int, default=100_000)
    parser.add_argument("--budget-s", type=float, default=3600.0,
                        help="hard time limit of one (size, engine) measurement")
    parser.add_argument("--tmp", type=Path, default=None, help="where to write the corpora")
    parser.add_argument("--keep", type=Path, default=None,
                        help="write the data and corpora under this folder and keep them "
                             "(a later run reuses the data; see bench/search_profile.py)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    engines = args.engine or list(ENGINES)
    sizes = list(args.docs)
    if args.source == "jsonl":
        sizes += args.passages
    elif args.passages:
        ratio = passages_per_document(args.seed, args.vocabulary)
        print(f"{ratio:.2f} passages per generated document (from a sample of 400)")
        sizes += [max(1, round(target / ratio)) for target in args.passages]
    print(f"source {args.source}, vocabulary {args.vocabulary:,} words (Zipf), "
          f"{args.queries} queries of 2-5 words{' and more' if args.query_mix else ''} at k=10; "
          "cpu us: index CPU per passage (this process only); size: the corpus on disk after "
          "indexing; RSS: peak of the indexing process, anon: its peak without mapped files; "
          "reidx: re-index after one file changed")
    print(HEADER, flush=True)
    for size in sorted(sizes or [2000]):
        with data_folder(args.keep, args.tmp, f"{args.source}-{size}-seed{args.seed}") as tmp:
            source, query_file = write_data(tmp, size, args)
            for engine in engines:
                workdir = Path(tmp, f"work-{engine}")
                shutil.rmtree(workdir, ignore_errors=True)
                workdir.mkdir()
                run_child(engine, source, query_file, workdir, args.budget_s)


@contextmanager
def data_folder(keep: Path | None, tmp: Path | None, name: str) -> Iterator[Path]:
    """A temporary folder, or `keep`/`name` (made if missing) when the data is kept."""
    if keep is None:
        with tempfile.TemporaryDirectory(dir=tmp) as folder:
            yield Path(folder)
        return
    folder = keep / name
    folder.mkdir(parents=True, exist_ok=True)
    yield folder


def write_data(folder: Path, size: int, args: argparse.Namespace) -> tuple[Path, Path]:
    """The collection (or documents) and the queries, written unless a kept folder has them."""
    source = folder / ("collection.jsonl" if args.source == "jsonl" else "docs")
    query_file = folder / "queries.json"
    written = folder / "written"
    settings = f"{args.vocabulary} {args.queries} {args.query_mix}"
    if written.is_file() and written.read_text(encoding="utf-8") == settings:
        print(f"# {size:,} reusing the data in {folder}", flush=True)
        return source, query_file
    started = time.perf_counter()
    writer = Writer(args.seed, args.vocabulary)
    if args.source == "jsonl":
        texts = write_jsonl(source, size, writer)
    else:
        shutil.rmtree(source, ignore_errors=True)
        source.mkdir()
        texts = write_folder(source, size, writer)
    queries = [writer.query(writer.rng.choice(texts), args.query_mix)
               for _ in range(args.queries)]
    query_file.write_text(json.dumps(queries), encoding="utf-8")
    written.write_text(settings, encoding="utf-8")
    print(f"# {size:,} {'records' if args.source == 'jsonl' else 'documents'} written "
          f"in {time.perf_counter() - started:.0f} s", flush=True)
    return source, query_file

if __name__ == "__main__":
    main()
