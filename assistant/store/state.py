"""Where the index's state is kept: the one place that knows it.

The state is the manifest (files, passages, their lexical terms and vectors, generations), the
served answers with their feedback, the staff tab's eval jobs, and the ingest lock. Two
implementations of one small interface, ``StateStore``:

- ``SqliteState`` (default, embedded): ``index/manifest.sqlite``, ``index/feedback.sqlite`` (or
  ``ASSISTANT_FEEDBACK_DB``), the BM25 cache ``index/lexical.pkl`` and ``index/ingest.lock``
  (``flock``, released by the kernel when the holder dies).
- ``PostgresState`` (``ASSISTANT_DATABASE_URL=postgresql://…``), shared by every replica: the same
  tables in PostgreSQL; each replica builds its BM25 in memory from the terms; the ingest lock is a
  session advisory lock (released by the server when the holder's connection dies, SIGKILL included),
  so only one ingest runs at a time across replicas.

Readers serve a *published* generation (``Manifest.publish`` at the end of each successful
ingest); ``published_generation()`` is the cheap poll that replicas use to switch to a new one.

Usage::

    state = open_state(settings)
    manifest = state.manifest()           # a new connection (close it)
    lexical = state.lexical(manifest)     # Bm25Index of the manifest's current generation
    with state.ingest_lock().held(wait=False):
        ...
    state.published_generation()          # -> int, changes when an ingest finishes
    state.feedback(), state.eval_jobs()
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from assistant.errors import IndexStateError
from assistant.settings import Settings
from assistant.store.db import PostgresDatabase, connect_postgres, describe_url, lock_key
from assistant.store.feedback import EvalJobLog, FeedbackStore
from assistant.store.lexical import WORDS_VERSION, Bm25Index, compound_words, surface_words
from assistant.store.lock import IndexLock, IngestBusy
from assistant.store.manifest import Manifest

MANIFEST_FILE = "manifest.sqlite"
LEXICAL_FILE = "lexical.pkl"


class IngestLock(Protocol):
    def acquire(self, wait: bool = True, timeout: float | None = None) -> None: ...
    def release(self) -> None: ...
    def locked(self) -> bool: ...
    def holder(self) -> dict[str, Any] | None: ...
    def held(self, wait: bool = True, timeout: float | None = None) -> Any: ...


class StateStore(Protocol):
    """What the ingester, the retriever and the web app need of the state; every implementation
    passes tests/test_state_contract.py."""

    kind: str
    label: str

    def exists(self) -> bool: ...
    def manifest(self) -> Manifest: ...
    def lexical(self, manifest: Manifest) -> Bm25Index: ...
    def published_generation(self) -> int: ...
    def ingest_lock(self) -> IngestLock: ...
    def feedback(self) -> FeedbackStore: ...
    def eval_jobs(self) -> EvalJobLog: ...
    def notify_published(self, generation: int) -> None: ...


def build_lexical(manifest: Manifest) -> Bm25Index:
    """BM25 of the manifest's passages (its current generation), with the corpus words that the
    typo corrector knows."""
    ids, docs = [], []
    for chunk_id, terms in manifest.iter_terms():
        ids.append(chunk_id)
        docs.append(terms)
    index = Bm25Index.build(ids, docs, generation=manifest.generation)
    words: Counter[str] = Counter()
    compounds: Counter[str] = Counter()
    for text in manifest.iter_texts():
        words.update(surface_words(text))
        compounds.update(compound_words(text))
    index.words = dict(words)
    # the most frequent hyphenation of each compound, keyed by its hyphen-less spelling
    for compound, _ in compounds.most_common()[::-1]:
        index.compounds[compound.replace("-", "")] = compound
    index.words_version = WORDS_VERSION
    return index


class SqliteState:
    """Embedded state in the index folder (the default)."""

    kind = "sqlite"

    def __init__(self, index_dir: Path, feedback_path: Path | None = None) -> None:
        self.index_dir = index_dir
        self.feedback_path = feedback_path or index_dir / "feedback.sqlite"
        self.label = str(index_dir)

    def exists(self) -> bool:
        return (self.index_dir / MANIFEST_FILE).exists()

    def manifest(self) -> Manifest:
        return Manifest(self.index_dir / MANIFEST_FILE)

    def lexical(self, manifest: Manifest) -> Bm25Index:
        """From the cache ``lexical.pkl`` when it is of this generation, else rebuilt and cached."""
        path = self.index_dir / LEXICAL_FILE
        generation = manifest.generation
        cached = Bm25Index.load(path) if path.exists() else None
        if cached is not None and cached.generation == generation and cached.words_version == WORDS_VERSION:
            return cached
        index = build_lexical(manifest)
        try:
            index.save(path)
        except OSError:
            pass  # a read-only index folder: serve from memory
        return index

    def published_generation(self) -> int:
        """Read-only, without creating or migrating anything (polled every few seconds)."""
        value = read_meta(self.index_dir, None, "published") or read_meta(self.index_dir, None, "generation")
        return int(value) if value else 0

    def ingest_lock(self) -> IndexLock:
        return IndexLock(self.index_dir)

    def feedback(self) -> FeedbackStore:
        return FeedbackStore(self.feedback_path)

    def eval_jobs(self) -> EvalJobLog:
        from assistant.store.db import connect_sqlite

        return EvalJobLog(connect_sqlite(self.feedback_path))

    def notify_published(self, generation: int) -> None:
        return None  # replicas of an embedded index poll the file


class AdvisoryLock:
    """One ingest at a time across replicas: ``pg_try_advisory_lock`` on a dedicated connection.
    The server releases it when that connection ends (process killed, machine gone). Who holds it
    is written in ``meta`` (key ``ingest_holder``) for the French message of ``IngestBusy``."""

    POLL_S = 0.5

    def __init__(self, url: str, name: str, label: str) -> None:
        self.url, self.key, self.label = url, lock_key("ingest:" + name), label
        self._db: PostgresDatabase | None = None
        self._depth = 0

    def _holder_db(self) -> PostgresDatabase:
        return connect_postgres(self.url)

    def holder(self) -> dict[str, Any] | None:
        db = self._holder_db()
        try:
            row = db.execute("SELECT value FROM meta WHERE key=?", ("ingest_holder",)).fetchone()
        except Exception:  # noqa: BLE001 - no manifest yet
            return None
        finally:
            db.close()
        try:
            data = json.loads(row[0]) if row else None
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def locked(self) -> bool:
        if self._db is not None:
            return True
        db = self._holder_db()
        try:
            if db.execute("SELECT pg_try_advisory_lock(?)", (self.key,)).fetchone()[0]:
                db.execute("SELECT pg_advisory_unlock(?)", (self.key,))
                return False
            return True
        finally:
            db.close()

    def acquire(self, wait: bool = True, timeout: float | None = None) -> None:
        if self._db is not None:
            self._depth += 1
            return
        db = connect_postgres(self.url)
        deadline = None if timeout is None else time.monotonic() + timeout
        while not db.execute("SELECT pg_try_advisory_lock(?)", (self.key,)).fetchone()[0]:
            if not wait or (deadline is not None and time.monotonic() >= deadline):
                db.close()
                raise IngestBusy(self.label, self.holder())  # type: ignore[arg-type]
            time.sleep(self.POLL_S)
        self._db, self._depth = db, 1
        info = {"pid": os.getpid(), "started": time.time(), "command": " ".join(sys.argv[:3]),
                "host": os.uname().nodename}
        try:
            db.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                       ("ingest_holder", json.dumps(info)))
        except Exception:  # noqa: BLE001 - first ingest: the manifest's tables are created after the lock
            pass

    def release(self) -> None:
        if self._db is None:
            return
        self._depth -= 1
        if self._depth > 0:
            return
        db, self._db = self._db, None
        try:
            db.execute("SELECT pg_advisory_unlock(?)", (self.key,))
        except Exception:  # noqa: BLE001, S110 - a lost connection released it already
            pass
        finally:
            db.close()

    @contextmanager
    def held(self, wait: bool = True, timeout: float | None = None) -> Iterator[AdvisoryLock]:
        self.acquire(wait=wait, timeout=timeout)
        try:
            yield self
        finally:
            self.release()


class PostgresState:
    """State shared by replicas in PostgreSQL (``ASSISTANT_DATABASE_URL``)."""

    kind = "postgresql"
    CHANNEL = "assistant_published"

    def __init__(self, url: str, collection: str, retry_s: float | None = None) -> None:
        self.url, self.collection, self.retry_s = url, collection, retry_s
        self.label = f"PostgreSQL {describe_url(url)}"

    def _db(self) -> PostgresDatabase:
        return connect_postgres(self.url, self.retry_s)

    def exists(self) -> bool:
        db = self._db()
        try:
            return db.execute("SELECT to_regclass('public.chunks') IS NOT NULL").fetchone()[0] is True
        finally:
            db.close()

    def manifest(self) -> Manifest:
        return Manifest(self._db())

    def lexical(self, manifest: Manifest) -> Bm25Index:
        return build_lexical(manifest)  # in memory: nothing on this replica's disk

    def published_generation(self) -> int:
        db = self._db()
        try:
            if db.execute("SELECT to_regclass('public.meta') IS NULL").fetchone()[0]:
                return 0
            rows = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('published', 'generation')").fetchall())
            return int(rows.get("published") or rows.get("generation") or 0)
        finally:
            db.close()

    def ingest_lock(self) -> AdvisoryLock:
        return AdvisoryLock(self.url, self.collection, f"la base {self.label}")

    def feedback(self) -> FeedbackStore:
        return FeedbackStore(self._db())

    def eval_jobs(self) -> EvalJobLog:
        return EvalJobLog(self._db())

    def notify_published(self, generation: int) -> None:
        db = self._db()
        try:
            db.notify(self.CHANNEL, str(generation))
        finally:
            db.close()


def open_state(settings: Settings, index_dir: Path | None = None) -> StateStore:
    """The state of the configured index: PostgreSQL when ``ASSISTANT_DATABASE_URL`` is set, else
    SQLite files in ``index_dir`` (default ``settings.index_dir``)."""
    if settings.database_url:
        return PostgresState(settings.database_url, settings.chroma_collection, settings.db_retry_s)
    index_dir = index_dir or settings.index_dir
    feedback = settings.feedback_path if index_dir == settings.index_dir else None
    return SqliteState(index_dir, feedback)


def require_index(state: StateStore) -> None:
    """French error naming what to run when no index was built in this state."""
    if not state.exists():
        where = state.label
        hint = f"assistant ingest --index {where}" if state.kind == "sqlite" else \
            "assistant ingest (avec la même ASSISTANT_DATABASE_URL)"
        raise IndexStateError(f"Aucun index dans {where}. Construisez-le d'abord : {hint}")


def read_meta(index_dir: Path, settings: Settings | None, key: str) -> str | None:
    """One ``meta`` value of an index without creating anything (None when there is no index)."""
    if settings is not None and settings.database_url:
        db = connect_postgres(settings.database_url, settings.db_retry_s)
        try:
            if db.execute("SELECT to_regclass('public.meta') IS NULL").fetchone()[0]:
                return None
            row = db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
            return row[0] if row else None
        finally:
            db.close()
    import contextlib
    import sqlite3

    path = index_dir / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None
    except sqlite3.Error:
        return None


@contextmanager
def existing_manifest(settings: Settings) -> Iterator[Manifest | None]:
    """The configured index's manifest for a short read (None when no index was built yet)."""
    state = open_state(settings)
    if not state.exists():
        yield None
        return
    manifest = state.manifest()
    try:
        yield manifest
    finally:
        manifest.close()
