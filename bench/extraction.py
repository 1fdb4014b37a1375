"""Extraction quality: this project's page pipeline beside plain trafilatura and plain
BeautifulSoup `get_text`, on pages with a known main text, in one run.

Data: a folder in the layout of the public Article Extraction Benchmark
(github.com/scrapinghub/article-extraction-benchmark): `ground-truth.json` mapping each page
id to `{"articleBody": ..., "url": ...}` and `html/<id>.html.gz` (or `.html`). That data
cannot be downloaded on the machines this project is built on, and the project does not
ship it: fetch the repository yourself and pass its folder with `--data`. The score is
bag-of-words token F1 against `articleBody` (lower-cased words), averaged over pages; the
target is a mean F1 no worse than plain trafilatura.

    python bench/extraction.py --data PATH/TO/article-extraction-benchmark
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import trafilatura
from bs4 import BeautifulSoup

from rumination.extract import page_from_bytes

_WORD = re.compile(r"\w+", re.UNICODE)
Extractor = Callable[[str, bytes], str]


@dataclass(frozen=True)
class Sample:
    page_id: str
    url: str
    html: bytes
    expected: str


def token_f1(expected: str, got: str) -> float:
    """Bag-of-words F1 of `got` against `expected` (1.0 when both are empty)."""
    want = Counter(w.lower() for w in _WORD.findall(expected))
    have = Counter(w.lower() for w in _WORD.findall(got))
    if not want and not have:
        return 1.0
    common = sum((want & have).values())
    if common == 0:
        return 0.0
    precision, recall = common / sum(have.values()), common / sum(want.values())
    return 2 * precision * recall / (precision + recall)


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


def score(extract: Extractor, samples: list[Sample]) -> tuple[float, float]:
    """Mean token F1 and pages per second (after one untimed warm-up page)."""
    extract(samples[0].url, samples[0].html)
    started = time.perf_counter()
    scores = [token_f1(s.expected, extract(s.url, s.html)) for s in samples]
    elapsed = time.perf_counter() - started
    return sum(scores) / len(scores), len(samples) / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True,
                        help="folder with ground-truth.json and html/")
    args = parser.parse_args(argv)
    if not (args.data / "ground-truth.json").is_file():
        print(f"error: no ground-truth.json in {args.data}: clone "
              "github.com/scrapinghub/article-extraction-benchmark and pass its folder",
              file=sys.stderr)
        return 2
    samples = load_samples(args.data)
    print(f"{len(samples)} pages from {args.data}")
    print(f"{'system':<14} {'mean F1':>8} {'pages/s':>8}")
    for name, extract in SYSTEMS.items():
        f1, rate = score(extract, samples)
        print(f"{name:<14} {f1:>8.3f} {rate:>8.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
