"""Chunking, retrieval with the bundled embedding model, the BM25 fallback and the on-disk cache."""

import pytest

import tunesmith.baselines.rag as rag
from tunesmith.baselines.rag import Retriever, TextIndex, chunk_text, read_documents

DOCS = {
    "joins.md": "A JOIN combines rows from two tables using a related column between them.",
    "cats.md": "Cats are small domesticated felines that purr and chase mice.",
    "weather.md": "Tomorrow brings heavy rain and strong winds along the coast.",
}


@pytest.fixture
def docs(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text)
    (folder / "image.png").write_bytes(b"\x89PNG\x00\xff")
    return folder


def test_chunking_merges_paragraphs_and_splits_long_ones():
    assert chunk_text("one\n\ntwo\n\n\nthree", max_chars=100) == ["one\n\ntwo\n\nthree"]
    assert chunk_text("aaaa\n\nbbbb\n\ncccc", max_chars=10) == ["aaaa\n\nbbbb", "cccc"]
    long_para = "\n".join(f"line {i:02d}" for i in range(6))  # 6 lines of 7 chars, one paragraph
    assert chunk_text(long_para, max_chars=16) == ["line 00\nline 01", "line 02\nline 03", "line 04\nline 05"]
    assert chunk_text("x" * 25, max_chars=10) == ["x" * 10, "x" * 10, "x" * 5]
    assert chunk_text("\n\n  \n") == []


def test_read_documents_skips_non_text_and_complains_about_empty_folders(docs, tmp_path):
    assert [name for name, _ in read_documents(docs)] == ["cats.md", "joins.md", "weather.md"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no text files"):
        read_documents(tmp_path / "empty")


def test_bm25_backend_finds_the_lexical_match(docs, monkeypatch):
    monkeypatch.setenv("TUNESMITH_RETRIEVER", "bm25")
    retriever = Retriever(docs)
    assert retriever.backend == "bm25"
    assert retriever.retrieve("why do cats purr", k=1)[0].source == "cats.md"


def test_embedding_backend_finds_the_semantic_match_and_caches_vectors(docs, tmp_path, monkeypatch):
    monkeypatch.delenv("TUNESMITH_RETRIEVER", raising=False)
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    retriever = Retriever(docs)
    assert retriever.backend == "embedding", retriever.index.fallback_reason
    # no word in common with the joins document: only meaning connects them
    assert retriever.retrieve("How do I merge records of 2 tables in SQL?", k=1)[0].source == "joins.md"
    assert len(list((tmp_path / "cache" / "rag").glob("*.npy"))) == 1
    calls = []
    monkeypatch.setattr(rag, "embed", lambda model, texts: calls.append(len(texts)) or rag.np.zeros((1, 384)))
    TextIndex([c.text for c in retriever.chunks])  # same content: vectors come from the cache
    assert calls == []


def test_falls_back_to_bm25_when_the_embedding_model_cannot_load(monkeypatch):
    monkeypatch.delenv("TUNESMITH_RETRIEVER", raising=False)

    def broken():
        raise ImportError("no sentence-transformers")

    monkeypatch.setattr(rag, "load_embedder", broken)
    index = TextIndex(["alpha beta", "gamma delta"])
    assert index.backend == "bm25" and "no sentence-transformers" in index.fallback_reason
    assert index.search("gamma", 1)[0][0] == 1
