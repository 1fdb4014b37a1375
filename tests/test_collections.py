"""Collections imported into a corpus (JSONL, Wikipedia XML dumps), on both engines:
layouts, incremental re-import, resuming an interrupted import, and the `index` command."""

from __future__ import annotations

import bz2
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rumination.cli import app
from rumination.cli.index_progress import ImportProgressDisplay
from rumination.search_backends.engines.open import ENGINES, open_corpus
from rumination.search_backends.engines.protocol import CorpusEngine
from rumination.search_backends.importers.converting import WINDOW_PER_WORKER
from rumination.search_backends.importers.jsonl import JsonlSource
from rumination.search_backends.importers.records import (
    ImportProgress,
    ImportStats,
    Record,
    Unusable,
    import_records,
)

BEIR_ROWS = [
    {"_id": "d1", "title": "Glacier retreat", "text": "Alpine glaciers lost half their ice.",
     "metadata": {}},
    {"_id": "d2", "title": "Tides", "text": "Spring tides follow the new and full moon."},
    {"_id": "d3", "title": "", "text": "Barn owls hunt by sound on dark nights."},
]


@pytest.fixture(params=ENGINES)
def corpus(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CorpusEngine]:
    if request.param == "tantivy":
        pytest.importorskip("tantivy")
    c = open_corpus(tmp_path / "corpus", engine=request.param, create=True)
    yield c
    c.close()


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_a_beir_collection_is_imported_with_its_ids_titles_and_urls(
    corpus: CorpusEngine, tmp_path: Path
) -> None:
    source = JsonlSource(write_jsonl(tmp_path / "corpus.jsonl", BEIR_ROWS))
    stats = import_records(corpus, source)
    assert stats == ImportStats(added=3, passages=3)
    (hit,) = corpus.ranked("glaciers", 5)
    assert (hit.doc_id, hit.hit.title, hit.hit.url) == ("d1", "Glacier retreat",
                                                        "doc://corpus/d1")
    assert corpus.ranked("owls", 5)[0].hit.title == "d3"  # no title: the id stands in
    page = corpus.get("doc://corpus/d2")
    assert page is not None and page.text == "Spring tides follow the new and full moon."


def test_pyserini_contents_and_given_urls_are_read_as_they_are(
    corpus: CorpusEngine, tmp_path: Path
) -> None:
    rows = [{"id": 7, "contents": "Firn is snow that survived a melt season.",
             "url": "https://example.org/firn"}]
    import_records(corpus, JsonlSource(write_jsonl(tmp_path / "pyserini.jsonl", rows)))
    (hit,) = corpus.ranked("firn", 5)
    assert (hit.doc_id, hit.hit.url, hit.hit.title) == ("7", "https://example.org/firn", "7")


def test_unusable_lines_are_skipped_with_the_reason(corpus: CorpusEngine, tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join([
        json.dumps(BEIR_ROWS[0]), "{not json", json.dumps(["a list"]),
        json.dumps({"title": "no id", "text": "x"}), json.dumps({"_id": "e", "title": "t"}),
        json.dumps({"_id": "blank", "text": "   "}), "",
    ]), encoding="utf-8")
    notes: list[str] = []
    stats = import_records(corpus, JsonlSource(path),
                           on_progress=lambda p: notes.append(p.note) if p.note else None)
    assert (stats.added, stats.skipped) == (1, 5)
    assert notes[0].startswith("skipped: mixed.jsonl line 2: not JSON")
    assert 'line 3: not a JSON object' in notes[1]
    assert 'line 4: no "id" or "_id"' in notes[2]
    assert 'line 5: no "text" or "contents"' in notes[3]
    assert notes[4] == "skipped: mixed.jsonl record blank: no text"


def test_reimporting_reads_only_what_changed_and_drops_what_is_gone(
    corpus: CorpusEngine, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "corpus.jsonl", BEIR_ROWS)
    import_records(corpus, JsonlSource(path))
    assert import_records(corpus, JsonlSource(path)) == ImportStats(unchanged=3)
    changed = [{**BEIR_ROWS[0], "text": "Alpine glaciers calve into meltwater lakes."},
               BEIR_ROWS[2]]
    write_jsonl(path, changed)
    assert import_records(corpus, JsonlSource(path)) == ImportStats(
        updated=1, unchanged=1, removed=1, passages=1)
    assert corpus.search("tides") == []
    assert [h.doc_id for h in corpus.ranked("meltwater", 5)] == ["d1"]
    assert len(corpus) == 2


class Interrupting:
    """A JSONL source that stops after `stop_after` records, as Ctrl-C would (or with
    `error`, as a broken file would)."""

    def __init__(self, source: JsonlSource, stop_after: int,
                 error: BaseException | None = None) -> None:
        self.source, self.stop_after, self.error = source, stop_after, error
        self.key_prefix, self.name = source.key_prefix, source.name

    def records(self) -> Iterator[Record | Unusable]:
        for number, record in enumerate(self.source.records(), 1):
            if number > self.stop_after:
                raise self.error or KeyboardInterrupt()
            yield record

    def fraction_read(self) -> float | None:
        return self.source.fraction_read()

    def url_for(self, doc_id: str) -> str:
        return self.source.url_for(doc_id)


def walruses(folder: Path, count: int) -> Path:
    rows = [{"_id": f"r{n}", "title": f"Record {n}", "text": f"Walrus number {n} basks."}
            for n in range(count)]
    return write_jsonl(folder / "walruses.jsonl", rows)


class Converted(JsonlSource):
    """A JSONL collection whose texts go through `to_plain`, as a dump's wikitext does."""

    def __init__(self, path: Path, to_plain: Callable[[str], str]) -> None:
        super().__init__(path)
        self.to_plain = to_plain

    def records(self) -> Iterator[Record | Unusable]:
        for record in super().records():
            yield replace(record, to_plain=self.to_plain) if isinstance(record, Record) else record


def test_an_interrupted_import_resumes_after_its_last_commit(
    corpus: CorpusEngine, tmp_path: Path
) -> None:
    path = walruses(tmp_path, 10)
    with pytest.raises(KeyboardInterrupt):
        import_records(corpus, Interrupting(JsonlSource(path), stop_after=7), batch=3)
    assert len(corpus) == 6  # two batches of three committed, the third rolled back
    converted: list[str] = []
    counting = Converted(path, lambda text: converted.append(text) or text)
    stats = import_records(corpus, counting, batch=3)
    assert (stats.resumed_after, stats.added, stats.unchanged) == (6, 4, 0)
    assert len(converted) == 4  # the six committed records were not looked at again
    assert len(corpus) == 10 and len(corpus.search("walrus", 20)) == 10
    assert import_records(corpus, JsonlSource(path)) == ImportStats(unchanged=10)


def test_progress_says_rate_share_and_time_left() -> None:
    progress = ImportProgress(records=12_345, fraction=0.25, rate=1500.0, eta_s=3725)
    assert progress.describe() == ("imported 12,345 records (1,500/s, 25.0% of the file, "
                                   "about 1h02m left)")
    assert ImportProgress(5, None, 2.0, None).describe() == "imported 5 records (2/s)"


def test_the_plain_progress_display_prints_notes_and_a_last_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with ImportProgressDisplay(force_terminal=False) as show:
        show(ImportProgress(1, 0.5, 10.0, 1.0, note="skipped: x line 1: not JSON"))
        show(ImportProgress(2, 1.0, 10.0, 0.0))
    assert capsys.readouterr().err.splitlines() == [
        "skipped: x line 1: not JSON",
        "imported 2 records (10/s, 100.0% of the file, about 0m00s left)",
    ]


# --- Wikipedia dumps ----------------------------------------------------------------------------

DUMP = """<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" version="0.11" xml:lang="en">
  <siteinfo>
    <sitename>Wikipedia</sitename>
    <dbname>enwiki</dbname>
    <base>https://en.wikipedia.org/wiki/Main_Page</base>
    <generator>MediaWiki 1.42.0-wmf.5</generator>
    <case>first-letter</case>
  </siteinfo>
  <page>
    <title>Ada Lovelace</title>
    <ns>0</ns>
    <id>974</id>
    <revision>
      <id>1</id>
      <timestamp>2024-01-01T00:00:00Z</timestamp>
      <model>wikitext</model>
      <format>text/x-wiki</format>
      <text bytes="400" xml:space="preserve">{{Infobox person|name=Ada}}
'''Ada Lovelace''' was an [[England|English]] mathematician.&lt;ref&gt;{{cite web|url=x}}\
&lt;/ref&gt;
[[File:Ada.jpg|thumb|A portrait]]
== Analytical Engine ==
She wrote the first algorithm for [[Charles Babbage]]'s engine.
== References ==
{{reflist}}
[[Category:Mathematicians]]</text>
      <sha1>x</sha1>
    </revision>
  </page>
  <page>
    <title>Lovelace</title>
    <ns>0</ns>
    <id>975</id>
    <redirect title="Ada Lovelace" />
    <revision><id>2</id><text xml:space="preserve">#REDIRECT [[Ada Lovelace]]</text></revision>
  </page>
  <page>
    <title>Countess of Lovelace</title>
    <ns>0</ns>
    <id>976</id>
    <revision><id>3</id><text xml:space="preserve">#redirect [[Ada Lovelace]]</text></revision>
  </page>
  <page>
    <title>Talk:Ada Lovelace</title>
    <ns>1</ns>
    <id>977</id>
    <revision><id>4</id><text xml:space="preserve">Mathematician talk page.</text></revision>
  </page>
  <page>
    <title>Template:Infobox person</title>
    <ns>10</ns>
    <id>978</id>
    <revision><id>5</id><text xml:space="preserve">Mathematician template.</text></revision>
  </page>
  <page>
    <title>Difference engine</title>
    <ns>0</ns>
    <id>979</id>
    <revision><id>6</id><text xml:space="preserve">A '''difference engine''' tabulates \
polynomial functions.</text></revision>
  </page>
</mediawiki>
"""


@pytest.mark.parametrize("name", ["enwiki-pages-articles1.xml", "enwiki-pages-articles1.xml.bz2"])
def test_a_dump_gives_its_articles_only_as_plain_text(
    corpus: CorpusEngine, tmp_path: Path, name: str
) -> None:
    pytest.importorskip("mwparserfromhell")
    from rumination.search_backends.importers.wikipedia_dump import WikipediaDumpSource

    path = tmp_path / name
    data = DUMP.encode("utf-8")
    path.write_bytes(bz2.compress(data) if name.endswith(".bz2") else data)
    stats = import_records(corpus, WikipediaDumpSource(path))
    assert (stats.added, stats.skipped) == (2, 0)  # no redirect, talk page or template
    assert corpus.search("talk template mathematician", 10)[0].title == "Ada Lovelace"
    (hit,) = corpus.ranked("algorithm", 5)
    assert hit.doc_id == "974"
    assert hit.hit.url == "https://en.wikipedia.org/wiki/Ada_Lovelace"
    page = corpus.get(hit.hit.url)
    assert page is not None
    assert page.text == ("Ada Lovelace was an English mathematician.\n\n"
                         "## Analytical Engine\n\n"
                         "She wrote the first algorithm for Charles Babbage's engine.")
    assert corpus.search("reflist portrait infobox cite") == []


CONVERSIONS_LOG = "RUMINATION_TEST_CONVERSIONS"


def plain_with_pid(text: str) -> str:
    """A picklable converter that says which process ran it, and notes each record it
    converts in the file named by CONVERSIONS_LOG."""
    with open(os.environ[CONVERSIONS_LOG], "a", encoding="utf-8") as log:
        log.write(text.split(" basks")[0].rsplit(" ", 1)[-1] + "\n")
    return f"{text} converted by process {os.getpid()}"


def test_texts_are_converted_in_worker_processes_in_order_and_resumably(
    corpus: CorpusEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "converted.txt"
    monkeypatch.setenv(CONVERSIONS_LOG, str(log))  # the spawned workers inherit it
    path = walruses(tmp_path, 200)
    with pytest.raises(KeyboardInterrupt):
        import_records(corpus, Interrupting(Converted(path, plain_with_pid), stop_after=150),
                       batch=30, workers=2)
    # stopped while reading 150 with up to 2 x WINDOW_PER_WORKER read ahead: the records
    # imported by then made two batches of 30; a resumed import reads the rest again
    assert 150 - 2 * WINDOW_PER_WORKER > 60 and len(corpus) == 60
    log.unlink()
    stats = import_records(corpus, Converted(path, plain_with_pid), batch=30, workers=2)
    assert (stats.resumed_after, stats.added, stats.unchanged) == (60, 140, 0)
    converted = sorted(int(n) for n in log.read_text(encoding="utf-8").split())
    assert converted == list(range(60, 200))  # never a committed record, each once
    pages = [corpus.get(JsonlSource(path).url_for(f"r{n}")) for n in (0, 65, 199)]
    texts = [page.text for page in pages if page is not None]
    assert len(texts) == 3 and all("converted by process" in text for text in texts)
    assert not any(f"process {os.getpid()}" in text for text in texts)
    assert [t.split(" basks")[0] for t in texts] == [
        "Walrus number 0", "Walrus number 65", "Walrus number 199"]  # each its own text
    again = import_records(corpus, Converted(path, plain_with_pid), workers=2)
    assert again == ImportStats(unchanged=200)


def test_records_read_before_a_broken_line_are_imported_and_committed_first(
    corpus: CorpusEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CONVERSIONS_LOG, str(tmp_path / "converted.txt"))
    source = Interrupting(Converted(walruses(tmp_path, 100), plain_with_pid), stop_after=35,
                          error=OSError("the file is truncated"))
    with pytest.raises(OSError, match="truncated"):
        import_records(corpus, source, batch=30, workers=2)
    assert len(corpus) == 30  # as without read-ahead: the batch before the error is kept


def test_a_converter_that_cannot_go_to_a_process_converts_in_this_one(
    corpus: CorpusEngine, tmp_path: Path
) -> None:
    converted: list[str] = []
    path = write_jsonl(tmp_path / "few.jsonl", BEIR_ROWS)
    stats = import_records(corpus, Converted(path, lambda t: converted.append(t) or t),
                           workers=2)
    assert stats.added == 3 and len(converted) == 3  # a lambda: converted right here


def test_a_file_that_is_not_a_dump_is_a_usage_error(tmp_path: Path) -> None:
    pytest.importorskip("mwparserfromhell")
    path = tmp_path / "notes.xml"
    path.write_text("<html><body>hello</body></html>", encoding="utf-8")
    result = CliRunner().invoke(app, ["index", str(path), "--db", str(tmp_path / "c.db")])
    assert result.exit_code == 2
    assert "not a Wikipedia XML dump (it starts with <html>)" in result.output
    assert not (tmp_path / "c.db").exists()


# --- the command ---------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_index_imports_a_jsonl_file_and_search_finds_it(tmp_path: Path, engine: str) -> None:
    if engine == "tantivy":
        pytest.importorskip("tantivy")
    runner, db = CliRunner(), tmp_path / f"corpus-{engine}"
    path = write_jsonl(tmp_path / "corpus.jsonl", BEIR_ROWS)
    result = runner.invoke(app, ["index", str(path), "--db", str(db), "--engine", engine])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        f"{db}: 3 documents (3 added, 0 updated, 0 unchanged, 0 removed), 0 skipped, "
        f"3 passages (3 written), {result.stdout.strip().rsplit(', ', 1)[1]}")
    assert db.is_dir() == (engine == "tantivy")

    found = runner.invoke(app, ["search", "glacier ice", "--corpus", str(db), "-n", "3"])
    assert found.exit_code == 0, found.output
    assert found.stdout.splitlines()[:2] == ["1. Glacier retreat", "   doc://corpus/d1"]
    as_json = json.loads(runner.invoke(
        app, ["search", "owls", "--corpus", str(db), "--json"]).stdout)
    assert [(h["rank"], h["doc_id"], h["title"]) for h in as_json] == [(1, "d3", "d3")]
    assert runner.invoke(app, ["search", "zebra", "--corpus", str(db)]).stdout == "no hits\n"

    queries = tmp_path / "queries.tsv"
    queries.write_text("query-id\ttext\nq1\tglacier ice\nq2\ttides moon\n", encoding="utf-8")
    run = runner.invoke(app, ["search", "--corpus", str(db), "--queries", str(queries),
                              "--trec", "--tag", "mine"])
    lines = [line.split() for line in run.stdout.splitlines()]
    assert [(w[0], w[1], w[2], w[3], w[5]) for w in lines] == [
        ("q1", "Q0", "d1", "1", "mine"), ("q2", "Q0", "d2", "1", "mine")]
    listed = runner.invoke(app, ["search", "--corpus", str(db), "--queries", str(queries)])
    first = json.loads(listed.stdout.splitlines()[0])
    assert first["query_id"] == "q1" and first["hits"][0]["doc_id"] == "d1"


def test_an_engine_that_differs_from_the_corpus_is_a_usage_error(tmp_path: Path) -> None:
    pytest.importorskip("tantivy")
    path = write_jsonl(tmp_path / "corpus.jsonl", BEIR_ROWS)
    db = tmp_path / "corpus.db"
    assert CliRunner().invoke(app, ["index", str(path), "--db", str(db)]).exit_code == 0
    result = CliRunner().invoke(app, ["index", str(path), "--db", str(db), "--engine",
                                      "tantivy"])
    assert result.exit_code == 2
    assert "is a sqlite corpus; --engine tantivy cannot open it" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search"], "give one QUERY or --queries FILE"),
        (["search", "x", "--trec"], "--trec writes a run for --queries FILE"),
        (["index", "notes.csv", "--db", "c.db"], "not a collection rumination reads"),
        (["index", "missing.jsonl", "--db", "c.db"], "not found: missing.jsonl"),
        (["index", "corpus.jsonl", "--db", "c.db", "--engine", "lucene"], "unknown engine"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.csv").write_text("a,b\n", encoding="utf-8")
    write_jsonl(tmp_path / "corpus.jsonl", BEIR_ROWS)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_index_advises_tantivy_for_a_large_sqlite_corpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rumination.search_backends.engines import open as engines_open

    monkeypatch.setattr(engines_open, "TANTIVY_ADVISED_PASSAGES", 3)
    path = write_jsonl(tmp_path / "corpus.jsonl", BEIR_ROWS)
    result = CliRunner().invoke(app, ["index", str(path), "--db", str(tmp_path / "c.db")])
    assert result.exit_code == 0
    assert result.stderr.splitlines()[-1].startswith(
        "hint: 3 passages: a corpus this size searches several times faster with --engine "
        "tantivy")
    monkeypatch.setattr(engines_open, "TANTIVY_ADVISED_PASSAGES", 4)
    again = CliRunner().invoke(app, ["index", str(path), "--db", str(tmp_path / "c.db")])
    assert "hint" not in again.stderr


def test_a_backend_without_collection_ids_gives_urls_and_falling_scores() -> None:
    import asyncio

    from rumination.models import SearchHit
    from rumination.search_backends.trec import ranked_search, trec_lines

    class Plain:
        async def search(
            self, query: str, *, limit: int, language: str | None = None
        ) -> list[SearchHit]:
            return [SearchHit(title="A", url="https://a.example/"),
                    SearchHit(title="B", url="https://b.example/")][:limit]

        async def fetch(self, url: str) -> None:
            return None

        async def aclose(self) -> None:
            return None

    hits = asyncio.run(ranked_search(Plain(), "anything", 10))
    assert [(h.doc_id, h.score) for h in hits] == [("https://a.example/", 2.0),
                                                   ("https://b.example/", 1.0)]
    assert trec_lines("q 1", hits, "my run") == [
        "q_1 Q0 https://a.example/ 1 2.000000 my_run",
        "q_1 Q0 https://b.example/ 2 1.000000 my_run",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("q1 only an id\n", "line 1: expected `id<TAB>query`"),
        ('{"_id": "q1"}\n', 'line 1: needs "_id" or "id", and "text" or "query"'),
        ('{"_id": "q1", "text": "x"}\n{oops\n', "line 2: not JSON"),
        ("\n\n", "no queries"),
    ],
)
def test_a_bad_query_file_is_a_usage_error(tmp_path: Path, text: str, message: str) -> None:
    from rumination.errors import UsageError
    from rumination.search_backends.trec import read_queries

    path = tmp_path / "queries.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        read_queries(path)


def test_query_files_in_both_layouts(tmp_path: Path) -> None:
    from rumination.search_backends.trec import read_queries

    tsv = tmp_path / "q.tsv"
    tsv.write_text("qid\tquery\n1\tice\tsheets\n", encoding="utf-8")
    jsonl = write_jsonl(tmp_path / "q.jsonl", [{"id": 2, "query": "tides"}])
    assert read_queries(tsv) == [("1", "ice\tsheets")]
    assert read_queries(jsonl) == [("2", "tides")]
