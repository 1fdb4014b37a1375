"""rumination.support.figures.compute_figures on a known answer, and its helpers."""

from __future__ import annotations

from rumination.llm.tokens import estimate_tokens
from rumination.models import ReportFigures, Source
from rumination.support.citations import resolve_citations
from rumination.support.figures import compute_figures, count_words, paragraphs

RAW = """# Heat pumps

They move heat【3†source】 and work in the cold【5†source】【3†source】.

No citation here.

- Item one【99†source】
- Item two【5】

| Outdoor | COP |
|---|---|
| 7 °C | 3.5【42†source】 |

```
code [1] is not a paragraph
```

## Summary

Done【3, 77†source】.
"""


def sources(*ids: int) -> list[Source]:
    return [Source(source_id=i, url=f"https://example.org/{i}", title=f"T{i}") for i in ids]


def test_figures_of_a_known_answer() -> None:
    seen = sources(3, 5, 8)
    resolved = resolve_citations(RAW, seen)
    assert "They move heat[1] and work in the cold[2][1]." in resolved.text

    figures = compute_figures(resolved.text, resolved, seen)

    assert figures == ReportFigures(
        citations=5,  # [1] [2] [1] in the first paragraph, [2] in a list item, [1] at the end
        distinct_sources_cited=2,
        sources_not_cited=1,  # source 8
        invalid_ids=3,  # 99, 42, 77
        citations_removed=3,
        cited_paragraph_share=0.5,  # 3 of: paragraph, paragraph, item, item, table, paragraph
        # Heat pumps | They move heat and work in the cold | No citation here | Item one |
        # Item two | Outdoor COP 7 C 3.5 | code is not a paragraph | Summary | Done
        words=2 + 8 + 3 + 2 + 2 + 5 + 5 + 1 + 1,
        tokens_estimate=estimate_tokens(resolved.text),  # the estimate the context budget uses
    )


def test_the_same_invalid_id_twice_counts_once_as_an_id_and_twice_as_removed() -> None:
    text = "A【7†source】. B【7†source】. C【1†source】."
    resolved = resolve_citations(text, sources(1))
    figures = compute_figures(resolved.text, resolved, sources(1))
    assert (figures.invalid_ids, figures.citations_removed, figures.citations) == (1, 2, 1)
    assert figures.cited_paragraph_share == 1.0


def test_literal_brackets_that_are_not_citations_are_not_counted() -> None:
    resolved = resolve_citations("An array a[7] and a link [1](https://x.org)【2†source】.",
                                 sources(2))
    figures = compute_figures(resolved.text, resolved, sources(2))
    assert figures.citations == 1


def test_empty_answer() -> None:
    resolved = resolve_citations("", sources(1, 2))
    figures = compute_figures("", resolved, sources(1, 2))
    assert figures == ReportFigures(sources_not_cited=2)


def test_paragraph_units() -> None:
    text = "# H\nIntro line\ncontinued.\n\n1. one\n   more of one\n2. two\n\n---\n\n> quote"
    assert paragraphs(text) == ["Intro line\ncontinued.", "1. one\n   more of one", "2. two",
                                "> quote"]


def test_words_for_cjk_and_latin_text() -> None:
    assert count_words("热泵在寒冷气候中表现良好。COP is 3.5, it's fine.") == 12 + 5
    # one word per kana or ideograph; CJK punctuation and fullwidth forms are no words
    assert count_words("「ヒートポンプ」は、寒い日も動く。") == 6 + 1 + 2 + 2 + 2
    assert count_words("（ＣＯＰ）") == 0
