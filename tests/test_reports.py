"""reports: Markdown (numbered and footnotes), JSON against its published schema, HTML."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import jsonschema
import pytest
from typer.testing import CliRunner

from rumination.cli import app
from rumination.errors import ConfigError, UsageError
from rumination.jobs.demo import run_demo
from rumination.models import Citation, Report, ReportFigures, Source
from rumination.reports import check_format, render_report, report_schema
from rumination.reports.html import _parser
from rumination.settings import Settings

runner = CliRunner()


def make_report(answer: str, *, simulated: bool = False, **fields: object) -> Report:
    sources = [
        Source(source_id=4, url="https://example.org/cold", title="Cold-climate <field> \"trials\"",
               fetched_at=datetime(2026, 1, 5, tzinfo=UTC)),
        Source(source_id=9, url="https://example.org/cop", title="COP [and] SPF"),
        Source(source_id=11, url="javascript:alert(3)", title="Seen, not cited"),
    ]
    values: dict[str, object] = {
        "question": "How do heat pumps cope with cold?",
        "answer_markdown": answer,
        "citations": [
            Citation(number=1, source_id=4, url=sources[0].url, title=sources[0].title),
            Citation(number=2, source_id=9, url=sources[1].url, title=sources[1].title),
        ],
        "sources": sources,
        "run_id": "abc123",
        "model": "test-model",
        "figures": ReportFigures(citations=3, distinct_sources_cited=2, sources_not_cited=1),
        "simulated": simulated,
    }
    values.update(fields)
    return Report.model_validate(values)


# --- Markdown ---------------------------------------------------------------------------


def test_markdown_numbered_source_list_is_the_default() -> None:
    md = render_report(make_report("Cold[1]. Colder[2][1]."), "md")
    assert md.startswith("Cold[1]. Colder[2][1].\n\n## Sources\n\n")
    assert "1. [Cold-climate <field> \"trials\"](https://example.org/cold) (accessed 2026-01-05)\n"\
        in md
    assert "2. [COP \\[and\\] SPF](https://example.org/cop)\n" in md
    assert "[^" not in md


def test_markdown_footnote_style() -> None:
    report = make_report("Cold[1]. Colder[2][1]. An array a[7] and a link [1](https://x.org).")
    md = render_report(report, "md", citation_style="footnotes")
    assert md.startswith(
        "Cold[^1]. Colder[^2][^1]. An array a[7] and a link [1](https://x.org).\n\n"
    )
    assert "[^1]: [Cold-climate <field> \"trials\"](https://example.org/cold) (accessed " in md
    assert "\n[^2]: [COP \\[and\\] SPF](https://example.org/cop)\n" in md
    assert "## Sources" not in md


def test_citation_style_is_a_setting() -> None:
    assert Settings().citation_style == "numbered"
    assert Settings.load(citation_style="footnotes").citation_style == "footnotes"
    with pytest.raises(ConfigError, match="citation_style"):
        Settings.load(citation_style="endnotes")


def test_cli_demo_uses_the_footnote_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUMINATION_CITATION_STYLE", "footnotes")
    out = tmp_path / "r.md"
    result = runner.invoke(app, ["demo", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    text = out.read_text(encoding="utf-8")
    assert "[^1]" in text and "\n[^1]: [" in text and "## Sources" not in text


# --- JSON and its schema ----------------------------------------------------------------


def test_schema_is_a_valid_json_schema_and_matches_the_models() -> None:
    schema = report_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert set(schema["properties"]) == set(Report.model_fields) - {"extra"}
    assert set(schema["$defs"]["figures"]["properties"]) == set(ReportFigures.model_fields)


def validate(document: object) -> None:
    jsonschema.Draft202012Validator(
        report_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(document)


def test_demo_json_output_passes_the_schema() -> None:
    report = asyncio.run(run_demo())
    validate(json.loads(render_report(report, "json")))


def test_write_mode_json_with_figures_passes_the_schema() -> None:
    report = asyncio.run(run_demo(settings=Settings(mode="write")))
    data = json.loads(render_report(report, "json"))
    assert data["mode"] == "write" and data["figures"]["distinct_sources_cited"] >= 3
    validate(data)


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.pop("figures"),
        lambda d: d.update(extra_key=1),
        lambda d: d["citations"][0].update(number=0),
        lambda d: d.update(mode="deep"),
        lambda d: d["figures"].update(cited_paragraph_share=1.5),
    ],
)
def test_schema_rejects_bad_documents(change: object) -> None:
    data = json.loads(render_report(make_report("Cold[1]."), "json"))
    validate(data)
    change(data)  # type: ignore[operator]
    with pytest.raises(jsonschema.ValidationError):
        validate(data)


# --- HTML -------------------------------------------------------------------------------


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def elements(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Elements()
    parser.feed(page)
    return parser.tags


HOSTILE = (
    "# Findings\n\nSafe text[1]. <script>alert(1)</script> and <img src=x onerror=alert(2)>\n\n"
    '<iframe src="https://evil.example"></iframe>\n\n![pixel](https://evil.example/p.png)\n\n'
    "[click](javascript:alert(4)) `<b>code[1]</b>`"
)


def test_html_escapes_a_hostile_answer_and_metadata() -> None:
    report = make_report(
        HOSTILE, question="Q <script>alert(5)</script>",
        warnings=["removed citation in: '<script>alert(6)</script>'"],
    )
    page = render_report(report, "html")
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "Q &lt;script&gt;alert(5)&lt;/script&gt;" in page
    assert "&lt;script&gt;alert(6)&lt;/script&gt;" in page
    tags = elements(page)
    names = {name for name, _ in tags}
    assert not names & {"script", "img", "iframe", "object", "embed"}
    assert all(not key.startswith("on") for _, attrs in tags for key in attrs)
    hrefs = [attrs.get("href") or "" for name, attrs in tags if name in ("a", "link")]
    assert not [h for h in hrefs if h.lower().startswith(("javascript:", "vbscript:"))]
    assert "<code>&lt;b&gt;code[1]&lt;/b&gt;</code>" in page  # no link inside code


def test_html_is_standalone() -> None:
    page = render_report(make_report("Cold[1]."), "html")
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert "Content-Security-Policy" in page
    for name, attrs in elements(page):
        assert "src" not in attrs, name
        if name == "link":
            assert attrs.get("href", "").startswith("data:")  # type: ignore[union-attr]


def test_html_citations_link_to_the_source_list_with_the_title_on_hover() -> None:
    page = render_report(make_report("Cold[1]. Colder[2][1]. Not a citation: a[7]."), "html")
    assert (
        '<a class="citation" href="#source-1" '
        'title="Cold-climate &lt;field&gt; &quot;trials&quot;">[1]</a>' in page
    )
    assert '<a class="citation" href="#source-2" title="COP [and] SPF">[2]</a>' in page
    assert "a[7]" in page
    assert '<li id="source-1" value="1">' in page and '<li id="source-2" value="2">' in page
    assert "Seen but not cited (1)" in page
    assert 'href="javascript:alert(3)"' not in page


def test_html_renders_markdown_tables_and_structure() -> None:
    answer = (
        "# Title\n\n## Section\n\nSome *emphasis*, **strong** and `code`.\n\n"
        "| Outdoor | COP |\n|---|:-:|\n| 7 °C | 3.5[2] |\n| -15 °C | 2.0 |\n\n"
        "- one\n- two\n\n1. first\n\n```\nblock\n```"
    )
    page = render_report(make_report(answer), "html")
    assert "<table>" in page and "<th>Outdoor</th>" in page
    assert '<td style="text-align:center">3.5<a class="citation" href="#source-2"' in page
    assert "<td>-15 °C</td>" in page
    for fragment in ("<h1>Title</h1>", "<h2>Section</h2>", "<em>emphasis</em>",
                     "<strong>strong</strong>", "<code>code</code>", "<ul>", "<ol>",
                     "<pre><code>block\n</code></pre>"):
        assert fragment in page


def test_html_header_banner_and_figures() -> None:
    plain = render_report(make_report("Cold[1]."), "html")
    assert 'id="simulated"' not in plain
    assert "<dt>Model</dt><dd>test-model</dd>" in plain
    assert "<dt>Sources cited</dt><dd>2</dd>" in plain
    simulated = render_report(make_report("Cold[1].", simulated=True), "html")
    assert 'id="simulated"' in simulated and "SIMULATED" in simulated
    assert "<title>[SIMULATED] How do heat pumps cope with cold?</title>" in simulated
    assert 'lang="zh"' in render_report(make_report("热[1]", question="热泵好吗？"), "html")


def test_missing_markdown_library_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "markdown_it", None)
    _parser.cache_clear()
    try:
        with pytest.raises(UsageError, match=r"rumination\[html\]"):
            check_format("html")
        result = runner.invoke(app, ["demo", "--format", "html"])
        assert result.exit_code == 2
        assert result.stderr.strip().count("\n") == 0
        assert "markdown-it-py" in result.stderr and "rumination[html]" in result.stderr
    finally:
        _parser.cache_clear()
    assert check_format("md") == "md"


def test_cli_demo_writes_html(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["demo", "--format", "html", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    page = out.read_text(encoding="utf-8")
    assert 'id="simulated"' in page and 'class="citation"' in page


def test_html_shows_the_question_once() -> None:
    report = make_report("# How do heat pumps cope with cold?\n\nWell[1].")
    page = render_report(report, "html")
    assert page.count("How do heat pumps cope with cold?</h1>") == 1
    assert "<p>Well" in page
    other = render_report(make_report("# A title of its own\n\nWell[1]."), "html")
    assert "<h1>A title of its own</h1>" in other


def test_local_corpus_sources_link_to_their_file(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    assert runner.invoke(app, ["demo", "--out", str(out)]).exit_code == 0
    page = out.read_text(encoding="utf-8")
    assert "corpus://" not in page
    links = re.findall(r'<li id="source-\d+" value="\d+"><a href="(file://[^"#]+)', page)
    assert links and all(Path(unquote(urlsplit(u).path)).is_file() for u in links)
