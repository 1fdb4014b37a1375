"""Wikipedia dump import rate: a generated dump in the format of `*-pages-articles.xml.bz2`,
imported into each engine as `rumination index DUMP --db ...` does, side by side in one run.

The dump is written here (no dump is downloaded): `--pages` pages, of which 60% are
articles, 30% redirects and 10% talk pages and templates (about the shares of an English
dump); an article has 3-12 sections of wikitext with links, bold and italics, references
with citation templates, an infobox, a table, a file link and categories. Printed per
engine and number of conversion worker processes (`importers.converting`; 0: all in the
importing process): pages read per second (what an ETA counts), articles and passages per
second, the time spent turning wikitext into text (mwparserfromhell; timed with 0 workers
only), and the corpus's passages.

    python bench/wikipedia_import.py [--pages 20000] [--engine sqlite --engine tantivy]
        [--workers 0 --workers 1] [--budget-s 1800] [--seed 7]
"""

from __future__ import annotations

import argparse
import bz2
import random
import signal
import tempfile
import time
from pathlib import Path
from xml.sax.saxutils import escape

from rumination.search_backends.engines.open import ENGINES, open_corpus
from rumination.search_backends.importers import wikitext
from rumination.search_backends.importers.converting import conversion_workers
from rumination.search_backends.importers.records import import_records
from rumination.search_backends.importers.wikipedia_dump import WikipediaDumpSource

WORDS = ("river valley empire dynasty crystal orbit protein melody harbor glacier province "
         "theorem cathedral railway volcano senate enzyme frontier lattice monsoon archive "
         "falcon pigment reactor tundra treaty sonnet canal comet fresco").split()
HEAD = ('<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" version="0.11" '
        'xml:lang="en">\n  <siteinfo>\n    <sitename>Wikipedia</sitename>\n'
        "    <dbname>enwiki</dbname>\n    <base>https://en.wikipedia.org/wiki/Main_Page</base>\n"
        "  </siteinfo>\n")


def sentence(rng: random.Random) -> str:
    words = rng.choices(WORDS, k=rng.randint(8, 22))
    for i in range(0, len(words), 7):
        kind = rng.random()
        if kind < 0.3:
            words[i] = f"[[{words[i].title()} {rng.choice(WORDS)}|{words[i]}]]"
        elif kind < 0.4:
            words[i] = f"''{words[i]}''"
    text = " ".join(words).capitalize() + "."
    if rng.random() < 0.25:
        cite = f"{{{{cite web|url=https://example.org/{rng.randint(1, 10**6)}|title=x}}}}"
        text += f"<ref>{cite}</ref>"
    return text


def article(rng: random.Random, title: str) -> str:
    parts = [f"{{{{Infobox place|name={title}|population={rng.randint(1, 10**6)}}}}}",
             f"'''{title}''' " + " ".join(sentence(rng) for _ in range(rng.randint(2, 5))),
             f"[[File:{title}.jpg|thumb|A view of {title}]]"]
    for number in range(rng.randint(3, 12)):
        parts.append(f"== {rng.choice(WORDS).title()} {number} ==")
        for _ in range(rng.randint(1, 4)):
            parts.append(" ".join(sentence(rng) for _ in range(rng.randint(3, 8))))
        if rng.random() < 0.2:
            parts.append('{| class="wikitable"\n|-\n| a || b\n|}')
    parts += ["== References ==", "{{reflist}}", f"[[Category:{rng.choice(WORDS).title()}]]"]
    return "\n\n".join(parts)


def page(rng: random.Random, number: int) -> str:
    title = f"{rng.choice(WORDS).title()} {rng.choice(WORDS)} {number}"
    kind = rng.random()
    namespace, redirect, text = 0, "", ""
    if kind < 0.6:
        text = article(rng, title)
    elif kind < 0.9:
        redirect = '    <redirect title="Elsewhere" />\n'
        text = "#REDIRECT [[Elsewhere]]"
    else:
        namespace = rng.choice([1, 10])
        text = "Talk or template text."
    return (f"  <page>\n    <title>{escape(title)}</title>\n    <ns>{namespace}</ns>\n"
            f"    <id>{number}</id>\n{redirect}    <revision>\n      <id>{number}</id>\n"
            f'      <text xml:space="preserve">{escape(text)}</text>\n    </revision>\n'
            "  </page>\n")


def write_dump(path: Path, pages: int, seed: int) -> None:
    rng = random.Random(seed)
    with bz2.open(path, "wt", encoding="utf-8") as out:
        out.write(HEAD)
        for number in range(1, pages + 1):
            out.write(page(rng, number))
        out.write("</mediawiki>\n")


class TimedConversion:
    """wikitext.plain_text, timed."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.real = wikitext.plain_text

    def __call__(self, text: str) -> str:
        started = time.perf_counter()
        try:
            return self.real(text)
        finally:
            self.seconds += time.perf_counter() - started


def measure(dump: Path, engine: str, workdir: Path, pages: int, workers: int) -> str:
    conversion = TimedConversion()
    source = WikipediaDumpSource(dump)
    if not workers:  # the same converter, with a stopwatch (in this process only)
        source._to_plain = conversion
    corpus = open_corpus(workdir / f"corpus-{engine}-{workers}", engine=engine, create=True)
    try:
        started = time.perf_counter()
        stats = import_records(corpus, source, workers=workers)
        seconds = time.perf_counter() - started
        passages = corpus.passage_count()
    finally:
        corpus.close()
    share = f"{conversion.seconds / seconds:.0%}" if not workers else "-"
    return (f"{engine:<8} {workers:>7} {pages / seconds:>8.0f} {stats.added / seconds:>10.0f} "
            f"{stats.passages / seconds:>10.0f} {seconds:>8.1f} "
            f"{share:>11} {stats.added:>9} {passages:>9}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=20_000)
    parser.add_argument("--engine", action="append", choices=ENGINES)
    parser.add_argument("--budget-s", type=float, default=1800.0, help="hard limit of the run")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, action="append",
                        help="conversion worker processes, repeatable (default: 0 and "
                             "what an import uses here)")
    args = parser.parse_args()
    workers = args.workers or sorted({0, conversion_workers()})
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(SystemExit("over budget")))
    signal.alarm(int(args.budget_s))
    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp, "enwiki-generated-pages-articles.xml.bz2")
        started = time.perf_counter()
        write_dump(dump, args.pages, args.seed)
        print(f"{args.pages:,} pages written in {time.perf_counter() - started:.0f} s "
              f"({dump.stat().st_size / 2**20:.1f} MiB bz2)")
        print(f"{'engine':<8} {'workers':>7} {'pages/s':>8} {'articles/s':>10} {'passages/s':>10} "
              f"{'seconds':>8} {'wikitext %':>11} {'articles':>9} {'passages':>9}", flush=True)
        for engine in args.engine or ENGINES:
            for count in workers:
                print(measure(dump, engine, Path(tmp), args.pages, count), flush=True)


if __name__ == "__main__":
    main()
