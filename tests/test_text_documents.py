"""Local text files as index, extract and click read them: the character set of bytes that
declare none, the title of a .txt file, paragraph breaks, and no corpus file left behind
when a folder has nothing to index."""

from __future__ import annotations

import asyncio
import codecs
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rumination.agent.browser import Browser
from rumination.cli import app
from rumination.reading.documents import parse_document, read_document
from rumination.reading.extract import decode
from rumination.reading.fetch import PageFetcher
from rumination.search_backends.corpus import Corpus
from rumination.search_backends.local import LocalCorpusBackend

runner = CliRunner()

# real bytes as Western Windows and old Unix editors save them
LATIN1_BYTES = b"Sea urchins: caf\xe9 na\xefve \xbd"  # é ï ½ in ISO-8859-1
LATIN1_TEXT = "Sea urchins: café naïve ½"
CP1252_BYTES = b"The \x93urchin barren\x94 costs \x8010 \x96 a na\xefve guess"  # “ ” € – ï
CP1252_TEXT = "The “urchin barren” costs €10 – a naïve guess"
POLISH = "Jeżowce zjadają glony. Gdy brakuje wydr, ich liczba rośnie, a las staje się pustynią."
RUSSIAN = "Морские ежи питаются водорослями. Когда исчезают каланы, их число растёт."


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"na\xefve \xbd", "naïve ½"),  # the bytes: not "na´ve ¢" or Farsi letters
        (LATIN1_BYTES, LATIN1_TEXT),
        (CP1252_BYTES, CP1252_TEXT),
        ("Größe und Fläche".encode("cp1252"), "Größe und Fläche"),
        ("La col·lecció d’art és aquí.".encode("cp1252"), "La col·lecció d’art és aquí."),
        ("Þjóðhátíð í Vestmannaeyjum".encode("cp1252"), "Þjóðhátíð í Vestmannaeyjum"),
        # UTF-8 first, with or without a byte order mark; UTF-16 and UTF-32 by their marks
        ("naïve ½".encode(), "naïve ½"),
        (codecs.BOM_UTF8 + "naïve ½".encode(), "naïve ½"),
        (codecs.BOM_UTF16_LE + "naïve ½".encode("utf-16-le"), "naïve ½"),
        (codecs.BOM_UTF16_BE + "naïve ½".encode("utf-16-be"), "naïve ½"),
        (codecs.BOM_UTF32_LE + "naïve ½".encode("utf-32-le"), "naïve ½"),
        # not Western: left to the charset detector, not forced into Windows-1252
        (POLISH.encode("cp1250"), POLISH),
        (RUSSIAN.encode("cp1251"), RUSSIAN),
    ],
)
def test_bytes_without_a_declared_charset(body: bytes, expected: str) -> None:
    assert decode(body) == expected


def test_extract_shows_latin1_and_cp1252_files_as_written(tmp_path: Path) -> None:
    (tmp_path / "latin.txt").write_bytes(LATIN1_BYTES + b"\n")
    (tmp_path / "windows.md").write_bytes(b"# Barrens \x96 \x80\n\n" + CP1252_BYTES + b"\n")
    latin = runner.invoke(app, ["extract", str(tmp_path / "latin.txt")])
    windows = runner.invoke(app, ["extract", str(tmp_path / "windows.md")])
    assert (latin.exit_code, windows.exit_code) == (0, 0)
    assert latin.stdout.endswith(f"\n\n{LATIN1_TEXT}\n")
    assert windows.stdout.startswith("【1†Barrens – €†")
    assert windows.stdout.endswith(f"\n\n# Barrens – €\n\n{CP1252_TEXT}\n")


@pytest.fixture
def western_corpus(tmp_path: Path) -> Path:
    """A corpus indexed by `rumination index` from Latin-1, Windows-1252 and UTF-16 files."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "latin.txt").write_bytes(b"Urchin notes\n\n" + LATIN1_BYTES + b"\n")
    (folder / "windows.txt").write_bytes(b"Costs\r\n\r\n" + CP1252_BYTES + b"\r\n")
    (folder / "wide.txt").write_bytes(codecs.BOM_UTF16_LE + "Ærøskøbing harbour".encode("utf-16le"))
    db = tmp_path / "western.db"
    result = runner.invoke(app, ["index", str(folder), "--db", str(db)])
    assert result.exit_code == 0, result.stderr
    return db


def test_index_stores_and_finds_the_right_letters(western_corpus: Path) -> None:
    corpus = Corpus(western_corpus)
    try:
        assert [(h.title, h.snippet) for h in corpus.search("naïve café")] == [
            ("Urchin notes", "Sea urchins: **café** **naïve** ½"),
            ("Costs", "The “urchin barren” costs €10 – a **naïve** guess"),
        ]
        assert [h.snippet for h in corpus.search("Ærøskøbing")] == ["**Ærøskøbing** harbour"]
    finally:
        corpus.close()


def test_click_on_a_corpus_file_shows_the_right_letters(
    western_corpus: Path, tmp_path: Path
) -> None:
    async def click_first_hit() -> str:
        backend, fetcher = LocalCorpusBackend(western_corpus), PageFetcher()
        browser = Browser(backend, fetcher, prefetch=0)
        try:
            await browser.search("euro costs")
            return (await browser.click(0)).text
        finally:
            await browser.aclose()
            await fetcher.aclose()
            await backend.aclose()

    observation = asyncio.run(click_first_hit())
    url = (tmp_path / "docs" / "windows.txt").resolve().as_uri()
    assert observation.startswith(f"【0†Costs†{url}】")
    assert observation.endswith(f"\n\n{CP1252_TEXT}")


# --- titles and paragraphs of .txt files ----------------------------------------------------

TEXT = "An urchin barren is a stretch of shallow sea floor where urchins have eaten the kelp."


@pytest.mark.parametrize(
    ("raw", "title", "body"),
    [
        # a short line, then a blank line: the title, out of the text
        (f"Sea urchin barrens\n\n{TEXT}\n", "Sea urchin barrens", TEXT),
        (f"Sea urchin barrens\r\n\r\n{TEXT}\r\n", "Sea urchin barrens", TEXT),  # Windows lines
        (f"  Why  do urchins win?\n\n{TEXT}", "Why do urchins win?", TEXT),
        # a short line, then a line break and a line at least 1.5 times as long
        (f"Sea urchin barrens\n{TEXT}", "Sea urchin barrens", TEXT),
        # text, not a title: a sentence, a clause, a lone line, a hard-wrapped paragraph
        (f"{TEXT}\n\nMore text.", "barrens", f"{TEXT}\n\nMore text."),
        (f"Urchins eat kelp:\n\n{TEXT}", "barrens", f"Urchins eat kelp:\n\n{TEXT}"),
        ("Sea urchin barrens", "barrens", "Sea urchin barrens"),
        ("Sea urchin barrens form where sea otters are gone and the kelp\n"
         "forests are grazed down to bare rock by urchins.",
         "barrens",
         "Sea urchin barrens form where sea otters are gone and the kelp\n"
         "forests are grazed down to bare rock by urchins."),
        ("1999\n\nA year of barrens.", "barrens", "1999\n\nA year of barrens."),  # no letter
        (f"{'Barrens ' * 13}\n\n{TEXT}", "barrens", f"{'Barrens ' * 13}\n\n{TEXT}"),  # > 100
        # front matter and `# headings` keep their precedence; the first line stays text
        (f"---\ntitle: Barrens\n---\nSea urchins\n\n{TEXT}", "Barrens", f"Sea urchins\n\n{TEXT}"),
        (f"# Urchins\n\n{TEXT}", "Urchins", f"# Urchins\n\n{TEXT}"),
    ],
)
def test_the_first_line_of_a_txt_file_is_its_title_when_it_looks_like_one(
    raw: str, title: str, body: str
) -> None:
    doc = parse_document(Path("/docs/barrens.txt"), raw)
    assert (doc.title, doc.body) == (title, body)


def test_only_txt_files_take_their_first_line_as_title() -> None:
    doc = parse_document(Path("/docs/barrens.md"), f"Sea urchin barrens\n\n{TEXT}")
    assert (doc.title, doc.body) == ("barrens", f"Sea urchin barrens\n\n{TEXT}")


def test_a_one_sentence_file_keeps_its_file_name_as_title(corpus_dir: Path) -> None:
    doc = read_document(corpus_dir / "otters.txt", (corpus_dir / "otters.txt").read_bytes())
    assert doc.title == "otters"
    assert doc.body.startswith("Sea otters were hunted")


PARAGRAPHS = ["Urchins graze kelp down to bare rock.",
              "Sea otters eat urchins, and the kelp comes back.",
              "Barrens can last for decades."]


def test_paragraphs_survive_index_extract_and_click(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    text_file = folder / "barrens.txt"
    text_file.write_bytes(b"Sea urchin barrens\r\n\r\n" + "\r\n\r\n".join(PARAGRAPHS).encode())
    expected = "\n\n".join(PARAGRAPHS)

    extracted = runner.invoke(app, ["extract", str(text_file)])
    assert extracted.exit_code == 0, extracted.stderr
    assert extracted.stdout == (f"【1†Sea urchin barrens†{text_file.resolve().as_uri()}】\n"
                                f"Visible: 0% - 100%\n\n{expected}\n")

    db = tmp_path / "c.db"
    assert runner.invoke(app, ["index", str(folder), "--db", str(db)]).exit_code == 0
    corpus = Corpus(db)
    try:
        (hit,) = corpus.search("urchins")
        assert hit.title == "Sea urchin barrens"
        assert hit.snippet.startswith("**Urchins** graze")  # the title is not glued on
        page = corpus.get(hit.url)
        assert page is not None and page.text == expected
    finally:
        corpus.close()


# --- a folder with nothing to index ---------------------------------------------------------


def test_nothing_to_index_leaves_no_new_corpus_file(tmp_path: Path) -> None:
    empty, unreadable = tmp_path / "empty", tmp_path / "unreadable"
    empty.mkdir()
    unreadable.mkdir()
    (unreadable / "binary.txt").write_bytes(b"\x00\x01 not text \x00")
    for folder in (empty, unreadable):
        db = tmp_path / f"{folder.name}.db"
        result = runner.invoke(app, ["index", str(folder), "--db", str(db)])
        assert result.exit_code == 2
        assert result.stderr.splitlines()[-1].startswith(f"error: {folder}: nothing to index")
        assert not db.exists()


def test_nothing_to_index_keeps_an_existing_corpus(tmp_path: Path) -> None:
    docs, empty = tmp_path / "docs", tmp_path / "empty"
    docs.mkdir()
    empty.mkdir()
    (docs / "kelp.md").write_text("# Kelp\n\nKelp grows fast.\n", encoding="utf-8")
    db = tmp_path / "c.db"
    assert runner.invoke(app, ["index", str(docs), "--db", str(db)]).exit_code == 0
    (docs / "kelp.md").unlink()
    # the corpus now holds no document, but it was there before this run: it stays
    result = runner.invoke(app, ["index", str(docs), "--db", str(db)])
    assert result.exit_code == 2
    assert db.is_file()
    corpus = Corpus(db)
    try:
        assert len(corpus) == 0
    finally:
        corpus.close()
    result = runner.invoke(app, ["index", str(empty), "--db", str(db)])
    assert result.exit_code == 2 and db.is_file()
