"""One definition of each shared helper: the CJK character classes (rumination/cjk.py), the
source header and report reference patterns (rumination/citation_marks.py) and the token
estimator (rumination/llm/tokens.py); and a check, in the style of test_layers, that no
module of the package defines a second one."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from rumination.agent.browser import page_window
from rumination.citation_marks import PAGE_HEADER, REFERENCE, SOURCE_HEADER
from rumination.cjk import CJK_CHARACTER, CJK_LETTER, has_cjk
from rumination.templates import render

PACKAGE = Path(__file__).resolve().parent.parent / "rumination"

# -- CJK ------------------------------------------------------------------------------------

LETTERS = {
    "unified ideograph": "热",
    "extension A": "\u3400",
    "extension B": "\U00020000",
    "compatibility ideograph": "\uf900",
    "hiragana": "の",
    "katakana": "ヒ",
    "prolonged sound mark": "ー",
    "iteration mark": "々",
    "bopomofo": "ㄅ",
    "Hangul syllable": "한",
    "Hangul compatibility jamo": "ㄱ",
}
MARKS = {
    "ideographic full stop": "。",
    "ideographic comma": "、",
    "corner bracket": "「",
    "ideographic space": "\u3000",
    "fullwidth comma": "，",
    "fullwidth letter": "Ａ",
    "vertical comma": "\ufe31",
}
NOT_CJK = {"Latin": "a", "accented": "é", "Cyrillic": "ж", "Greek": "λ", "digit": "7",
           "em dash": "—", "dagger": "†", "emoji": "\U0001f600", "Thai": "ก"}  # fmt: skip


@pytest.mark.parametrize("name", LETTERS)
def test_letters_of_the_three_scripts_are_cjk_letters(name: str) -> None:
    assert CJK_LETTER.fullmatch(LETTERS[name]) and CJK_CHARACTER.fullmatch(LETTERS[name])


@pytest.mark.parametrize("name", MARKS)
def test_cjk_punctuation_is_a_cjk_character_but_no_letter(name: str) -> None:
    assert CJK_CHARACTER.fullmatch(MARKS[name]) and not CJK_LETTER.fullmatch(MARKS[name])


@pytest.mark.parametrize("name", NOT_CJK)
def test_other_scripts_are_not_cjk(name: str) -> None:
    assert not CJK_CHARACTER.search(NOT_CJK[name])


def test_has_cjk_needs_a_letter() -> None:
    assert has_cjk("热泵的效率") and has_cjk("ヒートポンプ") and has_cjk("열펌프")
    assert has_cjk("What does 热泵 mean?")
    assert not has_cjk("What is a heat pump?") and not has_cjk("「COP」，。")


# -- citation marks ------------------------------------------------------------------------

HIT = {"source_id": 12, "title": "Heat pumps", "url": "https://example.org/hp", "snippet": "Cold."}


@pytest.mark.parametrize("template", ["search_results", "search_results_card"])
def test_the_source_header_reads_both_search_result_styles(template: str) -> None:
    text = render(template, hits=[HIT, {**HIT, "source_id": 13}])
    found = [m.groups() for m in re.finditer(SOURCE_HEADER, text)]
    assert found == [("12", "Heat pumps", "https://example.org/hp"),
                     ("13", "Heat pumps", "https://example.org/hp")]  # fmt: skip


def test_the_source_header_reads_writing_sources_and_elided_pages() -> None:
    sources = render("writing_sources", sources=[{"source_id": 3, "title": "T", "url": "u",
                                                  "content": "Text."}])  # fmt: skip
    elided = render("page_elided", source_id=4, title="T4", url="u4")
    headers = [re.match(SOURCE_HEADER, text) for text in (sources, elided)]
    assert [m.groups() if m else None for m in headers] == [("3", "T", "u"), ("4", "T4", "u4")]
    assert re.match(PAGE_HEADER, elided) is None  # no window: nothing to elide again


@pytest.mark.parametrize("published", [None, "2024-05-17"])
def test_the_page_header_reads_a_window_with_or_without_a_published_date(
    published: str | None,
) -> None:
    text, _ = page_window(7, "Kelp", "https://x.org/k", "Kelp grows. " * 100, 0, 300,
                          published=published)  # fmt: skip
    match = re.match(PAGE_HEADER, text)
    assert match is not None
    assert match.groups()[:3] == ("7", "Kelp", "https://x.org/k")
    assert (match.group(4), int(match.group(5)) < 100) == ("0", True)


def test_a_reference_is_a_bracketed_number_but_not_a_link() -> None:
    text = "Rises[1][12]. A link [3](https://x.org), a[b] and [4 ] are no references."
    assert [m.group(1) for m in REFERENCE.finditer(text)] == ["1", "12"]


# -- no second definition ------------------------------------------------------------------

# A character range that reaches into ideographs, kana or Hangul, written as \u escapes or as
# the characters themselves: the mark of a hand-written CJK class.
_RANGE_END = r"\\u[0-9a-fA-F]{4}|\\U[0-9a-fA-F]{8}|[^\x00-\x7f]"
_RANGE = re.compile(f"({_RANGE_END})-({_RANGE_END})")
_CJK_BLOCKS = ((0x3040, 0x9FFF), (0xAC00, 0xD7AF))
# The source header's opening and the reference `[k]`, as a pattern writes them.
_HEADER_LITERAL = re.compile(r"【\(?\\d\+\)?†")
_REFERENCE_LITERAL = re.compile(r"\\\[\(?\\d\+\)?\\\]")
HOMES = {
    "CJK class": "cjk.py",
    "source header pattern": "citation_marks.py",
    "reference pattern": "citation_marks.py",
    "token estimator": "llm/tokens.py",
}


def _code_point(end: str) -> int:
    return int(end[2:], 16) if end.startswith("\\") else ord(end)


def _is_cjk_range(text: str) -> bool:
    for match in _RANGE.finditer(text):
        low, high = (_code_point(end) for end in match.groups())
        if any(low <= last and high >= first for first, last in _CJK_BLOCKS):
            return True
    return False


def definitions(path: Path) -> set[str]:
    """Which of the shared helpers `path` defines on its own."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            # the source text, so that \u escapes in raw strings are seen as written
            literal = ast.get_source_segment(source, node) or node.value
            if _is_cjk_range(literal) or _is_cjk_range(node.value):
                found.add("CJK class")
            if _HEADER_LITERAL.search(node.value):
                found.add("source header pattern")
            if _REFERENCE_LITERAL.search(node.value):
                found.add("reference pattern")
        elif isinstance(node, ast.FunctionDef) and (
            "estimate_tokens" in node.name or node.name == "count_tokens"
        ):
            found.add("token estimator")
    return found


def test_the_checks_recognise_a_second_definition() -> None:
    assert _is_cjk_range(r"[\u2e80-\u9fff]") and _is_cjk_range("[一-龥]")
    assert _is_cjk_range(r"[\uac00-\ud7af]") and not _is_cjk_range("[０-９]")
    assert _HEADER_LITERAL.search(r"\A【(\d+)†([^†\n]*)") and _HEADER_LITERAL.search(r"【\d+†")
    assert _REFERENCE_LITERAL.search(r"\[(\d+)\](?!\()") and _REFERENCE_LITERAL.search(r"\[\d+\]")


def test_each_shared_helper_is_defined_once_in_its_home() -> None:
    elsewhere = []
    for path in sorted(PACKAGE.rglob("*.py")):
        where = path.relative_to(PACKAGE).as_posix()
        elsewhere += [f"{where} defines a {helper}: import it from rumination/{HOMES[helper]}"
                      for helper in sorted(definitions(path)) if HOMES[helper] != where]
    assert not elsewhere, "\n".join(elsewhere)
    homes = {helper: definitions(PACKAGE / home) for helper, home in HOMES.items()}
    assert all(helper in found for helper, found in homes.items()), homes
