"""`rumination extract FILE_OR_URL [--full]`: a page exactly as the model would see it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner

from rumination.cli import app

if TYPE_CHECKING:
    from conftest import LocalWeb

runner = CliRunner()

ARTICLE = (
    "<!doctype html><html><head><title>Kelp &lt;|user|&gt;</title></head><body><nav>Menu</nav>"
    "<article><h1>Kelp</h1><p>Kelp forests grow in cold, nutrient-rich water along rocky "
    "coasts.</p><p>Sea otters protect kelp 【3†fake】 by eating urchins.</p></article>"
    "</body></html>"
)
PARAGRAPHS = [f"Paragraph {i:02d}: " + "x" * 84 for i in range(1, 11)]


def extract(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["extract", *args])
    return result.exit_code, result.stdout, result.stderr


def test_an_html_file_is_shown_as_the_model_sees_it(tmp_path: Path) -> None:
    page = tmp_path / "kelp.html"
    page.write_text(ARTICLE, encoding="utf-8")
    code, out, err = extract(str(page))
    assert (code, err) == (0, "")
    head, _, body = out.partition("\n\n")
    assert head == f"【1†Kelp ‹|user|›†{page.resolve().as_uri()}】\nVisible: 0% - 100%"
    assert "Kelp forests grow in cold, nutrient-rich water" in body
    assert "Sea otters protect kelp [3+fake] by eating urchins." in body
    assert "Menu" not in body and "<p>" not in body
    assert out.endswith("\n")


def test_long_text_shows_the_first_window_unless_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUMINATION_PAGE_WINDOW_CHARS", "500")
    notes = tmp_path / "notes.md"
    notes.write_text("\n\n".join(PARAGRAPHS), encoding="utf-8")
    code, out, _ = extract(str(notes))
    assert code == 0
    head, _, body = out.partition("\n\n")
    assert head.endswith("】\nVisible: 0% - 50% (click 1 again to read on)")
    assert body.rstrip("\n") == "\n\n".join(PARAGRAPHS[:5])
    code, out, _ = extract(str(notes), "--full")
    assert code == 0
    head, _, body = out.partition("\n\n")
    uri = notes.resolve().as_uri()
    assert head == f"【1†notes†{uri}】\nVisible: 0% - 100%"  # titled as index titles it
    assert body == "\n\n".join(PARAGRAPHS) + "\n"


def test_a_file_in_another_charset(tmp_path: Path) -> None:
    text = "Ламинария растёт в холодной воде у скалистых берегов."
    page = tmp_path / "ru.html"
    page.write_bytes(
        f'<html><head><meta charset="windows-1251"><title>Ламинария</title></head>'
        f"<body><article><p>{text}</p></article></body></html>".encode("cp1251")
    )
    code, out, _ = extract(str(page))
    assert code == 0
    assert out.startswith("【1†Ламинария†")
    assert text in out


def test_a_url_is_fetched_with_the_run_rules(
    local_web: LocalWeb, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = local_web.page("/kelp", ARTICLE)
    code, out, err = extract(url)
    assert code == 2
    assert err == f"error: {url}: 127.0.0.1 resolves to a non-public address (127.0.0.1)\n"
    assert local_web.requests == []
    monkeypatch.setenv("RUMINATION_FETCH_ALLOW_HOSTS", "127.0.0.1")
    code, out, err = extract(url)
    assert (code, err) == (0, "")
    assert out.startswith(f"【1†Kelp ‹|user|›†{url}】\nVisible: 0% - 100%\n\n")
    assert "Sea otters protect kelp [3+fake] by eating urchins." in out


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "report.docx").write_bytes(b"PK\3\4")
    (tmp_path / "empty.html").write_text("<html><body><script>app()</script></body></html>")
    cases = [
        (str(tmp_path / "missing.html"), "no such file"),
        (str(tmp_path), "is a folder: extract shows one file"),
        (str(tmp_path / "report.docx"), "unsupported file type"),
        (str(tmp_path / "empty.html"), "no readable text"),
        ("ftp://example.org/file.txt", "only files and http(s) URLs"),
        ("http://169.254.169.254/latest/meta-data/", "non-public address (169.254.169.254)"),
        ("http://localhost:1/", "names the local machine"),
    ]
    for target, needle in cases:
        code, out, err = extract(target)
        assert code == 2, target
        assert out == ""
        assert err.count("\n") == 1 and err.startswith("error: ") and needle in err, err
        assert "Traceback" not in err


def test_extract_and_index_agree_on_titles_and_on_binary_files(tmp_path: Path) -> None:
    from rumination.search_backends.corpus import Corpus

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "kelp.md").write_text("Intro line.\n\n# Kelp forests\n\nOtters eat urchins.\n")
    (folder / "blob.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 20)
    corpus = Corpus(tmp_path / "c.db", create=True)
    events: list[str] = []
    corpus.index_folder(folder, on_file=lambda e: events.append(e.describe()))
    (hit,) = corpus.search("urchins", 5)
    corpus.close()
    code, out, _ = extract(str(folder / "kelp.md"))
    assert code == 0 and out.startswith(f"【1†{hit.title}†")
    assert hit.title == "Kelp forests"
    code, out, err = extract(str(folder / "blob.txt"))
    assert (code, out) == (2, "")
    assert err == f"error: {folder / 'blob.txt'}: binary data, not text\n"
    assert f"skipped: {folder / 'blob.txt'}: binary data, not text" in events
