"""PDF and Word reports, read back as a reader's software reads them: pypdf (text, link
annotations, page count), pdftoppm (page 1 drawn, not blank) and python-docx (headings,
hyperlinks, bookmarks); from the renderer, from the command line and from the API."""

from __future__ import annotations

import asyncio
import io
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rumination.cli import app
from rumination.errors import UsageError
from rumination.jobs.demo import run_demo
from rumination.models import CheckedStatement, Citation, Report, Source
from rumination.reports.render import check_format, report_bytes

pypdf = pytest.importorskip("pypdf")
docx = pytest.importorskip("docx")
pytest.importorskip("weasyprint")
from docx.oxml.ns import qn  # noqa: E402
from PIL import Image  # noqa: E402  (WeasyPrint's own dependency)

runner = CliRunner()
CJK_QUESTION = "空气源热泵在寒冷气候中的表现如何？"
CJK_ANSWER = (
    "# 寒冷气候\n\n在寒冷气候中，热泵的效率会下降，但现代机型在零下二十五度仍能供暖[1]。"
    "合理选型可以减少辅助电加热的使用[2]。\n"
)


@cache
def demo_report() -> Report:
    return asyncio.run(run_demo())


def cjk_report() -> Report:
    sources = [Source(source_id=0, url="https://example.cn/cold", title="寒冷地区热泵试验",
                      fetched_at=datetime(2026, 1, 5, tzinfo=UTC)),
               Source(source_id=1, url="https://example.cn/sizing", title="热泵选型指南")]
    return Report(
        question=CJK_QUESTION, answer_markdown=CJK_ANSWER, run_id="cjk1", model="m",
        sources=sources,
        citations=[Citation(number=i + 1, source_id=s.source_id, url=s.url, title=s.title)
                   for i, s in enumerate(sources)],
    )


# --- PDF ----------------------------------------------------------------------------------


def pdf_links(data: bytes) -> tuple[list[str], list[str]]:
    """(internal destinations, external URIs) of every link annotation, in page order."""
    internal, external = [], []
    for page in pypdf.PdfReader(io.BytesIO(data)).pages:
        for annotation in page.get("/Annots") or []:
            link = annotation.get_object()
            if link.get("/Subtype") != "/Link":
                continue
            if "/Dest" in link:
                internal.append(str(link["/Dest"]))
            elif "/A" in link and "/URI" in link["/A"]:
                external.append(str(link["/A"]["/URI"]))
    return internal, external


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)


def first_page_png(data: bytes, folder: Path) -> Image.Image:
    pdf = folder / "page.pdf"
    pdf.write_bytes(data)
    subprocess.run(["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", "-singlefile",
                    str(pdf), str(folder / "page")], check=True, timeout=60)  # fmt: skip
    return Image.open(folder / "page.png").convert("L")


def ink_share(image: Image.Image) -> float:
    """The share of pixels that are not (near) white."""
    histogram = image.histogram()
    return sum(histogram[:200]) / (image.width * image.height)


def test_a_pdf_report_keeps_the_html_reports_content_links_and_page_numbers(
    tmp_path: Path,
) -> None:
    report = demo_report()
    data = report_bytes(report, "pdf")
    reader = pypdf.PdfReader(io.BytesIO(data))
    pages = len(reader.pages)
    assert data.startswith(b"%PDF") and pages >= 2
    text = pdf_text(data)
    flat = " ".join(text.split())
    assert " ".join(report.question.split()[:6]) in flat
    assert "SIMULATED" in text and "Sources" in text
    assert f"page 1 of {pages}" in text and f"page {pages} of {pages}" in text
    assert reader.metadata.title.startswith("[SIMULATED] ")

    internal, external = pdf_links(data)
    numbers = {c.number for c in report.citations}
    # every citation number links to its entry in the sources list, which exists
    assert {f"source-{n}" for n in numbers} == set(internal)
    assert set(internal) <= set(reader.named_destinations)
    # every source is a live link to its URL
    assert {c.url for c in report.citations} <= set(external)

    page = first_page_png(data, tmp_path)
    assert page.width > 300 and 0.01 < ink_share(page) < 0.6, ink_share(page)


def test_flagged_citations_and_changes_are_in_the_pdf() -> None:
    report = demo_report()
    statement = CheckedStatement(statement="Heat pumps never work below zero.", number=1,
                                 source_id=report.citations[0].source_id, occurrence=0,
                                 verdict="unsupported", score=0.05, evidence="", judge="lexical",
                                 reason="no overlap", action="flagged")  # fmt: skip
    text = pdf_text(report_bytes(report.model_copy(update={"statements": [statement]}), "pdf"))
    assert "[1]?" in text.replace(" ", "")
    assert "Citations not supported by their source" in text


def test_a_cjk_report_renders_in_pdf_with_a_cjk_font(tmp_path: Path) -> None:
    data = report_bytes(cjk_report(), "pdf")
    text = pdf_text(data)
    assert "寒冷气候中" in text.replace("\n", "") and "热泵选型指南" in text
    fonts = {str(font["/BaseFont"])
             for page in pypdf.PdfReader(io.BytesIO(data)).pages
             for font in (f.get_object() for f in page["/Resources"]["/Font"].values())}
    assert any("CJK" in name for name in fonts), fonts
    assert ink_share(first_page_png(data, tmp_path)) > 0.01


# --- Word ---------------------------------------------------------------------------------


def docx_parts(data: bytes) -> tuple[Any, list[str], list[str], dict[str, str]]:
    """(document, internal anchors, bookmark names, {external URL: link text})."""
    document = docx.Document(io.BytesIO(data))
    body = document.element.body
    anchors = [link.get(qn("w:anchor")) for link in body.iter(qn("w:hyperlink"))
               if link.get(qn("w:anchor"))]
    bookmarks = [mark.get(qn("w:name")) for mark in body.iter(qn("w:bookmarkStart"))]
    external = {link.url: link.text for paragraph in document.paragraphs
                for link in paragraph.hyperlinks if link.url}
    return document, anchors, bookmarks, external


def test_a_word_report_has_headings_internal_citation_links_and_source_hyperlinks() -> None:
    report = demo_report()
    document, anchors, bookmarks, external = docx_parts(report_bytes(report, "docx"))
    styles = [(p.style.name, p.text) for p in document.paragraphs]
    assert ("Title", report.question) in styles
    headings = [text for style, text in styles if style.startswith("Heading")]
    assert "Sources" in headings and len(headings) >= 3
    assert "SIMULATED" in document.paragraphs[0].text
    metadata = {row.cells[0].text: row.cells[1].text for row in document.tables[0].rows}
    assert metadata["Run"] == report.run_id and metadata["Model"] == report.model
    assert document.core_properties.title.startswith("[SIMULATED] ")

    numbers = {c.number for c in report.citations}
    assert set(anchors) == {f"source_{n}" for n in numbers} == set(bookmarks)
    assert {c.url: c.title for c in report.citations}.items() <= external.items()
    footer = document.sections[0].footer._element.xml
    assert 'w:instr="PAGE"' in footer and 'w:instr="NUMPAGES"' in footer


def test_a_cjk_report_in_word_keeps_its_text_and_names_an_east_asian_font() -> None:
    document, anchors, _, external = docx_parts(report_bytes(cjk_report(), "docx"))
    text = "\n".join(p.text for p in document.paragraphs)
    assert CJK_QUESTION in text and "合理选型可以减少辅助电加热的使用" in text
    assert "寒冷气候" in [p.text for p in document.paragraphs if p.style.name == "Heading 1"]
    assert anchors == ["source_1", "source_2"]
    assert external["https://example.cn/sizing"] == "热泵选型指南"
    fonts = document.styles["Normal"].element.rPr.rFonts
    assert "CJK" in fonts.get(qn("w:eastAsia"))


# --- where the formats are asked for ------------------------------------------------------


@pytest.mark.parametrize("suffix", ["pdf", "docx"])
def test_demo_out_writes_a_file_a_reader_opens(
    suffix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUMINATION_RUN_STORE", str(tmp_path / "runs.db"))
    out = tmp_path / f"r.{suffix}"
    result = runner.invoke(app, ["demo", "--out", str(out)])
    assert result.exit_code == 0, result.output
    if suffix == "pdf":
        assert pdf_links(out.read_bytes())[0]
    else:
        assert docx_parts(out.read_bytes())[1]
    exported = tmp_path / f"again.{suffix}"
    run_id = latest_run_id(tmp_path / "runs.db")
    result = runner.invoke(app, ["runs", "export", run_id, "--report", suffix, "--out",
                                 str(exported)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert exported.read_bytes()[:4] == out.read_bytes()[:4]


def latest_run_id(store: Path) -> str:
    from rumination.store.run_store import RunStore

    return RunStore(store, read_only=True).list_runs(1)[0].run_id


@pytest.mark.parametrize(("fmt", "module", "extra"),
                         [("pdf", "weasyprint", "pdf"), ("docx", "docx", "docx")])
def test_a_missing_extra_is_one_line_naming_it(
    fmt: str, module: str, extra: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now fails
    with pytest.raises(UsageError, match=rf"pip install 'rumination\[{extra}\]'"):
        check_format(fmt)
    out = tmp_path / f"r.{fmt}"
    result = runner.invoke(app, ["demo", "--out", str(out)])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and f"rumination[{extra}]" in lines[0]
    assert not out.exists()


@pytest.fixture
def api_run(tmp_path: Path) -> Iterator[tuple[Any, str]]:
    pytest.importorskip("fastapi")
    import httpx
    from servicekit import running_api, service_settings, simulator, wait_status

    with simulator() as sim, running_api(service_settings(tmp_path, sim.url)) as url, \
            httpx.Client(base_url=url, timeout=60) as client:
        run_id = client.post("/runs", json={"question": "heat pumps in cold climates?",
                                            "max_turns": 6}).json()["run_id"]
        wait_status(client, run_id, {"finished"})
        yield client, run_id


def test_the_api_serves_pdf_and_docx_with_their_content_types(
    api_run: tuple[Any, str],
) -> None:
    client, run_id = api_run
    pdf = client.get(f"/runs/{run_id}/report", params={"format": "pdf"})
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert f'filename="{run_id}.pdf"' in pdf.headers["content-disposition"]
    assert pdf_links(pdf.content)[0]
    word = client.get(f"/runs/{run_id}/report", params={"format": "docx"})
    assert word.headers["content-type"] == ("application/vnd.openxmlformats-officedocument."
                                            "wordprocessingml.document")
    assert docx_parts(word.content)[1]
    page = client.get(f"/ui/runs/{run_id}").text
    assert f'href="/runs/{run_id}/report?format=pdf"' in page
    assert f'href="/runs/{run_id}/report?format=docx"' in page


def test_pdftoppm_is_installed() -> None:
    """CI installs poppler-utils (.ci/run): without it the page test above cannot run."""
    assert shutil.which("pdftoppm")


def test_a_pdf_that_cannot_be_written_with_the_store_off_is_said_to_be_lost() -> None:
    from rumination.jobs.output import write_failure

    denied = PermissionError(13, "Permission denied")
    text = str(write_failure("/r.md", denied, "run1", stored=False))
    assert "printed on stdout instead" in text
    binary = str(write_failure("/r.pdf", denied, "run1", stored=False, printed=False))
    assert "lost" in binary and "stdout" not in binary
    stored = str(write_failure("/r.pdf", denied, "run1", stored=True, printed=False))
    assert "rumination runs export run1 --report pdf --out FILE" in stored
