"""The support check: statements, evidence as shown, the lexical and llm judges, the
keep/flag/drop policy, and verdicts in every report format."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import jsonschema
import pytest

from rumination.llm.client import LLMClient
from rumination.models import Citation, Report, ReportFigures, Source
from rumination.reports import render_report, report_schema
from rumination.support.check import check_support
from rumination.support.evidence import evidence_by_source
from rumination.support.judge_cache import JudgementCache
from rumination.support.lexical import LexicalJudge
from rumination.support.llm_judge import LLMJudge, focus_evidence, parse_verdicts
from rumination.support.statements import cited_statements, references
from rumination.templates import render

PAGE = (
    "The coefficient of performance of a heat pump is the heat delivered divided by the "
    "electricity used. A datasheet might quote a COP of 4.5 at an outdoor temperature of 7 C. "
    "Heat pumps were first demonstrated by Peter von Rittinger in 1856 in Austria. "
    "Modern units do not need a backup heater in most British homes."
)
OTHER = "Noise from outdoor units is measured in decibels at the nearest neighbour's window."


# --- statements ------------------------------------------------------------------------------


def test_each_reference_gets_the_clause_or_sentence_it_ends() -> None:
    answer = (
        "# Title\n\nHeat pumps move heat.[1] The COP is 4.5 at A7/W35 [2], while ground "
        "loops reach 5 [1][2]. Costs fell. [3]\n\n- **Noise** is measured in dB[3]\n\n"
        "```\ncode [1]\n```\n"
    )
    found = [(s.statement, s.number, s.occurrence)
             for s in cited_statements(answer, {1, 2, 3})]
    assert found == [
        ("Heat pumps move heat.", 1, 0),
        ("The COP is 4.5 at A7/W35", 2, 1),
        ("while ground loops reach 5", 1, 2),
        ("while ground loops reach 5", 2, 3),
        ("Costs fell.", 3, 4),
        ("Noise is measured in dB", 3, 5),
    ]
    assert [m.group(0) for m in references(answer, {1, 2, 3})] == [
        "[1]", "[2]", "[1]", "[2]", "[3]", "[3]"
    ]


def test_references_to_numbers_that_are_not_citations_are_not_statements() -> None:
    assert cited_statements("A list [7] of things.[1]", {1})[0].occurrence == 0
    assert [s.number for s in cited_statements("A list [7] of things.[1]", {1})] == [1]


# --- evidence --------------------------------------------------------------------------------


def test_evidence_is_every_block_shown_for_a_source_in_both_result_styles() -> None:
    inline = render("search_results", hits=[
        {"source_id": 3, "title": "COP", "url": "https://a/cop", "snippet": "COP is 4.5"},
        {"source_id": 4, "title": "Noise", "url": "https://a/noise", "snippet": "dB levels"},
    ])
    header_style = "【5†History†https://a/h】\nRittinger 1856\n\n【3†COP†https://a/cop】\nCOP again"
    page = render("page", source_id=3, title="COP", url="https://a/cop", published=None,
                  rendered=False, start_percent=0, end_percent=100, more=False, text=PAGE)
    shown = evidence_by_source([inline, header_style, page])
    assert shown[4] == "Noise\n\ndB levels"
    assert shown[5] == "History\n\nRittinger 1856"
    assert shown[3].startswith("COP\n\nCOP is 4.5\n\nCOP again\n\nThe coefficient")
    assert "Visible:" not in shown[3] and "】" not in shown[3]


# --- the lexical judge -------------------------------------------------------------------------

judge = LexicalJudge()


@pytest.mark.parametrize(
    ("statement", "verdict", "reason"),
    [
        ("A datasheet may give a COP of 4.5 when it is 7 C outside.", "supported", ""),
        ("Peter von Rittinger demonstrated the first heat pump in 1856.", "supported", ""),
        ("A datasheet may give a COP of 6.5 when it is 7 C outside.", "unsupported", "number"),
        ("Heat pumps were first demonstrated in 1856 by William Cullen in Austria.",
         "unsupported", "name"),
        ("Modern units need a backup heater in most British homes.", "unsupported", "negat"),
        ("Heat pumps were not demonstrated by Rittinger in 1856 in Austria.",
         "unsupported", "negat"),
        ("Offshore wind farms supply most of Denmark's electricity.", "unsupported", "cover"),
    ],
)
def test_lexical_verdicts(statement: str, verdict: str, reason: str) -> None:
    support = judge.judge(statement, PAGE)
    assert support.verdict == verdict, support
    assert reason in support.reason
    assert support.judge == "lexical"
    assert len(support.evidence) <= 301
    if verdict == "supported":
        assert support.score >= 0.6 and support.evidence in PAGE


def test_lexical_partial_coverage_is_unsure() -> None:
    support = judge.judge("The heat delivered by heat pumps divided by fuel bills is rising "
                          "quickly across Europe", PAGE)
    assert support.verdict in ("unsure", "unsupported")
    assert LexicalJudge(supported_at=0.9, unsupported_below=0.3).judge(
        "heat pump coefficient varies widely", PAGE
    ).verdict == "unsure"


def test_lexical_with_no_evidence_is_unsure() -> None:
    assert judge.judge("Heat pumps move heat.", "").verdict == "unsure"


# --- the check on a report -----------------------------------------------------------------------


def _report() -> Report:
    sources = [Source(source_id=1, url="https://a/cop", title="COP"),
               Source(source_id=2, url="https://a/noise", title="Noise")]
    answer = (
        "A datasheet may give a COP of 4.5 when it is 7 C outside [1]. "
        "Rittinger first demonstrated heat pumps in 1901 [1]. "
        "Noise is measured in decibels at the neighbour's window [2]."
    )
    return Report(
        question="q", answer_markdown=answer, run_id="r", model="m",
        citations=[Citation(number=1, source_id=1, url="https://a/cop", title="COP"),
                   Citation(number=2, source_id=2, url="https://a/noise", title="Noise")],
        sources=sources, figures=ReportFigures(invalid_ids=2, citations_removed=3),
    )


EVIDENCE = {1: PAGE, 2: OTHER}


def test_flag_keeps_the_text_and_records_every_verdict() -> None:
    report = asyncio.run(check_support(_report(), EVIDENCE, judge, "flag"))
    assert report.answer_markdown == _report().answer_markdown
    assert [(s.verdict, s.action, s.occurrence) for s in report.statements] == [
        ("supported", "kept", 0), ("unsupported", "flagged", 1), ("supported", "kept", 2)
    ]
    assert report.citations[0].support is not None
    assert report.citations[0].support.verdict == "unsupported"  # the weakest of its two
    assert report.citations[1].support is not None
    assert report.citations[1].support.verdict == "supported"
    f = report.figures
    assert f is not None
    assert (f.statements_checked, f.statements_supported, f.effective_citations) == (3, 2, 2)
    assert f.citation_accuracy == pytest.approx(2 / 3, abs=1e-4)
    assert (f.invalid_ids, f.citations_removed) == (2, 3)  # kept from citation resolution


def test_keep_records_without_flagging() -> None:
    report = asyncio.run(check_support(_report(), EVIDENCE, judge, "keep"))
    assert [s.action for s in report.statements] == ["kept"] * 3
    assert report.statements[1].verdict == "unsupported"
    assert "not supported" not in render_report(report, "md")


def test_drop_removes_the_marker_warns_and_renumbers() -> None:
    report = _report()
    report.answer_markdown = report.answer_markdown.replace(
        "A datasheet may give a COP of 4.5 when it is 7 C outside [1]. ", ""
    )
    checked = asyncio.run(check_support(report, EVIDENCE, judge, "drop"))
    assert checked.answer_markdown == (
        "Rittinger first demonstrated heat pumps in 1901. "
        "Noise is measured in decibels at the neighbour's window [1]."
    )
    assert [(c.number, c.source_id) for c in checked.citations] == [(1, 2)]
    dropped = [s for s in checked.statements if s.action == "dropped"]
    assert len(dropped) == 1 and dropped[0].occurrence is None
    assert any("removed citation [1] (source 1)" in w and "1901" in w for w in checked.warnings)
    assert checked.figures is not None and checked.figures.citations == 1


# --- verdicts in every format --------------------------------------------------------------------


def test_every_format_shows_the_verdicts() -> None:
    report = asyncio.run(check_support(_report(), EVIDENCE, judge, "flag"))
    data = json.loads(render_report(report, "json"))
    jsonschema.Draft202012Validator(report_schema()).validate(data)
    assert data["citations"][0]["support"]["verdict"] == "unsupported"
    assert set(data["citations"][0]["support"]) == {"verdict", "score", "evidence", "judge",
                                                    "reason"}
    assert data["figures"]["citation_accuracy"] == pytest.approx(0.6667)
    markdown = render_report(report, "md")
    sources_at = markdown.index("## Sources")
    flagged_at = markdown.index("### Citations not supported by their source")
    assert sources_at < flagged_at
    assert "“Rittinger first demonstrated heat pumps in 1901”" in markdown[flagged_at:]
    assert "Citation accuracy 66.7%: 2 of 3" in markdown
    html = render_report(report, "html")
    assert html.count('class="cite verdict-supported"') == 2
    assert html.count('class="cite verdict-unsupported flagged"') == 1
    assert 'aria-describedby="evidence-1"' in html and 'role="tooltip" id="evidence-1"' in html
    assert "NOT supported by the source" in html
    assert '<section class="support" id="unsupported">' in html
    assert "Citation accuracy" in html


def test_an_old_report_without_verdicts_still_loads_and_renders() -> None:
    data = json.loads(_report().model_dump_json())
    del data["statements"]
    for citation in data["citations"]:
        del citation["support"]
    report = Report.model_validate(data)
    assert "Citations not supported" not in render_report(report, "md")
    assert 'class="cite' not in render_report(report, "html")


# --- the llm judge --------------------------------------------------------------------------------


def _statements(prompt: str) -> list[str]:
    block = prompt.split("<statements>")[1].split("</statements>")[0]
    return [line.split(". ", 1)[1] for line in block.strip().splitlines()]


class JudgeServer:
    """An OpenAI-compatible chat endpoint (httpx.MockTransport) that judges like a strict
    reader: a statement is unsupported when it says "not" or names 1901."""

    def __init__(self, reply: str | None = None) -> None:
        self.prompts: list[str] = []
        self.reply = reply

    def __call__(self, request: httpx.Request) -> httpx.Response:
        prompt = json.loads(request.content)["messages"][0]["content"]
        self.prompts.append(prompt)
        verdicts = [
            {"statement": i, "reason": "checked",
             "verdict": "unsupported" if " not " in s or "1901" in s else "supported",
             "quote": "A datasheet might quote a COP of 4.5 at an outdoor temperature of 7 C."}
            for i, s in enumerate(_statements(prompt), start=1)
        ]
        content = self.reply if self.reply is not None else (
            "<think>checking</think>" + json.dumps(verdicts)
        )
        return httpx.Response(200, json={
            "choices": [{"message": {"role": "assistant", "content": content},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10},
        })


def _llm_judge(server: JudgeServer, cache: JudgementCache | None, batch: int = 8) -> LLMJudge:
    client = LLMClient("http://judge.test/v1", "judge-model", stream=False, retries=0,
                       transport=httpx.MockTransport(server))
    return LLMJudge(client, cache=cache, batch=batch)


def test_llm_judge_batches_per_source_and_caches(tmp_path: Path) -> None:
    server = JudgeServer()
    cache = JudgementCache(tmp_path / "runs.db")
    report = asyncio.run(check_support(_report(), EVIDENCE, _llm_judge(server, cache), "flag"))
    assert len(server.prompts) == 2  # one request per source
    assert [s.verdict for s in report.statements] == ["supported", "unsupported", "supported"]
    assert report.statements[0].judge == "llm:judge-model"
    assert report.statements[0].evidence.startswith("A datasheet might quote a COP of 4.5")
    assert report.statements[2].evidence  # its quote is not on its page: the lexical span
    again = asyncio.run(check_support(_report(), EVIDENCE, _llm_judge(server, cache), "flag"))
    assert len(server.prompts) == 2  # every verdict came from the cache
    assert again.statements == report.statements
    split = JudgeServer()
    asyncio.run(check_support(_report(), EVIDENCE, _llm_judge(split, None, batch=1), "flag"))
    assert len(split.prompts) == 3


@pytest.mark.parametrize("reply", ["I think they are fine.", "[{broken json"])
def test_llm_judge_unreadable_reply_is_unsure_and_not_cached(tmp_path: Path, reply: str) -> None:
    cache = JudgementCache(tmp_path / "runs.db")
    report = asyncio.run(check_support(_report(), EVIDENCE,
                                       _llm_judge(JudgeServer(reply), cache), "drop"))
    assert {s.verdict for s in report.statements} == {"unsure"}
    assert report.answer_markdown == _report().answer_markdown  # unsure is never dropped
    server = JudgeServer()
    asyncio.run(check_support(_report(), EVIDENCE, _llm_judge(server, cache), "flag"))
    assert len(server.prompts) == 2


def test_llm_judge_server_down_is_unsure() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    client = LLMClient("http://judge.test/v1", "judge-model", stream=False, retries=0,
                       transport=httpx.MockTransport(down))
    report = asyncio.run(check_support(_report(), EVIDENCE, LLMJudge(client), "flag"))
    assert {s.verdict for s in report.statements} == {"unsure"}
    assert "judge failed" in report.statements[0].reason


def test_parse_verdicts_tolerates_order_and_missing_entries() -> None:
    reply = '<think>x</think>Here: [{"statement": 2, "verdict": "unsupported"}, {"verdict": "x"}]'
    parsed = parse_verdicts(reply, 2)
    assert parsed is not None
    assert parsed[1]["verdict"] == "unsupported" and parsed[0] == {}
    assert parse_verdicts("no list", 2) is None


def test_focus_evidence_keeps_the_relevant_sentences_within_the_limit() -> None:
    long = " ".join(f"Filler sentence number {i} about nothing much." for i in range(300)) + (
        " Rittinger demonstrated heat pumps in 1856."
    )
    focused = focus_evidence(long, ["Rittinger demonstrated heat pumps"], 500)
    assert len(focused) <= 520 and "Rittinger demonstrated heat pumps in 1856." in focused
    assert focus_evidence(PAGE, ["x"], 5000) == PAGE


def test_lexical_judges_chinese_by_character_pairs_and_is_unsure_across_scripts() -> None:
    page = "热泵在寒冷气候中的性能。现代热泵在零下二十五度仍能运行。瑞典和芬兰广泛使用热泵。"
    assert judge.judge("现代热泵在零下二十五度仍能运行", page).verdict == "supported"
    assert judge.judge("瑞典和挪威的电价很低", page).verdict == "unsupported"
    across = judge.judge("Modern heat pumps still run at minus 25 C.", page)
    assert across.verdict == "unsure" and "different scripts" in across.reason


def test_the_rendered_line_of_a_page_is_not_evidence() -> None:
    page = render("page", source_id=2, title="Moons", url="https://a/m", published=None,
                  rendered=True, start_percent=0, end_percent=100, more=False,
                  text="Tidal locking slows a moon.")
    assert "Rendered: in a headless browser" in page
    assert evidence_by_source([page])[2] == "Moons\n\nTidal locking slows a moon."
