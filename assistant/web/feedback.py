"""Answers served and the feedback given on them, in SQLite (one file, WAL, thread-safe).

Every answer served by the web app is recorded (question, answer, citations, filters and the
settings in force) under an id; feedback (thumbs up/down, optional comment) points to that id.
The staff view reads the feedback and the ``no_answer`` questions grouped as « lacunes du corpus ».

Usage::

    store = FeedbackStore(settings.feedback_path)
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
import sqlite3
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from assistant.settings import Settings
from assistant.store.lexical import strip_accents
from assistant.types import Answer
from assistant.web.security import csv_cell

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
SETTINGS_IN_FORCE = ("embedding_model", "chunk_tokens", "chunk_overlap_tokens", "llm", "llm_model",
                     "chroma_collection", "max_question_chars")


def snapshot(settings: Settings) -> dict[str, Any]:
    """The settings that shape an answer (never secrets such as API keys or the staff password)."""
    from assistant.answer import refusal_rule

    values: dict[str, Any] = {name: getattr(settings, name) for name in SETTINGS_IN_FORCE}
    values["support"] = refusal_rule(settings)  # the refusal thresholds in force
    return values


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def gap_key(question: str) -> str:
    """Questions that differ only by case, accents, punctuation or spaces fall in the same group."""
    return " ".join(re.findall(r"[a-z0-9]+", strip_accents(question.lower())))


class FeedbackStore:
    """SQLite store of served answers and their feedback."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def record_answer(self, result: Answer, channel: str, filters: dict[str, Any] | None,
                      settings: dict[str, Any]) -> str:
        """Store one served answer; returns its id (sent to the client for feedback)."""
        answer_id = uuid.uuid4().hex
        citations = [dataclasses.asdict(c) for c in result.citations]
        with self._lock:
            self._db.execute(
                "INSERT INTO answers VALUES (?,?,?,?,?,?,?,?,?,?)",
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
            rows = self._db.execute(
                "SELECT f.ts, f.rating, f.comment, a.channel, a.question, a.status, a.answer, a.citations, "
                "a.filters, a.settings, a.id AS answer_id FROM feedback f JOIN answers a ON a.id = f.answer_id "
                "ORDER BY f.ts DESC LIMIT ?", (limit,)).fetchall()
        return [dict(r) for r in rows]

    def gaps(self, limit: int = 200) -> list[dict[str, Any]]:
        """``no_answer`` questions grouped (« lacunes du corpus »), most asked first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT standalone, question, ts FROM answers WHERE status='no_answer' ORDER BY ts DESC").fetchall()
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
            self._db.execute("DELETE FROM feedback WHERE answer_id IN (SELECT id FROM answers WHERE ts < ?)", (cutoff,))
            return self._db.execute("DELETE FROM answers WHERE ts < ?", (cutoff,)).rowcount

    def answer_rows(self) -> list[dict[str, Any]]:
        """Every served answer with its rating (for the staff analytics), oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT a.ts, a.channel, a.status, a.citations, f.rating FROM answers a "
                "LEFT JOIN feedback f ON f.answer_id = a.id ORDER BY a.ts").fetchall()
        return [dict(r) for r in rows]

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
