"""The manifest: which files the index holds, with their content hash and chunk ids (SQLite, or
PostgreSQL when ``ASSISTANT_DATABASE_URL`` is set; see ``assistant.store.state``).

The database gives atomic transactions, so the manifest is always in a consistent state even when
the ingester is killed. The manifest is the source of truth: a vector in Chroma whose id is not in the
manifest is ignored by retrieval and removed by the next ingest.

Tables: ``meta(key, value)``, ``files(path, hash, size, mtime_ns, status, error, n_chunks)``,
``chunks(id, path, ordinal, text, embed_text, metadata, terms, vector)``.

``generation`` goes up at each commit; ``published`` is the generation of the last ingest that
finished: replicas serve a published generation and switch when it changes.

The vectors are kept here too (float32 blobs): Chroma is a derived index that can be rebuilt from
the manifest without re-embedding, e.g. after a crash left its HNSW segment unreadable.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assistant.store.db import Database, migrate
from assistant.types import Chunk

SCHEMA_VERSION = "3"
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, hash TEXT NOT NULL, size BIGINT NOT NULL, mtime_ns BIGINT NOT NULL,
    status TEXT NOT NULL, error TEXT, n_chunks INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS chunks (
    id TEXT PRIMARY KEY, path TEXT NOT NULL, ordinal INTEGER NOT NULL, text TEXT NOT NULL,
    embed_text TEXT NOT NULL, metadata TEXT NOT NULL, terms TEXT NOT NULL, vector BLOB
);
CREATE INDEX IF NOT EXISTS chunks_path ON chunks(path);
"""
# migration steps of the manifest's tables (assistant.store.db.migrate); append, never edit
MIGRATIONS = [SCHEMA]
UPSERT_FILE = ("INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(path) DO UPDATE SET hash=excluded.hash, "
               "size=excluded.size, mtime_ns=excluded.mtime_ns, status=excluded.status, error=excluded.error, "
               "n_chunks=excluded.n_chunks")
UPSERT_CHUNK = ("INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET path=excluded.path, "
                "ordinal=excluded.ordinal, text=excluded.text, embed_text=excluded.embed_text, "
                "metadata=excluded.metadata, terms=excluded.terms, vector=excluded.vector")


@dataclass
class FileRecord:
    path: str
    hash: str
    size: int
    mtime_ns: int
    status: str
    error: str | None
    n_chunks: int


class Manifest:
    """The manifest's tables in one ``Database`` (a path opens ``index/manifest.sqlite``)."""

    def __init__(self, db: Database | Path) -> None:
        if isinstance(db, Path):
            from assistant.store.db import connect_sqlite

            db = connect_sqlite(db)
        self.db = db
        migrate(db, "manifest", MIGRATIONS)

    def close(self) -> None:
        self.db.close()

    def pin(self) -> None:
        """Read from a snapshot: this connection keeps seeing the manifest as it is now, while another
        one (an ingest, here or on another replica) commits. A served index is pinned, so that
        answers come from one consistent generation. ``unpin`` (or ``close``) ends it."""
        self.db.pin()

    def unpin(self) -> None:
        self.db.unpin()

    # --- meta -----------------------------------------------------------------------------------
    def get(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def set(self, key: str, value: str) -> None:
        """Write one meta value; on a pinned connection the write goes through a short second one, so
        that the snapshot is kept and no write lock is held while serving."""
        if self.db.pinned:
            side = self.db.clone()
            try:
                Manifest(side).set(key, value)
            finally:
                side.close()
            return
        self.db.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                        (key, value))

    @property
    def generation(self) -> int:
        return int(self.get("generation", "0") or 0)

    @property
    def published(self) -> int:
        """The generation of the last finished ingest (an index older than this key: ``generation``)."""
        value = self.get("published")
        return int(value) if value else self.generation

    def publish(self) -> int:
        """Mark the current generation as the one to serve (end of a successful ingest)."""
        generation = self.generation
        self.set("published", str(generation))
        return generation

    # --- files ----------------------------------------------------------------------------------
    def files(self) -> dict[str, FileRecord]:
        rows = self.db.execute("SELECT path, hash, size, mtime_ns, status, error, n_chunks FROM files")
        return {r[0]: FileRecord(*r) for r in rows}

    def chunk_ids(self, path: str | None = None) -> set[str]:
        if path is None:
            return {r[0] for r in self.db.execute("SELECT id FROM chunks")}
        return {r[0] for r in self.db.execute("SELECT id FROM chunks WHERE path=?", (path,))}

    def count_chunks(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])

    def touch(self, path: str, size: int, mtime_ns: int) -> None:
        self.db.execute("UPDATE files SET size=?, mtime_ns=? WHERE path=?", (size, mtime_ns, path))

    def commit_files(
        self, records: Iterable[tuple[FileRecord, list[Chunk], list[list[str]], list[bytes]]]
    ) -> None:
        """Replace, in ONE transaction, the rows of several files and their chunks."""
        with self.transaction():
            for record, chunks, terms, vectors in records:
                self.db.execute("DELETE FROM chunks WHERE path=?", (record.path,))
                self.db.execute(
                    UPSERT_FILE,
                    (record.path, record.hash, record.size, record.mtime_ns, record.status,
                     record.error, record.n_chunks),
                )
                self.db.executemany(
                    UPSERT_CHUNK,
                    [
                        (c.id, record.path, c.metadata.get("ordinal", 0), c.text, c.embed_text,
                         json.dumps(c.metadata, ensure_ascii=False), " ".join(t), v)
                        for c, t, v in zip(chunks, terms, vectors, strict=True)
                    ],
                )
            self._bump()

    def remove_files(self, paths: list[str]) -> None:
        with self.transaction():
            for path in paths:
                self.db.execute("DELETE FROM chunks WHERE path=?", (path,))
                self.db.execute("DELETE FROM files WHERE path=?", (path,))
            self._bump()

    def start_rebuild(self, fingerprint: str) -> None:
        """One transaction: forget every file, record the new fingerprint, and mark the vector store
        for reset (done by the next step of the ingest, even after a crash)."""
        with self.transaction():
            self.db.execute("DELETE FROM chunks")
            self.db.execute("DELETE FROM files")
            self.set("fingerprint", fingerprint)
            self.set("store_reset_pending", "1")
            self._bump()

    def _bump(self) -> None:
        self.set("generation", str(self.generation + 1))

    def transaction(self) -> Any:
        return self.db.transaction()

    # --- chunks -----------------------------------------------------------------------------------
    def iter_terms(self) -> Iterator[tuple[str, list[str]]]:
        for chunk_id, terms in self.db.execute("SELECT id, terms FROM chunks ORDER BY path, ordinal"):
            yield chunk_id, terms.split()

    def iter_texts(self) -> Iterator[str]:
        for (text,) in self.db.execute("SELECT embed_text FROM chunks"):
            yield text

    def get_chunks(self, ids: list[str]) -> dict[str, Chunk]:
        out: dict[str, Chunk] = {}
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ",".join("?" * len(part))
            for cid, text, embed_text, meta in self.db.execute(
                f"SELECT id, text, embed_text, metadata FROM chunks WHERE id IN ({marks})", part  # noqa: S608
            ):
                out[cid] = Chunk(cid, text, embed_text, json.loads(meta))
        return out

    def vectors(self) -> tuple[list[str], list[dict[str, Any]], np.ndarray]:
        """All chunk ids, metadata and vectors (to rebuild the vector store or search without it)."""
        ids, metas, rows = [], [], []
        for cid, meta, blob in self.db.execute("SELECT id, metadata, vector FROM chunks ORDER BY path, ordinal"):
            ids.append(cid)
            metas.append(json.loads(meta))
            rows.append(np.frombuffer(blob, dtype=np.float32))
        return ids, metas, np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)

    def all_metadata(self) -> dict[str, dict[str, Any]]:
        return {cid: json.loads(m) for cid, m in self.db.execute("SELECT id, metadata FROM chunks")}
