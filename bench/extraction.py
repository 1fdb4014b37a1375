"""Extraction quality: this project's page pipeline beside plain trafilatura and plain
BeautifulSoup `get_text`, on pages with a known main text, in one run.

Data: a folder in the layout of the public Article Extraction Benchmark
(github.com/scrapinghub/article-extraction-benchmark): `ground-truth.json` mapping each page
id to `{"articleBody": ..., "url": ...}` and `html/<id>.html.gz` (or `.html`). The project
does not ship it: by default it is read from `../shared/data/extraction/` beside the
repository; `--data` names another copy. The score is bag-of-words token F1 against
`articleBody` (lower-cased words), averaged over pages (mean precision and recall printed
too); the target is a mean F1 no worse than plain trafilatura.

    python bench/extraction.py [--data PATH/TO/article-extraction-benchmark]
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import trafilatura
from bs4 import BeautifulSoup

from rumination.reading.extract import page_from_bytes

_WORD = re.compile(r"\w+", re.UNICODE)
Extractor = Callable[[str, bytes], str]


@dataclass(frozen=True)
class Sample:
    page_id: str
    url: str
    html: bytes
    expected: str


@dataclass(frozen=True)
class Score:
    f1: float
    precision: float
    recall: float


def token_scores(expected: str, got: str) -> Score:
    """Bag-of-words F1, precision and recall of `got` against `expected` (all 1.0 when both
    are empty; an empty side scores 0.0)."""
    want = Counter(w.lower() for w in _WORD.findall(expected))
    have = Counter(w.lower() for w in _WORD.findall(got))
    if not want and not have:
        return Score(1.0, 1.0, 1.0)
    common = sum((want & have).values())
    if common == 0:
        return Score(0.0, 0.0, 0.0)
    precision, recall = common / sum(have.values()), common / sum(want.values())
    return Score(2 * precision * recall / (precision + recall), precision, recall)


def token_f1(expected: str, got: str) -> float:
    """Bag-of-words F1 of `got` against `expected` (1.0 when both are empty)."""
    return token_scores(expected, got).f1


def load_samples(folder: Path) -> list[Sample]:
    truth = json.loads((folder / "ground-truth.json").read_text(encoding="utf-8"))
    samples = []
    for page_id, item in sorted(truth.items()):
        packed = folder / "html" / f"{page_id}.html.gz"
        html = gzip.decompress(packed.read_bytes()) if packed.is_file() else (
            folder / "html" / f"{page_id}.html").read_bytes()
        samples.append(Sample(page_id, item.get("url") or "", html, item["articleBody"] or ""))
    return samples


def pipeline(url: str, html: bytes) -> str:
    """What `click` shows the model (before windowing): charset detection, trafilatura,
    the BeautifulSoup fallback."""
    return page_from_bytes(url or "https://example.com/", "text/html", html).text


def plain_trafilatura(url: str, html: bytes) -> str:
    return trafilatura.extract(html.decode("utf-8", errors="replace"), url=url or None) or ""


def plain_beautifulsoup(url: str, html: bytes) -> str:
    return BeautifulSoup(html, "html.parser").get_text(" ")


SYSTEMS: dict[str, Extractor] = {
    "rumination": pipeline,
    "trafilatura": plain_trafilatura,
    "bs4 get_text": plain_beautifulsoup,
}


def score(extract: Extractor, samples: list[Sample]) -> tuple[Score, float]:
    """Mean token scores and pages per second (after one untimed warm-up page)."""
    extract(samples[0].url, samples[0].html)
    started = time.perf_counter()
    outputs = [(s.expected, extract(s.url, s.html)) for s in samples]
    elapsed = time.perf_counter() - started
    scores = [token_scores(expected, got) for expected, got in outputs]
    mean = Score(*(statistics.fmean(getattr(s, name) for s in scores)
                   for name in ("f1", "precision", "recall")))
    return mean, len(samples) / elapsed


def default_data() -> Path:
    shared = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return shared / "extraction" / "article-extraction-benchmark"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=default_data(),
                        help="folder with ground-truth.json and html/ (default: %(default)s)")
    args = parser.parse_args(argv)
    if not (args.data / "ground-truth.json").is_file():
        print(f"error: no ground-truth.json in {args.data}: clone "
              "github.com/scrapinghub/article-extraction-benchmark and pass its folder",
              file=sys.stderr)
        return 2
    samples = load_samples(args.data)
    print(f"{len(samples)} pages from {args.data}")
    print(f"{'system':<14} {'mean F1':>8} {'precision':>9} {'recall':>7} {'pages/s':>8}")
    for name, extract in SYSTEMS.items():
        mean, rate = score(extract, samples)
        print(f"{name:<14} {mean.f1:>8.4f} {mean.precision:>9.4f} {mean.recall:>7.4f} "
              f"{rate:>8.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
