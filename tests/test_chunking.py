"""search_backends.chunking: passage boundaries, headings, URLs and titles."""

from __future__ import annotations

import random
import re

import pytest

from rumination.search_backends.chunking import (
    MAX_CHARS,
    MIN_CHARS,
    PIECE_CHARS,
    TAIL_CHARS,
    Chunk,
    passage_titles,
    passage_url,
    split_passages,
)

WORDS = "glacier moraine ablation firn crevasse meltwater albedo calving serac cirque".split()


def sentences(seed: int, count: int) -> str:
    rng = random.Random(seed)
    return " ".join(
        " ".join(rng.choices(WORDS, k=rng.randint(6, 18))).capitalize() + "." for _ in range(count)
    )


def section_doc(sections: int, paragraphs: int = 3) -> str:
    parts = ["# Ice atlas", "", sentences(0, 4)]
    for s in range(1, sections + 1):
        parts += ["", f"## Section {s}"]
        parts += ["\n" + sentences(s * 100 + p, 5) for p in range(paragraphs)]
    return "\n".join(parts)


def words_of(chunks: list[Chunk]) -> list[str]:
    return [w for c in chunks for w in c.text.split()]


def test_a_short_document_is_one_passage() -> None:
    text = "# Owls\n\nOwls hunt at night."
    assert split_passages(text) == [Chunk(text=text, heading="Owls", start=0)]


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t\n"])
def test_a_blank_document_has_no_passages(text: str) -> None:
    assert split_passages(text) == []


@pytest.mark.parametrize("paragraphs", [1, 2, 3, 5])
def test_sections_are_packed_into_passages_that_break_at_line_starts(paragraphs: int) -> None:
    text = section_doc(sections=8, paragraphs=paragraphs)
    chunks = split_passages(text)
    assert len(chunks) > 2
    for chunk in chunks[:-1]:
        assert MIN_CHARS <= len(chunk.text) <= MAX_CHARS
    for chunk in chunks[1:]:
        assert text[chunk.start - 1] == "\n"  # at a heading or a paragraph
        section = re.findall(r"^## (.+)$", text[: chunk.start + 20], re.MULTILINE)[-1]
        assert chunk.heading == section
    assert chunks[0].heading == "Ice atlas"
    assert words_of(chunks) == text.split()  # nothing lost, repeated or cut


def test_short_sections_break_before_a_heading() -> None:
    text = section_doc(sections=8, paragraphs=2)
    chunks = split_passages(text)
    assert all(c.text.startswith("## Section ") for c in chunks[1:])


def test_every_passage_starts_where_its_start_offset_says() -> None:
    text = section_doc(sections=6)
    for chunk in split_passages(text):
        assert text[chunk.start :].lstrip().startswith(chunk.text)


def test_a_long_paragraph_is_cut_at_sentence_ends() -> None:
    text = sentences(7, 200)
    chunks = split_passages(text)
    assert len(chunks) > 5
    assert all(len(c.text) <= MAX_CHARS for c in chunks)
    assert all(c.text.endswith(".") for c in chunks)
    assert words_of(chunks) == text.split()


def test_text_without_sentences_is_cut_between_words() -> None:
    rng = random.Random(3)
    text = " ".join(rng.choices(WORDS, k=3000))
    chunks = split_passages(text)
    assert all(len(c.text) <= MAX_CHARS for c in chunks)
    assert words_of(chunks) == text.split()


def test_a_word_longer_than_a_piece_is_the_only_thing_ever_cut() -> None:
    blob = "QUJD" * 1000  # 4000 characters and no space: it must be cut somewhere
    text = f"Before the blob.\n\n{blob}\n\nAfter the blob."
    chunks = split_passages(text)
    assert "".join(c.text for c in chunks).replace("\n", "").replace(" ", "") == (
        text.replace("\n", "").replace(" ", "")
    )
    assert all(len(c.text) <= MAX_CHARS for c in chunks)


def test_text_in_a_script_without_spaces_is_cut_at_its_sentence_ends() -> None:
    text = "冰川在阿尔卑斯山退缩。" * 400
    chunks = split_passages(text)
    assert len(chunks) > 1
    assert all(c.text.endswith("。") for c in chunks)
    assert "".join(c.text for c in chunks) == text


def test_a_heading_is_never_left_at_the_end_of_a_passage() -> None:
    # the heading joins a passage still under MIN_CHARS, then the next paragraph overflows it
    before, after = sentences(1, 30)[: MIN_CHARS - 10], sentences(2, 30)[:PIECE_CHARS]
    text = f"{before}\n\n## Late heading\n\n{after}"
    chunks = split_passages(text)
    assert len(chunks) == 2
    assert not chunks[0].text.endswith("Late heading")
    assert chunks[1].text.startswith("## Late heading")
    assert chunks[1].heading == "Late heading"


def test_hash_lines_in_code_fences_are_not_headings() -> None:
    code = "```python\n# not a heading\nx = 1\n```"
    text = "# Guide\n\n" + sentences(4, 14) + "\n\n" + code + "\n\n" + sentences(5, 14)
    chunks = split_passages(text)
    assert all(c.heading == "Guide" for c in chunks)


def test_pdf_page_markers_name_the_section() -> None:
    text = "\n\n".join(f"[page {n}]\n{sentences(n, 14)}" for n in range(1, 5))
    chunks = split_passages(text)
    assert len(chunks) > 1
    for chunk in chunks:
        page = re.findall(r"^\[(page \d)\]$", text[: chunk.start + 10], re.MULTILINE)[-1]
        assert chunk.heading == page


def test_a_short_tail_joins_the_passage_before_it() -> None:
    body = sentences(9, 40)
    text = body[: MIN_CHARS + 200] + "\n\n## Coda\n\nThe end."
    chunks = split_passages(text)
    assert len(chunks) == 1
    assert len("## Coda\n\nThe end.") < TAIL_CHARS
    assert chunks[0].text.endswith("The end.")


def test_pieces_always_fit_into_a_passage_under_the_minimum() -> None:
    assert MIN_CHARS + PIECE_CHARS <= MAX_CHARS


@pytest.mark.parametrize(
    ("url", "number", "expected"),
    [
        ("corpus://demo/cop", 1, "corpus://demo/cop"),
        ("corpus://demo/cop", 2, "corpus://demo/cop#passage-2"),
        ("file:///docs/a.md", 12, "file:///docs/a.md#passage-12"),
        ("https://example.org/page#intro", 3, "https://example.org/page#intro&passage-3"),
        ("https://example.org/page#intro", 1, "https://example.org/page#intro"),
    ],
)
def test_passage_urls(url: str, number: int, expected: str) -> None:
    assert passage_url(url, number) == expected


def test_passage_titles() -> None:
    def chunk(heading: str) -> Chunk:
        return Chunk(text="x", heading=heading, start=0)

    assert passage_titles("Ice atlas", [chunk("Ice atlas")]) == ["Ice atlas"]
    assert passage_titles(
        "Ice atlas",
        [chunk("Ice atlas"), chunk("Moraines"), chunk("Moraines"), chunk(""), chunk("Firn")],
    ) == [
        "Ice atlas (part 1)",  # the document's own title is no section
        "Ice atlas — Moraines",
        "Ice atlas — Moraines (part 3)",  # the same heading again: told apart
        "Ice atlas (part 4)",
        "Ice atlas — Firn",
    ]
