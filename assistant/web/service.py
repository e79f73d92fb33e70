"""What every web front end (REST API, widget, Gradio UI) shares: one opened index, ``answer()``
behind a lock, question checks with French messages, the feedback store and the rate limiter.

Usage::

    service = Service(settings)                       # opens the index and the feedback store
    result, answer_id = service.ask("Comment lancer un conseil citoyen ?", [], {}, channel="api")
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from assistant.answer import answer
from assistant.errors import AssistantError
from assistant.retrieve import FILTER_KEYS, Index, open_index
from assistant.settings import Settings
from assistant.types import DOC_TYPES, ECHELLES, Answer
from assistant.web.feedback import FeedbackStore, snapshot
from assistant.web.ratelimit import RateLimiter

MAX_HISTORY = 5
DOC_TYPE_LABELS = {"fiche_outil": "Fiche outil", "fiche_experience": "Fiche expérience", "entretien": "Entretien",
                   "rapport": "Rapport", "autre": "Autre"}
ECHELLE_LABELS = {"quartier": "Quartier", "commune": "Commune", "intercommunalite": "Intercommunalité",
                  "pays_petr": "Pays / PETR", "departement": "Département", "region": "Région"}


class QuestionError(AssistantError):
    """A request the assistant refuses before answering (too long, bad filter); French message."""


class Service:
    """One index, one feedback store, one rate limiter for the whole web app."""

    def __init__(self, settings: Settings, index: Index | None = None, store: FeedbackStore | None = None) -> None:
        self.settings = settings
        self.index = index or open_index(settings, settings.index_dir)
        self.store = store or FeedbackStore(settings.feedback_path)
        self.limiter = RateLimiter(settings.rate_limit_per_minute)
        self.feedback_limiter = RateLimiter(settings.rate_limit_per_minute * 3)
        self.staff_limiter = RateLimiter(10 if settings.rate_limit_per_minute else 0)
        self.settings_in_force = snapshot(settings)
        # answer() shares lazily loaded models and stores: one question at a time per process
        self._lock = threading.Lock()

    def check(self, question: str, history: Any = None, filters: Any = None) -> tuple[str, list[str], dict[str, str]]:
        """Validate a request; raises QuestionError with a French message."""
        if not isinstance(question, str):
            raise QuestionError("La question doit être un texte.")
        question = question.strip()
        limit = self.settings.max_question_chars
        if len(question) > limit:
            raise QuestionError(
                f"Votre question est trop longue ({len(question)} caractères ; {limit} au maximum). "
                "Raccourcissez-la ou posez-la en plusieurs fois, s'il vous plaît.")
        if history is None:
            history = []
        if not isinstance(history, list) or not all(isinstance(h, str) for h in history):
            raise QuestionError("L'historique doit être une liste de questions (textes).")
        history = [h.strip()[:limit] for h in history if h.strip()][-MAX_HISTORY:]
        if filters is None:
            filters = {}
        if not isinstance(filters, dict):
            raise QuestionError("Les filtres doivent être un objet : {\"echelle\": \"commune\"}.")
        clean: dict[str, str] = {}
        for key, value in filters.items():
            if key not in FILTER_KEYS:
                raise QuestionError(f"Filtre inconnu « {key} » : utilisez {', '.join(FILTER_KEYS)}.")
            if value in (None, ""):
                continue
            if not isinstance(value, str) or len(value) > 100:
                raise QuestionError(f"Valeur invalide pour le filtre « {key} ».")
            clean[key] = value.strip()
        return question, history, clean

    def ask(self, question: str, history: Any = None, filters: Any = None, channel: str = "api",
            on_token: Callable[[str], None] | None = None) -> tuple[Answer, str]:
        """Check, answer (one at a time), record; returns the Answer and its id for feedback."""
        question, history, clean = self.check(question, history, filters)
        with self._lock:
            result = answer(question, history=history, filters=clean, index=self.index, on_token=on_token)
        answer_id = self.store.record_answer(result, channel=channel, filters=clean, settings=self.settings_in_force)
        return result, answer_id

    def filter_choices(self) -> dict[str, list[tuple[str, str]]]:
        """(label, value) choices for the four filters, from the index's metadata."""
        departements: set[str] = set()
        themes: set[str] = set()
        doc_types: set[str] = set()
        for meta in self.index.metadata.values():
            doc_types.add(str(meta.get("doc_type") or "autre"))
            if meta.get("departement"):
                departements.add(str(meta["departement"]))
            themes.update(str(t) for t in meta.get("themes") or [])
        return {
            "doc_type": [(DOC_TYPE_LABELS.get(t, t), t) for t in DOC_TYPES if t in doc_types and t != "autre"],
            "echelle": [(ECHELLE_LABELS[e], e) for e in ECHELLES],
            "departement": [(d, d) for d in sorted(departements)],
            "theme": [(t, t) for t in sorted(themes, key=str.lower)],
        }

    def warm_up(self) -> None:
        """Load the embedding model and the vector store now rather than on the first question."""
        with self._lock:
            self.index.search("conseil citoyen", k=1)
