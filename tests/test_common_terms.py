"""Words common in a corpus are left out of its ranked search (search_backends/common_terms)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rumination.search_backends.common_terms import MIN_PASSAGES, rarer_terms
from rumination.search_backends.corpus import Corpus

COUNTS = {'"everywhere"': 600, '"often"': 300, '"seldom"': 20, '"ice sheet"': 900, '"ic"*': 990}


def test_plain_words_in_more_than_a_third_of_the_passages_are_left_out() -> None:
    terms = ['"everywhere"', '"often"', '"seldom"']
    assert rarer_terms(terms, 1000, COUNTS.__getitem__) == ['"often"', '"seldom"']
    assert rarer_terms(terms, 2000, COUNTS.__getitem__) == terms  # 600 of 2000 is not common


def test_phrases_and_prefixes_are_kept_however_common() -> None:
    terms = ['"ice sheet"', '"ic"*', '"everywhere"', '"seldom"']
    assert rarer_terms(terms, 1000, COUNTS.__getitem__) == ['"ice sheet"', '"ic"*', '"seldom"']


def test_a_query_of_common_words_only_keeps_them_all() -> None:
    assert rarer_terms(['"everywhere"'], 1000, COUNTS.__getitem__) == ['"everywhere"']


def test_common_words_stay_when_the_rest_match_nothing() -> None:
    counts = {**COUNTS, '"nowhere"': 0}
    assert rarer_terms(['"everywhere"', '"nowhere"'], 1000, counts.__getitem__) == [
        '"everywhere"', '"nowhere"']
    assert rarer_terms(['"everywhere"', '"nowhere"', '"seldom"'], 1000, counts.__getitem__) == [
        '"nowhere"', '"seldom"']


def test_a_small_corpus_is_searched_with_every_term() -> None:
    def never(term: str) -> int:
        raise AssertionError(f"counted {term} in a small corpus")

    assert rarer_terms(['"everywhere"', '"seldom"'], MIN_PASSAGES - 1, never) == [
        '"everywhere"', '"seldom"']


def write_docs(folder: Path, first: int, count: int, text: str) -> None:
    folder.mkdir(exist_ok=True)
    for number in range(first, first + count):
        (folder / f"note{number}.txt").write_text(text.format(number=number), encoding="utf-8")


@pytest.fixture
def big_corpus(tmp_path: Path) -> Corpus:
    """MIN_PASSAGES + 200 one-passage documents: every one says "moraine", ten say "firn"."""
    docs = tmp_path / "docs"
    write_docs(docs, 0, MIN_PASSAGES + 190, "Field note {number}: the moraine was mapped.")
    write_docs(docs, MIN_PASSAGES + 190, 10,
               "Field note {number}: the moraine lies under firn, firn and more firn.")
    corpus = Corpus(tmp_path / "corpus.db", create=True)
    corpus.index_folder(docs)
    return corpus


def test_a_corpus_search_ranks_by_the_rarer_words(big_corpus: Corpus) -> None:
    both = big_corpus.search("moraine firn", limit=20)
    assert len(both) == 10  # the documents with "moraine" alone are not ranked at all
    assert [h.url for h in both] == [h.url for h in big_corpus.search("firn", limit=20)]
    assert len(big_corpus.search("moraine", limit=20)) == 20  # alone, the word still finds
    assert len(big_corpus.search("moraine firnn", limit=20)) == 20  # so it does beside a typo
    big_corpus.close()


def test_counts_are_forgotten_when_another_connection_changes_the_corpus(
    big_corpus: Corpus, tmp_path: Path
) -> None:
    counts = big_corpus._term_counts
    assert (counts.passages(), counts.matches('"firn"')) == (MIN_PASSAGES + 200, 10)
    other = Corpus(big_corpus.path)
    write_docs(tmp_path / "docs", MIN_PASSAGES + 200, 5, "Note {number}: firn.")
    other.index_folder(tmp_path / "docs")
    other.close()
    assert (counts.passages(), counts.matches('"firn"')) == (MIN_PASSAGES + 205, 15)
    write_docs(tmp_path / "docs", MIN_PASSAGES + 205, 1, "Note {number}: firn.")
    big_corpus.index_folder(tmp_path / "docs")  # its own commit: data_version stays
    assert (counts.passages(), counts.matches('"firn"')) == (MIN_PASSAGES + 206, 16)
    big_corpus.close()


def segments(corpus: Corpus) -> int:
    return int(corpus._db.execute(
        "SELECT count(DISTINCT segid) FROM passages_fts_idx").fetchone()[0])


def test_an_index_run_that_wrote_much_of_the_corpus_leaves_one_segment(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    write_docs(docs, 0, 450, "Note {number}: firn.")  # 3 transactions of COMMIT_EVERY files
    corpus = Corpus(tmp_path / "corpus.db", create=True)
    corpus.index_folder(docs)
    assert segments(corpus) == 1
    write_docs(docs, 450, 1, "Note {number}: firn.")  # a small change: no merge
    corpus.index_folder(docs)
    assert segments(corpus) == 2
    corpus.close()
