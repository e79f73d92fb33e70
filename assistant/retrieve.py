"""Hybrid retrieval: dense (Chroma) + lexical (BM25, French stemming), fused by reciprocal rank.

Usage::

    index = open_index(settings)
    hits = index.search("comment lancer un conseil citoyen ?", k=5)

Only chunks listed in the manifest are returned: vectors left behind by an interrupted ingest are
ignored. The embedding model is loaded on the first dense query, not at opening.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assistant.errors import IndexStateError
from assistant.ingest import LEXICAL_FILE, MANIFEST_FILE, _refresh_lexical
from assistant.settings import Settings
from assistant.store.lexical import Bm25Index, analyse
from assistant.store.manifest import Manifest
from assistant.types import Hit

RRF_K = 60


def rrf(rankings: list[list[str]], k: int = RRF_K) -> dict[str, float]:
    """Reciprocal rank fusion: score(id) = sum over rankings of 1 / (k + rank)."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return scores


@dataclass
class Index:
    """An opened index: manifest, lexical index, and (lazily) the vector store and the embedder."""

    settings: Settings
    index_dir: Path
    manifest: Manifest
    lexical: Bm25Index
    _store: Any = None
    _embedder: Any = None
    ids: set[str] = field(default_factory=set)
    _fallback: Any = None

    @property
    def store(self) -> Any:
        if self._store is None:
            from assistant.store.vector import open_vector_store

            self._store = open_vector_store(self.settings, self.index_dir)
        return self._store

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            from assistant.embedders import get_embedder

            self._embedder = get_embedder(self.settings)
        return self._embedder

    def _dense(self, vector: Any, pool: int) -> list[tuple[str, float]]:
        """Chroma first; if its segment is unreadable (after a crash, until the next ingest repairs
        it), an exact search over the manifest's own vectors."""
        if self._fallback is None:
            try:
                return self.store.query(vector, pool)
            except Exception:  # noqa: BLE001 - chromadb InternalError and friends
                ids, _, vectors = self.manifest.vectors()
                self._fallback = (ids, vectors)
        ids, vectors = self._fallback
        if not ids:
            return []
        scores = vectors @ vector
        order = np.argsort(-scores)[:pool]
        return [(ids[j], float(scores[j])) for j in order]

    def search(self, question: str, k: int = 5, mode: str = "hybrid", pool: int = 30) -> list[Hit]:
        """Top ``k`` hits for ``question``; ``mode`` is ``hybrid``, ``dense`` or ``lexical``."""
        dense: list[tuple[str, float]] = []
        lexical: list[tuple[str, float]] = []
        if mode in ("hybrid", "dense"):
            vector = self.embedder.embed_batch([question], kind="query")[0]
            dense = [(i, s) for i, s in self._dense(vector, pool) if i in self.ids]
        if mode in ("hybrid", "lexical"):
            lexical = self.lexical.search(analyse(question), pool)
        fused = rrf([[i for i, _ in dense], [i for i, _ in lexical]])
        dense_rank = {i: r for r, (i, _) in enumerate(dense, start=1)}
        lex_rank = {i: r for r, (i, _) in enumerate(lexical, start=1)}
        best = sorted(fused, key=lambda i: -fused[i])[:k]
        chunks = self.manifest.get_chunks(best)
        return [Hit(chunks[i], fused[i], dense_rank.get(i), lex_rank.get(i)) for i in best if i in chunks]


def open_index(settings: Settings, index_dir: Path | None = None) -> Index:
    """Open an index built by ``assistant ingest``; a French error says what to run if it is missing."""
    index_dir = index_dir or settings.index_dir
    if not (index_dir / MANIFEST_FILE).exists():
        raise IndexStateError(
            f"Aucun index dans {index_dir}. Construisez-le d'abord : assistant ingest --index {index_dir}"
        )
    manifest = Manifest(index_dir / MANIFEST_FILE)
    _refresh_lexical(manifest, index_dir)
    lexical = Bm25Index.load(index_dir / LEXICAL_FILE)
    if lexical is None:
        raise IndexStateError(f"Index lexical illisible dans {index_dir} : relancez assistant ingest.")
    return Index(settings, index_dir, manifest, lexical, ids=manifest.chunk_ids())
