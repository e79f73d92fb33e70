"""Answers served and the feedback given on them. The store itself is ``assistant.store.feedback``
(SQLite by default, PostgreSQL with ``ASSISTANT_DATABASE_URL``); this module adds what the web app
records with each answer: the settings in force.

Usage::

    store = open_state(settings).feedback()      # assistant.store.state
    answer_id = store.record_answer(result, channel="widget", filters={}, settings=snapshot(settings))
    store.add_feedback(answer_id, rating="up", comment="Très clair")
"""

from __future__ import annotations

from typing import Any

from assistant.settings import Settings
from assistant.store.feedback import MAX_COMMENT_CHARS, RATINGS, FeedbackStore, gap_key

__all__ = ["MAX_COMMENT_CHARS", "RATINGS", "SETTINGS_IN_FORCE", "FeedbackStore", "gap_key", "snapshot"]

SETTINGS_IN_FORCE = ("embedding_model", "chunk_tokens", "chunk_overlap_tokens", "llm", "llm_model",
                     "chroma_collection", "max_question_chars")


def snapshot(settings: Settings) -> dict[str, Any]:
    """The settings that shape an answer (never secrets such as API keys or the staff password)."""
    from assistant.answer import refusal_rule

    values: dict[str, Any] = {name: getattr(settings, name) for name in SETTINGS_IN_FORCE}
    values["support"] = refusal_rule(settings)  # the refusal thresholds in force
    return values
