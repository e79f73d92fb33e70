"""Vector stores behind one ``VectorStore`` protocol; Chroma is the real one.

``ChromaStore`` uses an embedded ``PersistentClient`` in ``index/chroma`` by default, or an
``HttpClient`` when ``ASSISTANT_CHROMA_URL`` is set (the Chroma server for multi-user deployments).
Embeddings are always computed by our embedder and passed in; Chroma never embeds.

Usage::

    store = open_vector_store(settings)
    store.add(ids, vectors, metadatas)
    store.query(vector, k=10)   # -> [(id, similarity)], best first
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import numpy as np

from assistant.errors import IndexStateError
from assistant.settings import Settings
from assistant.store.lexical import strip_accents

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


class VectorStore(Protocol):
    """The operations the ingester and the retriever need. Every store passes tests/test_store_contract.py."""

    def add(self, ids: list[str], vectors: np.ndarray, metadatas: list[dict[str, Any]]) -> None: ...
    def delete(self, ids: list[str]) -> None: ...
    def ids(self) -> set[str]: ...
    def count(self) -> int: ...
    def query(self, vector: np.ndarray, k: int, where: dict[str, Any] | None = None) -> list[tuple[str, float]]: ...
    def reset(self) -> None: ...


def slug(text: str) -> str:
    """« Pyrénées-Atlantiques » -> « pyrenees_atlantiques » (metadata keys and filter values)."""
    return re.sub(r"[^a-z0-9]+", "_", strip_accents(text.lower())).strip("_")


def flat_metadata(meta: dict[str, Any]) -> dict[str, str | int | float | bool]:
    """Chroma keeps scalars only: lists become ``a; b`` strings, ``None`` values are dropped, and
    list values that filters need get one boolean flag each (``echelle_quartier``, ``theme_eau``)."""
    out: dict[str, str | int | float | bool] = {}
    for value in meta.get("echelle") or []:
        out[f"echelle_{slug(str(value))}"] = True
    for value in meta.get("themes") or []:
        out[f"theme_{slug(str(value))}"] = True
    if meta.get("departement"):
        out["departement_slug"] = slug(str(meta["departement"]))
    for key, value in meta.items():
        if value is None:
            continue
        if isinstance(value, list | tuple):
            out[key] = "; ".join(str(v) for v in value)
        elif isinstance(value, str | int | float | bool):
            out[key] = value
        else:
            out[key] = str(value)
    return out


class ChromaStore:
    """Chroma collection with cosine distance; similarity = 1 - distance."""

    BATCH = 1000

    def __init__(self, client: Any, name: str) -> None:
        self.client = client
        self.name = name
        self.collection = self._open()

    def _open(self) -> Any:
        return self.client.get_or_create_collection(
            self.name, embedding_function=None, metadata={"hnsw:space": "cosine"}
        )

    @classmethod
    def from_settings(cls, settings: Settings, index_dir: Path) -> ChromaStore:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=True)
        if settings.chroma_url:
            url = urlparse(settings.chroma_url)
            try:
                client = chromadb.HttpClient(
                    host=url.hostname or "localhost", port=url.port or (443 if url.scheme == "https" else 8000),
                    ssl=url.scheme == "https", settings=chroma_settings,
                )
                client.heartbeat()
            except Exception as exc:  # noqa: BLE001 - network errors of several kinds
                raise IndexStateError(
                    f"Serveur Chroma injoignable à {settings.chroma_url} ({exc.__class__.__name__}). "
                    "Vérifiez qu'il tourne (« chroma run ») ou videz ASSISTANT_CHROMA_URL pour le mode embarqué."
                ) from None
        else:
            path = index_dir / "chroma"
            path.mkdir(parents=True, exist_ok=True)
            client = chromadb.PersistentClient(path=str(path), settings=chroma_settings)
        return cls(client, settings.chroma_collection)

    def add(self, ids: list[str], vectors: np.ndarray, metadatas: list[dict[str, Any]]) -> None:
        for start in range(0, len(ids), self.BATCH):
            end = start + self.BATCH
            self.collection.upsert(
                ids=ids[start:end],
                embeddings=np.asarray(vectors[start:end], dtype=np.float32),
                metadatas=[flat_metadata(m) for m in metadatas[start:end]],
            )

    def delete(self, ids: list[str]) -> None:
        for start in range(0, len(ids), self.BATCH):
            self.collection.delete(ids=ids[start : start + self.BATCH])

    def ids(self) -> set[str]:
        out: set[str] = set()
        offset = 0
        while True:
            got = self.collection.get(include=[], limit=5000, offset=offset)["ids"]
            out.update(got)
            if len(got) < 5000:
                return out
            offset += len(got)

    def count(self) -> int:
        return int(self.collection.count())

    def query(self, vector: np.ndarray, k: int, where: dict[str, Any] | None = None) -> list[tuple[str, float]]:
        n = self.count()
        if n == 0:
            return []
        res = self.collection.query(
            query_embeddings=[np.asarray(vector, dtype=np.float32)], n_results=min(k, n),
            where=where or None, include=["distances"],
        )
        return [(i, 1.0 - float(d)) for i, d in zip(res["ids"][0], res["distances"][0], strict=True)]

    def reset(self) -> None:
        try:
            self.client.delete_collection(self.name)
        except Exception:  # noqa: BLE001 - absent collection
            pass
        self.collection = self._open()


class MemoryStore:
    """Brute-force in-memory store (exact cosine). Used to check the store contract, and by tests."""

    def __init__(self) -> None:
        self.vectors: dict[str, np.ndarray] = {}
        self.metadatas: dict[str, dict[str, Any]] = {}

    def add(self, ids: list[str], vectors: np.ndarray, metadatas: list[dict[str, Any]]) -> None:
        for i, v, m in zip(ids, vectors, metadatas, strict=True):
            self.vectors[i] = np.asarray(v, dtype=np.float32)
            self.metadatas[i] = flat_metadata(m)

    def delete(self, ids: list[str]) -> None:
        for i in ids:
            self.vectors.pop(i, None)
            self.metadatas.pop(i, None)

    def ids(self) -> set[str]:
        return set(self.vectors)

    def count(self) -> int:
        return len(self.vectors)

    def query(self, vector: np.ndarray, k: int, where: dict[str, Any] | None = None) -> list[tuple[str, float]]:
        def ok(meta: dict[str, Any], clause: dict[str, Any] | None = where) -> bool:
            clause = clause or {}
            if "$and" in clause:
                return all(ok(meta, part) for part in clause["$and"])
            return all(meta.get(key) == value for key, value in clause.items())

        scored = [(i, float(np.dot(v, vector))) for i, v in self.vectors.items() if ok(self.metadatas[i])]
        return sorted(scored, key=lambda x: -x[1])[:k]

    def reset(self) -> None:
        self.vectors.clear()
        self.metadatas.clear()


def open_vector_store(settings: Settings, index_dir: Path) -> VectorStore:
    """Chroma, embedded in ``index_dir`` or on the configured server."""
    return ChromaStore.from_settings(settings, index_dir)
