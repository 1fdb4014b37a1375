"""rumination.support.citations.resolve_citations: find markers, validate ids, renumber 1..k."""

from __future__ import annotations

import re

import pytest

from rumination.models import Citation, Source
from rumination.support.citations import resolve_citations


def sources(*ids: int) -> list[Source]:
    return [Source(source_id=i, url=f"https://example.org/{i}", title=f"Title {i}") for i in ids]


def cite(number: int, source_id: int) -> Citation:
    return Citation(
        number=number, source_id=source_id, url=f"https://example.org/{source_id}",
        title=f"Title {source_id}",
    )


def test_renumbers_in_order_of_first_appearance() -> None:
    result = resolve_citations(
        "Kelp grows fast【12†source】. Otters eat urchins【3†source】. "
        "Barrens persist【7†source】.",
        sources(3, 7, 12),
    )
    assert result.text == "Kelp grows fast[1]. Otters eat urchins[2]. Barrens persist[3]."
    assert result.citations == [cite(1, 12), cite(2, 3), cite(3, 7)]
    assert result.invalid_ids == []
    assert result.warnings == []
    assert result.markers_found == 3


def test_repeated_ids_keep_their_number() -> None:
    result = resolve_citations(
        "A【5†source】 B【9†source】 C【5†source】 D【9†source】【5†source】.", sources(5, 9)
    )
    assert result.text == "A[1] B[2] C[1] D[2][1]."
    assert result.citations == [cite(1, 5), cite(2, 9)]
    assert result.markers_found == 5


def test_invalid_id_is_removed_with_a_warning_naming_it_and_its_sentence() -> None:
    answer = (
        "Heat pumps move heat. They reach a COP of 3 in mild weather【42†source】. "
        "Done【1†source】."
    )
    result = resolve_citations(answer, sources(1))
    assert result.text == "Heat pumps move heat. They reach a COP of 3 in mild weather. Done[1]."
    assert result.invalid_ids == [42]
    assert result.warnings == [
        "removed citation to unknown source id 42 in: "
        "'They reach a COP of 3 in mild weather.'"
    ]
    assert result.citations == [cite(1, 1)]


def test_marker_after_a_full_stop_is_reported_with_the_sentence_it_follows() -> None:
    result = resolve_citations("Alpha is big.【99†source】 Beta is small.", [])
    assert result.text == "Alpha is big. Beta is small."
    assert result.warnings == ["removed citation to unknown source id 99 in: 'Alpha is big.'"]


def test_marker_after_a_full_stop_and_another_marker() -> None:
    result = resolve_citations("Gamma.【3†source】【99†source】 Delta is next.", sources(3))
    assert result.text == "Gamma.[1] Delta is next."
    assert result.warnings == ["removed citation to unknown source id 99 in: 'Gamma.'"]


def test_marker_at_the_end_of_the_text_without_punctuation() -> None:
    result = resolve_citations("First point. Second point【8】", [])
    assert result.text == "First point. Second point"
    assert result.warnings == ["removed citation to unknown source id 8 in: 'Second point'"]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Fact【12】.", "Fact[1]."),
        ("Fact【 12 】.", "Fact[1]."),
        ("Fact【12†L3-L9】.", "Fact[1]."),
        ("Fact【12†source】.", "Fact[1]."),
        ("Fact【12 † source】.", "Fact[1]."),
        ("Fact[12†source].", "Fact[1]."),
        ("Fact[12†L3-L9].", "Fact[1]."),
        ("Fact【１２†source】.", "Fact[1]."),
        ("Fact【１２】.", "Fact[1]."),
        ("Fact[１２†source].", "Fact[1]."),
    ],
)
def test_marker_variants(answer: str, expected: str) -> None:
    result = resolve_citations(answer, sources(12))
    assert result.text == expected
    assert result.citations == [cite(1, 12)]
    assert result.markers_found == 1
    assert result.warnings == []


@pytest.mark.parametrize(
    "answer",
    ["Fact【3, 7†source】.", "Fact【3,7†source】.", "Fact【3，7†source】.", "Fact【3、7†source】.",
     "Fact[3, 7†source].", "Fact【３，７†source】."],
)
def test_several_ids_in_one_marker(answer: str) -> None:
    result = resolve_citations(answer, sources(3, 7))
    assert result.text == "Fact[1][2]."
    assert result.citations == [cite(1, 3), cite(2, 7)]
    assert result.markers_found == 1


def test_several_ids_with_one_unknown() -> None:
    result = resolve_citations("Otters eat urchins【3, 7†source】.", sources(7))
    assert result.text == "Otters eat urchins[1]."
    assert result.citations == [cite(1, 7)]
    assert result.invalid_ids == [3]
    assert result.warnings == ["removed citation to unknown source id 3 in: 'Otters eat urchins.'"]


def test_the_same_id_twice_in_one_marker_is_written_once() -> None:
    assert resolve_citations("X【4, 4†source】.", sources(4)).text == "X[1]."


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("end.【3†source】Next", "end.[1]Next"),
        ("(see【3†source】)", "(see[1])"),
        ("(【3†source】)", "([1])"),
        ("a,【3†source】b", "a,[1]b"),
        ("a【3†source】,b", "a[1],b"),
        ("a【3†source】;b【3†source】:", "a[1];b[1]:"),
        ("«quote»【3†source】!", "«quote»[1]!"),
        ("中文句子【3†source】。下一句", "中文句子[1]。下一句"),
        ("**bold**【3†source】", "**bold**[1]"),
        ("【3†source】 starts", "[1] starts"),
    ],
)
def test_markers_glued_to_punctuation(answer: str, expected: str) -> None:
    assert resolve_citations(answer, sources(3)).text == expected


def test_text_that_only_looks_like_a_marker_is_left_alone() -> None:
    answer = "See [1] and [2, 3] in the list, an array a[12] and the dagger † alone【note】."
    result = resolve_citations(answer, sources(1, 2, 3, 12))
    assert result.text == answer
    assert result.citations == []
    assert result.markers_found == 0


def test_no_markers_and_no_sources() -> None:
    result = resolve_citations("", [])
    assert (result.text, result.citations, result.warnings, result.markers_found) == ("", [], [], 0)


# A long answer citing 27 distinct ids; only 10 of them were registered during the run.
REGISTERED = (2, 4, 7, 9, 12, 15, 21, 26, 31, 40)

ANSWER = """# Heat pumps in cold climates

Heat pumps move heat rather than making it【4†source】. A typical air-source unit delivers \
about three units of heat per unit of electricity【12†source】【33†source】. The principle goes \
back to the 1850s【1】, when Kelvin described it【7†L3-L9】.

Modern cold-climate models keep working far below freezing [9†source], although efficiency \
falls as the outdoor temperature drops【3, 4†source】. Field trials in Norway【５†source】 and in \
Canada【１５†source】 agree (see also【44†source】).【18†source】

- Refrigerants: R-290 has a GWP of about 3【21†source】;
- Noise: outdoor units run at 40–60 dB【6†source】【8†source】;
- Lifespan: 15–20 years with yearly service【26†source】, 【10†source】.

Running costs depend on the price ratio of electricity to gas【31†source】【11】【13†source】. \
Where the ratio is below 3, a heat pump is usually cheaper to run【14†source】; above 4 it \
rarely is【16†source】【17†source】. Subsidies change the picture again【40†source】【19†L1-L2】.

In short: size the unit from a heat-loss calculation【2†source】, not from the old boiler's \
rating【20†source】, insulate first【22†source】, and expect the grid impact to be managed with \
tariffs【2†source】.
"""

EXPECTED = """# Heat pumps in cold climates

Heat pumps move heat rather than making it[1]. A typical air-source unit delivers \
about three units of heat per unit of electricity[2]. The principle goes \
back to the 1850s, when Kelvin described it[3].

Modern cold-climate models keep working far below freezing [4], although efficiency \
falls as the outdoor temperature drops[1]. Field trials in Norway and in \
Canada[5] agree (see also).

- Refrigerants: R-290 has a GWP of about 3[6];
- Noise: outdoor units run at 40–60 dB;
- Lifespan: 15–20 years with yearly service[7].

Running costs depend on the price ratio of electricity to gas[8]. \
Where the ratio is below 3, a heat pump is usually cheaper to run; above 4 it \
rarely is. Subsidies change the picture again[9].

In short: size the unit from a heat-loss calculation[10], not from the old boiler's \
rating, insulate first, and expect the grid impact to be managed with \
tariffs[10].
"""

INVALID_IN_ORDER = [33, 1, 3, 5, 44, 18, 6, 8, 10, 11, 13, 14, 16, 17, 19, 20, 22]

# Independent of the module under test: every marker form the fixture uses.
INPUT_MARKER = re.compile(r"【[^】]*】|\[[0-9０-９,，\s]+†[^\]]*\]")
OUTPUT_MARKER = re.compile(r"\[\d+\]")


def test_long_answer_fixture() -> None:
    cited = {int(n.translate(str.maketrans("０１２３４５６７８９", "0123456789")))
             for marker in INPUT_MARKER.findall(ANSWER)
             for n in re.findall(r"[0-9０-９]+", marker.split("†")[0])}
    assert len(cited) == 27
    assert set(REGISTERED) <= cited

    result = resolve_citations(ANSWER, sources(*REGISTERED))

    assert result.text == EXPECTED
    assert [(c.number, c.source_id) for c in result.citations] == [
        (1, 4), (2, 12), (3, 7), (4, 9), (5, 15), (6, 21), (7, 26), (8, 31), (9, 40), (10, 2)
    ]
    assert result.markers_found == len(INPUT_MARKER.findall(ANSWER)) == 28
    assert result.invalid_ids == INVALID_IN_ORDER
    assert len(result.warnings) == 17
    for source_id, warning in zip(INVALID_IN_ORDER, result.warnings, strict=True):
        assert warning.startswith(f"removed citation to unknown source id {source_id} in: ")
    assert result.warnings[1] == (
        "removed citation to unknown source id 1 in: "
        "'The principle goes back to the 1850s, when Kelvin described it.'"
    )
    assert result.warnings[5] == (
        "removed citation to unknown source id 18 in: "
        "'Field trials in Norway and in Canada agree (see also).'"
    )
    assert result.warnings[8] == (
        "removed citation to unknown source id 10 in: "
        "'- Lifespan: 15–20 years with yearly service, .'"
    )

    # nothing but the markers changed (and the spaces and list commas around removed ones)
    def tidy(text: str) -> str:
        return re.sub(r"[ \t,]", "", text)

    assert tidy(OUTPUT_MARKER.sub("", result.text)) == tidy(INPUT_MARKER.sub("", ANSWER))
    numbers = [int(n) for n in re.findall(r"\[(\d+)\]", result.text)]
    assert sorted(set(numbers)) == list(range(1, 11))
    assert [n for i, n in enumerate(numbers) if n not in numbers[:i]] == list(range(1, 11))


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Otters eat urchins 【9†source】.", "Otters eat urchins."),
        ("Kelp grows【0†source】, 【9†source】.", "Kelp grows[1]."),
        ("A claim 【9†source】 and more 【0†source】.", "A claim and more [1]."),
        ("A line 【9†source】\nnext", "A line\nnext"),
        ("Done. 【9†source】 Next.", "Done. Next."),
    ],
)
def test_removing_an_invalid_citation_leaves_no_stray_space(answer: str, expected: str) -> None:
    assert resolve_citations(answer, sources(0)).text == expected
