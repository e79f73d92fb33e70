"""Answers served and the feedback given on them, in the state database (SQLite file
``index/feedback.sqlite`` by default, or the shared PostgreSQL; see ``assistant.store.state``).

Every answer served by the web app is recorded (question, answer, citations, filters and the
settings in force) under an id; feedback (thumbs up/down, optional comment) points to that id.
A write that the database cannot take (PostgreSQL restarting) is retried on a new connection for
a few seconds, then raises ``StoreUnavailable`` (French message): the web app then refuses the
request (503), so an answer or a feedback that the client got an « OK » for is always stored.

Usage::

    store = FeedbackStore(Path("index/feedback.sqlite"))        # or FeedbackStore(connect_postgres(url))
    answer_id = store.record_answer(result, channel="widget", filters={}, settings=snapshot(settings))
    store.add_feedback(answer_id, rating="up", comment="Très clair")
    store.feedback_rows(), store.gaps(), store.export_csv()
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from assistant.store.db import Database, connect_sqlite, migrate
from assistant.store.lexical import strip_accents
from assistant.types import Answer

MAX_COMMENT_CHARS = 2000
RATINGS = ("up", "down")
SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    id TEXT PRIMARY KEY, ts TEXT NOT NULL, channel TEXT NOT NULL, question TEXT NOT NULL,
    standalone TEXT NOT NULL, status TEXT NOT NULL, answer TEXT NOT NULL, citations TEXT NOT NULL,
    filters TEXT NOT NULL, settings TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS feedback (
    answer_id TEXT PRIMARY KEY REFERENCES answers(id), ts TEXT NOT NULL, rating TEXT, comment TEXT);
CREATE INDEX IF NOT EXISTS answers_status ON answers(status);
"""
# migration steps (assistant.store.db.migrate); append, never edit. 2: the retention purge and the
# analytics read answers by date; the staff tab's evaluations are recorded (shared by replicas).
MIGRATIONS = [
    SCHEMA,
    """CREATE INDEX IF NOT EXISTS answers_ts ON answers(ts);
    CREATE TABLE IF NOT EXISTS eval_jobs (id TEXT PRIMARY KEY, started TEXT NOT NULL, updated TEXT NOT NULL,
        set_path TEXT NOT NULL, out_dir TEXT NOT NULL, state TEXT NOT NULL)""",
]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def gap_key(question: str) -> str:
    """Questions that differ only by case, accents, punctuation or spaces fall in the same group."""
    return " ".join(re.findall(r"[a-z0-9]+", strip_accents(question.lower())))


def csv_cell(value: Any) -> Any:
    """A cell that a spreadsheet would run as a formula (= + - @, tab, CR) is prefixed with ``'``."""
    from assistant.web.security import csv_cell as cell

    return cell(value)


class FeedbackStore:
    """Served answers and their feedback in one ``Database`` (a path opens a SQLite file)."""

    def __init__(self, db: Database | Path) -> None:
        if not isinstance(db, Database):
            db = connect_sqlite(Path(db))
        self.path = getattr(db, "path", None)
        self._db = db
        self._lock = db.lock
        migrate(db, "feedback", MIGRATIONS)

    def close(self) -> None:
        self._db.close()

    def _dicts(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        cur = self._db.execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def record_answer(self, result: Answer, channel: str, filters: dict[str, Any] | None,
                      settings: dict[str, Any]) -> str:
        """Store one served answer; returns its id (sent to the client for feedback)."""
        answer_id = uuid.uuid4().hex
        citations = [dataclasses.asdict(c) for c in result.citations]
        with self._lock:
            self._db.execute(
                # idempotent: a retry after a connection lost at the commit does not fail on the id
                "INSERT INTO answers VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO NOTHING",
                (answer_id, _now(), channel, result.question, result.standalone_question, result.status,
                 result.answer, json.dumps(citations, ensure_ascii=False),
                 json.dumps(filters or {}, ensure_ascii=False), json.dumps(settings, ensure_ascii=False)),
            )
        return answer_id

    def add_feedback(self, answer_id: str, rating: str | None = None, comment: str | None = None) -> bool:
        """Set the rating and/or comment of an answer (later calls complete earlier ones).
        False when the answer id is unknown."""
        if rating is not None and rating not in RATINGS:
            raise ValueError(f"rating must be one of {RATINGS}")
        comment = (comment or "").strip()[:MAX_COMMENT_CHARS] or None
        with self._lock:
            if self._db.execute("SELECT 1 FROM answers WHERE id=?", (answer_id,)).fetchone() is None:
                return False
            self._db.execute(
                "INSERT INTO feedback (answer_id, ts, rating, comment) VALUES (?,?,?,?) "
                "ON CONFLICT(answer_id) DO UPDATE SET ts=excluded.ts, "
                "rating=COALESCE(excluded.rating, feedback.rating), comment=COALESCE(excluded.comment, feedback.comment)",
                (answer_id, _now(), rating, comment),
            )
        return True

    def feedback_rows(self, limit: int = 500) -> list[dict[str, Any]]:
        """Feedback, newest first, with the question, answer, citations and settings in force."""
        with self._lock:
            return self._dicts(
                "SELECT f.ts, f.rating, f.comment, a.channel, a.question, a.status, a.answer, a.citations, "
                "a.filters, a.settings, a.id AS answer_id FROM feedback f JOIN answers a ON a.id = f.answer_id "
                "ORDER BY f.ts DESC LIMIT ?", (limit,))

    def gaps(self, limit: int = 200) -> list[dict[str, Any]]:
        """``no_answer`` questions grouped (« lacunes du corpus »), most asked first."""
        with self._lock:
            rows = self._dicts(
                "SELECT standalone, question, ts FROM answers WHERE status='no_answer' ORDER BY ts DESC")
        groups: dict[str, dict[str, Any]] = {}
        for row in rows:
            key = gap_key(row["standalone"] or row["question"])
            if not key:
                continue
            group = groups.setdefault(key, {"question": row["question"], "count": 0, "last": row["ts"]})
            group["count"] += 1
        return sorted(groups.values(), key=lambda g: (-g["count"], g["last"]))[:limit]

    def counts(self) -> dict[str, int]:
        with self._lock:
            answers = self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
            up = self._db.execute("SELECT COUNT(*) FROM feedback WHERE rating='up'").fetchone()[0]
            down = self._db.execute("SELECT COUNT(*) FROM feedback WHERE rating='down'").fetchone()[0]
        return {"answers": answers, "up": up, "down": down}

    def purge_older_than(self, days: int, now: datetime | None = None) -> int:
        """Delete the answers served more than ``days`` days ago, with their feedback (RGPD
        retention); returns the number of answers deleted. ``days`` <= 0 keeps everything."""
        if days <= 0:
            return 0
        cutoff = ((now or datetime.now(UTC)) - timedelta(days=days)).isoformat(timespec="seconds")
        with self._lock:
            with self._db.transaction():
                self._db.execute("DELETE FROM feedback WHERE answer_id IN (SELECT id FROM answers WHERE ts < ?)",
                                 (cutoff,))
                return int(self._db.execute("DELETE FROM answers WHERE ts < ?", (cutoff,)).rowcount)

    def answer_rows(self) -> list[dict[str, Any]]:
        """Every served answer with its rating (for the staff analytics), oldest first."""
        with self._lock:
            return self._dicts(
                "SELECT a.ts, a.channel, a.status, a.citations, f.rating FROM answers a "
                "LEFT JOIN feedback f ON f.answer_id = a.id ORDER BY a.ts")

    def export_csv(self) -> str:
        """Feedback as CSV (UTF-8, comma-separated; opens in a spreadsheet)."""
        out = io.StringIO()
        fields = ["ts", "rating", "comment", "channel", "question", "status", "answer", "citations", "filters",
                  "settings", "answer_id"]
        writer = csv.DictWriter(out, fieldnames=fields)
        writer.writeheader()
        for row in self.feedback_rows(limit=100000):
            # a cell starting like a formula (= + - @ tab …) would run in a spreadsheet
            writer.writerow({k: csv_cell(v) for k, v in row.items()})
        return out.getvalue()


class EvalJobLog:
    """The staff tab's evaluations in the state database: every replica sees the one running."""

    STALE_S = 600  # a running job not updated for this long died with its process

    def __init__(self, db: Database) -> None:
        self._db = db
        migrate(db, "feedback", MIGRATIONS)

    def record(self, job_id: str, set_path: str, out_dir: str, state: dict[str, Any]) -> None:
        now = _now()
        self._db.execute(
            "INSERT INTO eval_jobs VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
            "updated=excluded.updated, state=excluded.state",
            (job_id, now, now, set_path, out_dir, json.dumps(state, ensure_ascii=False)))

    def running(self, now: datetime | None = None) -> dict[str, Any] | None:
        """The newest job still running (updated within ``STALE_S``), or None."""
        cutoff = ((now or datetime.now(UTC)) - timedelta(seconds=self.STALE_S)).isoformat(timespec="seconds")
        for job_id, state in self._db.execute(
                "SELECT id, state FROM eval_jobs WHERE updated >= ? ORDER BY updated DESC", (cutoff,)).fetchall():
            data = json.loads(state)
            if data.get("running"):
                return {"id": job_id, **data}
        return None

    def last(self, limit: int = 20) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT id, started, state FROM eval_jobs ORDER BY started DESC LIMIT ?",
                                (limit,)).fetchall()
        return [{"id": i, "started": s, **json.loads(st)} for i, s, st in rows]
