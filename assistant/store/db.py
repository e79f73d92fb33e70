"""One SQL connection, SQLite (embedded, the default) or PostgreSQL (shared by replicas).

The manifest, the lexical terms, the served answers, the feedback and the eval jobs are written in
one SQL dialect (``?`` placeholders, ``INSERT … ON CONFLICT``, ``BLOB``); ``Database`` translates it
for PostgreSQL (``%s``, ``BYTEA``). Each component has a schema version in ``schema_version`` and
a list of migration steps (``migrate``), applied once, in order, in a transaction.

PostgreSQL connections are reopened when the server restarts: a read is retried on a new
connection (a pinned snapshot is taken again); a write is retried until ``retry_s`` has passed,
then ``StoreUnavailable`` (French message) is raised — the caller refuses the request, so nothing
acknowledged is ever lost.

Usage::

    db = connect_sqlite(Path("index/manifest.sqlite"))          # or connect_postgres(url)
    migrate(db, "manifest", [SCHEMA_V1, SCHEMA_V2])
    db.execute("SELECT value FROM meta WHERE key=?", ("generation",)).fetchone()
    with db.transaction():
        db.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value", ("k", "v"))
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from assistant.errors import AssistantError

PLACEHOLDER = re.compile(r"\?")
SCHEMA_VERSION_TABLE = "CREATE TABLE IF NOT EXISTS schema_version (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"


class StoreUnavailable(AssistantError):
    """The database cannot be reached (PostgreSQL restarting or down); French message."""


def describe_url(url: str) -> str:
    """``postgresql://user:secret@host:5432/db`` -> ``host:5432/db`` (never the password)."""
    parsed = urlparse(url)
    return f"{parsed.hostname or 'localhost'}:{parsed.port or 5432}{parsed.path or ''}"


class Database:
    """A connection with the dialect differences hidden. Thread-safe (one statement at a time)."""

    kind = "sqlite"

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._pinned = False

    # --- to implement ---------------------------------------------------------------------------
    def _execute(self, sql: str, params: Sequence[Any]) -> Any:
        raise NotImplementedError

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        raise NotImplementedError

    def _begin(self, write: bool) -> None:
        raise NotImplementedError

    def _end(self, commit: bool) -> None:
        raise NotImplementedError

    @property
    def in_transaction(self) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def translate(self, sql: str, has_params: bool = True) -> str:
        return sql

    # --- shared ---------------------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement; returns a cursor (``fetchone``, ``fetchall``, iteration, ``rowcount``)."""
        with self.lock:
            return self._execute(self.translate(sql, bool(params)), params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self.lock:
            self._executemany(self.translate(sql), rows)

    def script(self, sql: str) -> None:
        """Several statements separated by ``;`` (no parameters)."""
        for statement in sql.split(";"):
            if statement.strip():
                self.execute(statement)

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """A write transaction (SQLite: ``BEGIN IMMEDIATE``); nested calls join the outer one."""
        with self.lock:
            if self.in_transaction:
                yield self
                return
            self._begin(write=True)
            try:
                yield self
            except BaseException:
                self._end(commit=False)
                raise
            self._end(commit=True)

    def pin(self) -> None:
        """Read from a snapshot until ``unpin``: this connection keeps seeing the state as it is now
        while other connections (an ingest, another replica's ingest) commit."""
        with self.lock:
            if not self.in_transaction:
                self._begin(write=False)
                self._execute("SELECT COUNT(*) FROM schema_version", ()).fetchone()
            self._pinned = True

    def unpin(self) -> None:
        with self.lock:
            self._pinned = False
            if self.in_transaction:
                self._end(commit=False)

    @property
    def pinned(self) -> bool:
        return self._pinned

    def clone(self) -> Database:
        """A new connection to the same database (for a write while this one is pinned)."""
        raise NotImplementedError


class SqliteDatabase(Database):
    kind = "sqlite"

    def __init__(self, path: Path) -> None:
        super().__init__()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.label = str(path)
        self.conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA busy_timeout=30000")

    def _execute(self, sql: str, params: Sequence[Any]) -> Any:
        return self.conn.execute(sql, tuple(params))

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.conn.executemany(sql, rows)

    def _begin(self, write: bool) -> None:
        self.conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    def _end(self, commit: bool) -> None:
        self.conn.execute("COMMIT" if commit else "ROLLBACK")

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    def clone(self) -> SqliteDatabase:
        return SqliteDatabase(self.path)


class PostgresDatabase(Database):
    """psycopg 3, autocommit outside explicit transactions; reconnects after a server restart."""

    kind = "postgresql"
    RETRY_S = 10.0

    def __init__(self, url: str, retry_s: float | None = None) -> None:
        super().__init__()
        self.url = url
        self.label = f"PostgreSQL {describe_url(url)}"
        self.retry_s = self.RETRY_S if retry_s is None else retry_s
        self.conn: Any = None
        self._in_tx = False
        self._connect(deadline=time.monotonic() + self.retry_s)

    def unavailable(self, exc: BaseException | None = None) -> StoreUnavailable:
        why = f" ({exc.__class__.__name__})" if exc is not None else ""
        return StoreUnavailable(
            f"Base de données injoignable : {self.label}{why}. Vérifiez que PostgreSQL tourne "
            "et que ASSISTANT_DATABASE_URL est juste, puis réessayez dans un instant.")

    def _connect(self, deadline: float) -> None:
        import psycopg

        while True:
            try:
                self.conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() >= deadline:
                    raise self.unavailable(exc) from None
                time.sleep(0.3)

    def translate(self, sql: str, has_params: bool = True) -> str:
        if has_params:
            sql = PLACEHOLDER.sub("%s", sql.replace("%", "%%"))
        return sql.replace(" BLOB", " BYTEA")

    def _retrying(self, call: Any) -> Any:
        """Run ``call()``; when the connection is lost outside a write transaction, reconnect (and
        pin again if pinned) and retry until ``retry_s`` has passed."""
        import psycopg

        deadline = time.monotonic() + self.retry_s
        while True:
            try:
                return call()
            except psycopg.OperationalError as exc:
                if self._in_tx or not self._broken():
                    raise self.unavailable(exc) from None
                if time.monotonic() >= deadline:
                    raise self.unavailable(exc) from None
                self._reopen(deadline)

    def _broken(self) -> bool:
        return self.conn is None or self.conn.closed or self.conn.broken

    def _reopen(self, deadline: float) -> None:
        try:
            if self.conn is not None:
                self.conn.close()
        except Exception:  # noqa: BLE001, S110 - the old connection is gone anyway
            pass
        self._connect(deadline)
        if self._pinned:
            self._begin(write=False)

    def _execute(self, sql: str, params: Sequence[Any]) -> Any:
        return self._retrying(lambda: self.conn.execute(sql, tuple(params) or None))

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        def run() -> None:
            with self.conn.cursor() as cur:
                cur.executemany(sql, rows)

        self._retrying(run)

    def _begin(self, write: bool) -> None:
        if write:
            self._retrying(lambda: self.conn.execute("BEGIN"))
            self._in_tx = True
        else:
            self._retrying(lambda: self.conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"))

    def _end(self, commit: bool) -> None:
        import psycopg

        was_tx, self._in_tx = self._in_tx, False
        try:
            self.conn.execute("COMMIT" if commit else "ROLLBACK")
        except psycopg.OperationalError as exc:
            if commit and was_tx:
                raise self.unavailable(exc) from None  # the commit may not have happened: say so

    @property
    def in_transaction(self) -> bool:
        from psycopg import pq

        if self._broken():
            return False
        return self.conn.info.transaction_status != pq.TransactionStatus.IDLE

    def close(self) -> None:
        with self.lock:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001, S110 - closing a dead connection
                pass

    def clone(self) -> PostgresDatabase:
        return PostgresDatabase(self.url, self.retry_s)

    def notify(self, channel: str, payload: str) -> None:
        self.execute(f"SELECT pg_notify('{channel}', ?)", (payload,))


def connect_sqlite(path: Path) -> SqliteDatabase:
    return SqliteDatabase(path)


def connect_postgres(url: str, retry_s: float | None = None) -> PostgresDatabase:
    return PostgresDatabase(url, retry_s)


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def schema_version(db: Database, component: str) -> int:
    db.execute(SCHEMA_VERSION_TABLE)
    row = db.execute("SELECT version FROM schema_version WHERE component=?", (component,)).fetchone()
    return int(row[0]) if row else 0


def migrate(db: Database, component: str, steps: Sequence[str]) -> int:
    """Bring ``component``'s tables to ``len(steps)``: each missing step (a ``;``-separated script)
    runs in one transaction with the version update. Replicas starting together are serialised (a
    PostgreSQL advisory lock; SQLite's write lock). A database newer than this code is refused."""
    db.execute(SCHEMA_VERSION_TABLE)
    current = schema_version(db, component)
    if current > len(steps):
        raise AssistantError(
            f"La base {getattr(db, 'label', '')} est au schéma {current} de « {component} », plus récent que "
            f"celui de cette version de l'assistant ({len(steps)}) : mettez l'assistant à jour.")
    if current == len(steps):
        return current
    with db.transaction():
        if db.kind == "postgresql":
            db.execute("SELECT pg_advisory_xact_lock(?)", (lock_key("schema:" + component),))
        current = schema_version(db, component)
        for step in steps[current:]:
            db.script(step)
        db.execute("INSERT INTO schema_version(component, version) VALUES (?, ?) "
                   "ON CONFLICT(component) DO UPDATE SET version=excluded.version", (component, len(steps)))
    return len(steps)


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock`` from a name."""
    import hashlib

    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
