"""What only the tantivy engine has: its folder, the order of its two commits, and the
passages an interrupted batch leaves behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from rumination.errors import UsageError
from rumination.reading.documents import ParsedDocument
from rumination.search_backends.chunking import split_passages
from rumination.search_backends.engines.open import engine_of, open_corpus
from rumination.search_backends.local import LocalCorpusBackend

pytest.importorskip("tantivy")

from rumination.search_backends.engines.tantivy_corpus import (  # noqa: E402
    TantivyCorpus,
    is_tantivy_corpus,
)
from rumination.search_backends.engines.tantivy_query import (  # noqa: E402
    ANALYZER,
    ANALYZER_NAME,
)


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "seals.md").write_text("# Seals\n\nGrey seals haul out on sandbanks.", "utf-8")
    (folder / "terns.md").write_text("# Terns\n\nArctic terns fly pole to pole.", "utf-8")
    return folder


def test_a_tantivy_corpus_is_a_folder_the_backend_recognises(tmp_path: Path, docs: Path) -> None:
    path = tmp_path / "corpus"
    corpus = open_corpus(path, engine="tantivy", create=True)
    corpus.index_folder(docs)
    corpus.close()
    assert is_tantivy_corpus(path) and engine_of(path) == "tantivy"
    backend = LocalCorpusBackend(path)
    try:
        assert backend.corpus.engine == "tantivy"
        assert [h.title for h in backend.corpus.search("sandbanks")] == ["Seals"]
    finally:
        backend.corpus.close()


def test_a_folder_that_is_no_corpus_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(UsageError, match="not a tantivy corpus: name a new or empty folder"):
        TantivyCorpus(other, create=True)
    with pytest.raises(UsageError, match="corpus not found"):
        TantivyCorpus(tmp_path / "nothing")
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(UsageError, match="is a file"):
        TantivyCorpus(tmp_path / "file", create=True)


def orphan_free(corpus: TantivyCorpus) -> bool:
    corpus._index.reload()
    return bool(corpus._index.searcher().num_docs == corpus.passage_count())


def test_passages_a_dead_process_left_in_tantivy_are_skipped_then_deleted(
    tmp_path: Path, docs: Path
) -> None:
    import tantivy

    path = tmp_path / "corpus"
    corpus = TantivyCorpus(path, create=True)
    corpus.index_folder(docs)
    corpus.close()
    # what a process killed between the Tantivy commit and the SQLite commit leaves behind
    index = tantivy.Index.open(str(path / "index"))
    index.register_tokenizer(ANALYZER_NAME, ANALYZER)
    writer = index.writer(15_000_000, 1)
    writer.add_document(tantivy.Document(title="Snowy owls", body="Snowy owls eat lemmings.",
                                         document=99, number=1))
    writer.add_document(tantivy.Document(title="Seals", body="Seals, seals and more seals.",
                                         document=100, number=1))
    writer.commit()
    writer.wait_merging_threads()

    corpus = TantivyCorpus(path)
    try:
        assert not orphan_free(corpus)
        assert corpus.search("lemmings") == []  # never shown
        # nor taking the place of a hit: the orphan outranks the real seals, k = 1
        assert [h.title for h in corpus.search("seals", 1)] == ["Seals"]
        assert "haul out" in corpus.search("seals", 1)[0].snippet
        (docs / "owls.md").write_text("# Owls\n\nBarn owls hunt by sound alone.", "utf-8")
        corpus.index_folder(docs)  # the first write deletes it
        assert orphan_free(corpus)
        assert [h.title for h in corpus.search("owls")] == ["Owls"]
    finally:
        corpus.close()


def test_a_failed_sqlite_commit_takes_its_passages_out_of_tantivy(
    tmp_path: Path, docs: Path
) -> None:
    corpus = TantivyCorpus(tmp_path / "corpus", create=True)
    try:
        corpus.index_folder(docs)
        before = corpus.passage_count()
        text = "Snowy owls hunt lemmings on the tundra."
        with pytest.raises(KeyboardInterrupt), corpus.batch():
            corpus.store("key:snowy", ParsedDocument(title="Snowy owls", url="doc://snowy",
                                                     body=text),
                         split_passages(text), digest="d", stamp=None, doc_id="snowy", now="")
            corpus._commit_search_index()  # in Tantivy; then SQLite's commit fails
            raise KeyboardInterrupt
        assert corpus.passage_count() == before
        assert orphan_free(corpus)
        assert corpus.search("lemmings") == []
    finally:
        corpus.close()


@pytest.mark.skipif(not Path("/proc/self/smaps").is_file(), reason="Linux's /proc only")
def test_a_search_advises_random_reads_on_the_doc_store_and_not_the_postings(
    tmp_path: Path, docs: Path,
) -> None:
    corpus = open_corpus(tmp_path / "corpus", engine="tantivy", create=True)
    corpus.index_folder(docs)
    corpus.close()
    corpus = open_corpus(tmp_path / "corpus")
    assert corpus.search("seals")
    flags = mapping_flags(tmp_path / "corpus" / "index")
    corpus.close()
    stores = [f for name, f in flags if name.endswith(".store")]
    postings = [f for name, f in flags if name.endswith(".idx")]
    assert stores and all("rr" in f for f in stores)  # rr: VM_RAND_READ, from MADV_RANDOM
    assert postings and not any("rr" in f for f in postings)


def mapping_flags(folder: Path) -> list[tuple[str, list[str]]]:
    """(file, VmFlags) of each of this process's mappings of a file under `folder`."""
    found: list[tuple[str, list[str]]] = []
    name = None
    for line in Path("/proc/self/smaps").read_text(encoding="utf-8").splitlines():
        head = line.split(maxsplit=5)
        if "-" in head[0] and len(head[0]) > 8 and ":" not in head[0]:
            name = head[5] if len(head) == 6 else None
        elif line.startswith("VmFlags:") and name and name.startswith(str(folder.resolve())):
            found.append((name, line.split()[1:]))
    return found
