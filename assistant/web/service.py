"""What every web front end (REST API, widget, Gradio UI) shares: one opened index, ``answer()``
behind a lock, question checks with French messages, the feedback store and the rate limiter.

Usage::

    service = Service(settings)                       # opens the index and the feedback store
    result, answer_id = service.ask("Comment lancer un conseil citoyen ?", [], {}, channel="api")
    job = service.start_eval("test.yaml")            # staff tab: an evaluation in the background
    service.eval_state()                             # progress, then the report's paths
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from assistant.answer import answer
from assistant.documents import DocumentError, Documents, IngestJob
from assistant.errors import AssistantError
from assistant.evals.jobs import EvalJob
from assistant.ingest import IngestReport, ingest
from assistant.retrieve import FILTER_KEYS, Index, open_index
from assistant.settings import Settings
from assistant.store.state import open_state
from assistant.types import DOC_TYPES, ECHELLES, Answer
from assistant.web.feedback import FeedbackStore, snapshot
from assistant.web.ratelimit import RateLimiter
from assistant.web.security import CHANNELS, LoginThrottle, StaffSessions, text_problem

MAX_HISTORY = 5
DOC_TYPE_LABELS = {"fiche_outil": "Fiche outil", "fiche_experience": "Fiche expérience", "entretien": "Entretien",
                   "rapport": "Rapport", "autre": "Autre"}
ECHELLE_LABELS = {"quartier": "Quartier", "commune": "Commune", "intercommunalite": "Intercommunalité",
                  "pays_petr": "Pays / PETR", "departement": "Département", "region": "Région"}


class QuestionError(AssistantError):
    """A request the assistant refuses before answering (too long, bad filter); French message."""


class SerialEmbedder:
    """An embedder shared by threads: ``embed_batch`` one call at a time (tokenizers are not
    re-entrant); everything else is the wrapped embedder's."""

    def __init__(self, inner: Any, lock: threading.Lock) -> None:
        self.inner = inner.inner if isinstance(inner, SerialEmbedder) else inner
        self.lock = lock

    def embed_batch(self, texts: list[str], kind: Any) -> Any:
        with self.lock:
            return self.inner.embed_batch(texts, kind)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Service:
    """One index, one feedback store, one rate limiter for the whole web app."""

    def __init__(self, settings: Settings, index: Index | None = None, store: FeedbackStore | None = None) -> None:
        self.settings = settings
        self.state = open_state(settings)  # SQLite in index_dir, or the PostgreSQL shared by replicas
        # the served index reads one published generation (pinned snapshot) until the next swap
        self.index = index or open_index(settings, settings.index_dir, pin=True)
        self.store = store or self.state.feedback()
        self.limiter = RateLimiter(settings.rate_limit_per_minute)
        self.feedback_limiter = RateLimiter(settings.rate_limit_per_minute * 3)
        # staff requests per minute and client (the Documents tab polls the ingest); failed passwords
        # have their own, much lower limit (login_throttle)
        self.staff_limiter = RateLimiter(120 if settings.rate_limit_per_minute else 0)
        self.staff_sessions = StaffSessions()
        self.login_throttle = LoginThrottle()  # failed staff logins, per client and in all
        self.settings_in_force = snapshot(settings)
        # answer() shares lazily loaded models and stores: one question at a time per process
        self._lock = threading.Lock()
        # the embedding model is shared by answers and a background ingest: one batch at a time
        self._embed_lock = threading.Lock()
        self.evals_dir = Path("evals")  # gold sets, reports, parts (relative to the working directory)
        self.eval_job: EvalJob | None = None
        self.documents = Documents(settings)
        self.ingest_job = IngestJob(self.reindex)
        self._reindexing = threading.Event()
        self._refresher: threading.Thread | None = None
        if index is None and settings.refresh_s > 0:
            self.start_refresher(settings.refresh_s)

    # --- following the generations that other processes or replicas publish -------------------

    def start_refresher(self, every_s: float) -> None:
        """Poll the published generation every ``every_s`` seconds (a daemon thread); when an
        ingest elsewhere (CLI, another replica) publishes a new one, open it and swap, without a
        restart. A database that cannot be reached is tried again at the next tick."""
        def loop() -> None:
            while True:
                time.sleep(every_s)
                try:
                    self.refresh()
                except Exception:  # noqa: BLE001, S112 - next tick; the served index stays as it is
                    continue

        self._refresher = threading.Thread(target=loop, daemon=True, name="generation-refresher")
        self._refresher.start()

    def refresh(self) -> bool:
        """Swap to the published generation when it is not the served one; True when swapped."""
        if self._reindexing.is_set() or self.state.published_generation() == self.index.published:
            return False
        fresh = open_index(self.settings, self.settings.index_dir, pin=True)
        if self._reindexing.is_set() or fresh.published == self.index.published:
            fresh.manifest.close()
            return False
        self._swap(fresh)
        return True

    def _swap(self, fresh: Index) -> None:
        with self._lock:
            fresh._embedder = fresh._embedder or self.index._embedder
            fresh._store = fresh._store or self.index._store
            old, self.index = self.index, fresh
        old.manifest.close()

    def reindex(self, wait: bool = False, on_progress: Callable[[int, int, str], None] | None = None) -> IngestReport:
        """Bring the index up to date with the corpus in this warm process (model already loaded,
        Chroma already open: a one-file change takes about 2 s), then serve from the new index.

        Questions are answered meanwhile from the index opened before: its passages list and BM25
        are in memory, and its manifest connection is pinned to a snapshot (``Manifest.pin``), so
        the passages it reads are those of the previous consistent state even after the ingest
        commits (the dense side may miss the old vectors of a changed file once they are deleted).
        Only the swap to the new index takes the answer lock. One ingest at a time (the state's ingest lock): with ``wait=False`` a running one
        (CLI or app) raises ``IngestBusy`` with the French message."""
        with self._lock:  # answers and this ingest share the model: wrap it once, both use the wrapper
            if not isinstance(self.index.embedder, SerialEmbedder):
                self.index._embedder = SerialEmbedder(self.index.embedder, self._embed_lock)
            embedder, store = self.index.embedder, self.index.store
            self.index.manifest.pin()  # answers read the passages as they were before this ingest
        self._reindexing.set()
        try:
            report = ingest(self.settings.corpus_dir, self.settings.index_dir, self.settings, progress=False,
                            embedder=embedder, store=store, wait=wait, on_progress=on_progress)
            fresh = open_index(self.settings, self.settings.index_dir, pin=True)
            fresh._embedder, fresh._store = embedder, store
            self._swap(fresh)
        finally:
            self._reindexing.clear()
        return report

    # --- staff « Documents » tab ---------------------------------------------------------------

    def upload(self, files: list[tuple[str, bytes]], folder: str | None = None,
               replace: bool = False) -> list[dict[str, Any]]:
        """Store each file that passes the checks (the others are refused with a French reason and
        change nothing), then start the background ingest. One result per file."""
        results: list[dict[str, Any]] = []
        for name, raw in files:
            try:
                source = self.documents.save_upload(name, raw, folder=folder, replace=replace)
                results.append({"name": name, "source": source, "ok": True,
                                "message": f"{source} : enregistré, indexation en cours."})
            except DocumentError as exc:
                results.append({"name": name, "source": None, "ok": False, "message": str(exc), "status": exc.status})
        if any(r["ok"] for r in results):
            self.ingest_job.request()
        return results

    def delete_document(self, source: str) -> str:
        rel = self.documents.delete(source)
        self.ingest_job.request()
        return rel

    def set_document_metadata(self, source: str, meta: dict[str, Any]) -> dict[str, Any]:
        values = self.documents.set_metadata(source, meta)
        self.ingest_job.request()
        return values

    def documents_state(self) -> dict[str, Any]:
        """What the tab and ``GET /staff/documents`` show: the documents and the ingest's progress."""
        from assistant.documents import as_dicts

        return {"documents": as_dicts(self.documents.list()), "ingest": self.ingest_job.state()}

    def check(self, question: str, history: Any = None, filters: Any = None) -> tuple[str, list[str], dict[str, str]]:
        """Validate a request; raises QuestionError with a French message."""
        if not isinstance(question, str):
            raise QuestionError("La question doit être un texte.")
        question = question.strip()
        problem = text_problem(question)
        if problem:
            raise QuestionError(problem)
        limit = self.settings.max_question_chars
        if len(question) > limit:
            raise QuestionError(
                f"Votre question est trop longue ({len(question)} caractères ; {limit} au maximum). "
                "Raccourcissez-la ou posez-la en plusieurs fois, s'il vous plaît.")
        if history is None:
            history = []
        if not isinstance(history, list) or not all(isinstance(h, str) for h in history):
            raise QuestionError("L'historique doit être une liste de questions (textes).")
        if len(history) > self.settings.max_history_turns:
            raise QuestionError(f"Historique trop long ({len(history)} questions ; "
                                f"{self.settings.max_history_turns} au maximum) : commencez une nouvelle conversation.")
        for turn in history:
            problem = text_problem(turn, "l'historique")
            if problem:
                raise QuestionError(problem)
            if len(turn) > limit:
                raise QuestionError(f"Une question de l'historique dépasse {limit} caractères.")
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
            if not isinstance(value, str) or len(value) > 100 or text_problem(value, "un filtre"):
                raise QuestionError(f"Valeur invalide pour le filtre « {key} ».")
            clean[key] = value.strip()
        return question, history, clean

    def ask(self, question: str, history: Any = None, filters: Any = None, channel: str = "api",
            on_token: Callable[[str], None] | None = None) -> tuple[Answer, str]:
        """Check, answer (one at a time), record; returns the Answer and its id for feedback."""
        question, history, clean = self.check(question, history, filters)
        self.check_channel(channel)
        with self._lock:
            result = answer(question, history=history, filters=clean, index=self.index, on_token=on_token)
        answer_id = self.store.record_answer(result, channel=channel, filters=clean, settings=self.settings_in_force)
        if time.monotonic() - getattr(self, "_retention_at", 0.0) >= 3600:  # RGPD retention, hourly
            self._retention_at = time.monotonic()
            self.store.purge_older_than(self.settings.retention_days)
        return result, answer_id

    def check_channel(self, channel: str) -> None:
        """Raise QuestionError unless ``channel`` is one of the fixed CHANNELS."""
        if channel not in CHANNELS:
            raise QuestionError(f"Canal inconnu « {channel[:20]} » : utilisez {', '.join(CHANNELS)}.")

    def indexed_sources(self) -> frozenset[str]:
        """The corpus files the index holds (the only ones ``/sources/`` serves)."""
        index = self.index
        cached = getattr(self, "_sources", None)
        if cached is None or cached[0] is not index:
            cached = (index, frozenset(str(m.get("source")) for m in index.metadata.values()))
            self._sources = cached
        return cached[1]

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

    # --- staff tab: evaluations -----------------------------------------------------------------

    def eval_sets(self) -> list[str]:
        """Names of the gold sets staff can pick (``evals/gold/*.yaml``)."""
        return sorted(p.name for p in (self.evals_dir / "gold").glob("*.yaml"))

    def start_eval(self, set_name: str | None = None, upload: Path | None = None) -> EvalJob:
        """Start one evaluation in the background (a gold set by name, or an uploaded CSV/YAML/JSONL file)."""
        if self.eval_job is not None and self.eval_job.state()["running"] or self._eval_log().running():
            raise QuestionError("Une évaluation est déjà en cours : attendez qu'elle se termine.")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        reports = self.evals_dir / "reports"
        if upload is not None:
            if upload.suffix.lower() not in (".csv", ".yaml", ".yml", ".jsonl", ".json"):
                raise QuestionError("Format de fichier non pris en charge : CSV, YAML ou JSONL.")
            set_path = reports / "uploads" / f"{stamp}-{upload.name}"
            set_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(upload, set_path)
        elif set_name in self.eval_sets():
            set_path = self.evals_dir / "gold" / str(set_name)
        else:
            raise QuestionError("Choisissez un jeu de questions ou déposez un fichier.")
        self.eval_job = EvalJob(self.index, set_path, reports / f"{stamp}-equipe", reports_dir=reports,
                                baseline=self.evals_dir / "baseline" / "report.json", lock=self._lock,
                                log=self._eval_log())
        self.eval_job.start()
        return self.eval_job

    def _eval_log(self) -> Any:
        """The eval jobs recorded in the state (one log per Service, opened on first use)."""
        if getattr(self, "_eval_jobs", None) is None:
            self._eval_jobs = self.state.eval_jobs()
        return self._eval_jobs

    def eval_state(self) -> dict[str, Any] | None:
        """Progress of the last evaluation, with the report's paths once written."""
        if self.eval_job is None:
            return None
        state = self.eval_job.state()
        out = Path(state["out_dir"])
        ready = not state["running"] and not state["error"] and (out / "report.html").exists()
        state["html"] = str(out / "report.html") if ready else None
        state["json"] = str(out / "report.json") if ready else None
        return state

    def gaps_to_gold(self) -> tuple[int, Path]:
        """Append the « lacunes du corpus » to ``evals/parts/lacunes.yaml`` (status left for staff)."""
        from assistant.evals.goldsets import gaps_to_yaml

        path = self.evals_dir / "parts" / "lacunes.yaml"
        return gaps_to_yaml(self.store.gaps(), path), path
