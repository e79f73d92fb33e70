"""Refuse, answer, or answer with reservations: a rule calibrated on each index, not on our corpus.

Why: e5 similarities are squeezed between ~0.80 and ~0.92 and shift with the register and length of
documents, so a fixed threshold sits in a different place on every corpus (issue 15).

The score of a question is ``best dense similarity - UNKNOWN_WEIGHT x unknown``, where ``unknown``
is the share of the question's terms (stemmed, stop words removed) that the corpus never uses. At ingest time the index measures two
distributions of this score on itself:

- *in scope*: pseudo-questions, the first words of one sentence from each of up to
  ``PSEUDO_QUESTIONS`` passages spread over the corpus;
- *out of scope*: the shipped, documented questions of ``assistant/data/hors_champ.yaml``.

With ``low`` = the ``OFF_TOPIC_QUANTILE`` quantile of the out-of-scope scores and ``high`` = the
median of the in-scope ones, a question is refused below ``low + REFUSE_AT x (high - low)``,
answered with reservations (status ``partial``) up to ``low + ANSWER_AT x (high - low)``, answered
above. The thresholds are stored in the manifest (key ``refusal_calibration``) with the corpus
size they were measured on; ``ingest`` recomputes them when the corpus changed by more than
``RECALIBRATE_CHANGE`` of its passages (or the model changed). The same constants serve every
corpus; they were chosen on ``evals/gold/dev.yaml`` with ``benchmarks/refusal.py``.

Usage::

    calibration = ensure_calibration(index)          # stored one, or computed and stored
    decide(signals, calibration)                     # "answered" | "partial" | "no_answer"
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from assistant.store.lexical import analyse

if TYPE_CHECKING:
    from assistant.retrieve import Index
    from assistant.types import Hit

MANIFEST_KEY = "refusal_calibration"
VERSION = 1
TOP_FOR_SUPPORT = 3
UNKNOWN_WEIGHT = 0.1
OFF_TOPIC_QUANTILE = 0.9
REFUSE_AT = 0.45
ANSWER_AT = 0.6
PSEUDO_QUESTIONS = 200
PSEUDO_WORDS = 10  # a question is short: the first words of a sentence, not the whole sentence
RECALIBRATE_CHANGE = 0.2
SENTENCE = re.compile(r"(?<=[.!?…])\s+")


@dataclass
class Calibration:
    """Thresholds of one index and what they were measured on."""

    refuse_below: float
    answer_from: float
    off_topic_q: float
    in_scope_median: float
    in_scope: int
    off_topic: int
    chunks: int
    model: str
    computed: str
    version: int = VERSION

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def support(question: str, hits: Sequence[Hit], idf: Callable[[str], float], max_idf: float = 8.0) -> dict[str, float]:
    """Signals of the corpus's support for ``question`` (already corrected): dense similarity of the
    best passage, IDF-weighted coverage of the question's terms by the top passages, the share of
    the question's terms unknown to the corpus, and the calibrated ``score``."""
    terms = set(analyse(question))
    weights = {t: idf(t) or max_idf for t in terms}
    total = sum(weights.values())
    covered: set[str] = set()
    for hit in hits[:TOP_FOR_SUPPORT]:
        covered |= set(analyse(hit.chunk.embed_text))
    coverage = sum(w for t, w in weights.items() if t in covered) / total if total else 0.0
    unknown = sum(1 for t in terms if not idf(t)) / len(terms) if terms else 1.0
    dense = max((h.dense_score for h in hits if h.dense_score is not None), default=0.0)
    both = sum(1 for h in hits[:5] if h.dense_rank and h.lexical_rank and h.dense_rank <= 5 and h.lexical_rank <= 5)
    return {"coverage": round(coverage, 4), "dense": round(dense, 4), "unknown": round(unknown, 4),
            "agreement": both, "score": round(score_of(dense, unknown), 4)}


def score_of(dense: float, unknown: float) -> float:
    """The calibrated score: dense similarity, minus a penalty for the question's terms the corpus
    never uses (« bitcoin », « clafoutis »: strong evidence that the question is about something else)."""
    return dense - UNKNOWN_WEIGHT * unknown


def off_topic_questions() -> list[str]:
    """The shipped out-of-scope questions (``assistant/data/hors_champ.yaml``)."""
    text = resources.files("assistant").joinpath("data/hors_champ.yaml").read_text(encoding="utf-8")
    return [str(q) for q in yaml.safe_load(text)["questions"]]


def pseudo_questions(index: Index, limit: int = PSEUDO_QUESTIONS) -> list[str]:
    """The first PSEUDO_WORDS words of one sentence (6 to 30 words, the longest) from each of up to
    ``limit`` passages spread evenly over the corpus in a fixed order: what a short question the
    corpus answers looks like to the scorer."""
    ids = sorted(index.metadata)
    if not ids:
        return []
    step = max(1, len(ids) // limit)
    chosen = ids[::step][:limit]
    chunks = index.manifest.get_chunks(chosen)
    out: list[str] = []
    for cid in chosen:
        chunk = chunks.get(cid)
        if chunk is None:
            continue
        sentences = [s.strip(" -*#>\t\n") for s in SENTENCE.split(chunk.text.replace("\n", " "))]
        sentences = [s for s in sentences if 6 <= len(s.split()) <= 30]
        if sentences:
            words = max(sentences, key=lambda s: len(s.split())).split()
            out.append(" ".join(words[:PSEUDO_WORDS]))
    return out


def _scores(index: Index, questions: list[str]) -> list[float]:
    out: list[float] = []
    for q in questions:
        corrected = index.lexical.correct(q)
        hits = index.search(q, k=6)
        out.append(support(corrected, hits, index.idf, index.max_idf)["score"])
    return out


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (``q`` in 0..1)."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def thresholds(in_scope: Sequence[float], off_topic: Sequence[float]) -> tuple[float, float, float, float]:
    """(refuse_below, answer_from, off-topic quantile, in-scope median) from the two score samples."""
    low = quantile(off_topic, OFF_TOPIC_QUANTILE)
    high = statistics.median(in_scope) if in_scope else low
    gap = max(high - low, 0.0)
    return low + REFUSE_AT * gap, low + ANSWER_AT * gap, low, high


def calibrate(index: Index) -> Calibration:
    """Measure both distributions on ``index`` and derive its thresholds (a few seconds)."""
    inside = _scores(index, pseudo_questions(index))
    outside = _scores(index, off_topic_questions())
    refuse, answer_from, low, high = thresholds(inside, outside)
    index._query_cache.clear()
    return Calibration(round(refuse, 4), round(answer_from, 4), round(low, 4), round(high, 4), len(inside),
                       len(outside), len(index.metadata), index.settings.embedding_model,
                       time.strftime("%Y-%m-%d %H:%M:%S"))


def stored(index: Index) -> Calibration | None:
    """The calibration stored in the index's manifest (None when absent or from another version)."""
    raw = index.manifest.get(MANIFEST_KEY)
    if not raw:
        return None
    try:
        data = json.loads(raw)
        calibration = Calibration(**data)
    except (ValueError, TypeError):
        return None
    return calibration if calibration.version == VERSION else None


def stored_in(index_dir: Path) -> dict[str, Any] | None:
    """The stored calibration of the index in ``index_dir`` as a dict (None when absent)."""
    path = index_dir / "manifest.sqlite"
    if not path.is_file():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT value FROM meta WHERE key=?", (MANIFEST_KEY,)).fetchone()
        return json.loads(row[0]) if row and row[0] else None
    except (sqlite3.Error, ValueError):
        return None


def is_stale(calibration: Calibration | None, index: Index) -> bool:
    """Recompute when absent, for another model, or after a change of more than RECALIBRATE_CHANGE
    of the passages (added or removed, counted on the passage total)."""
    if calibration is None or calibration.model != index.settings.embedding_model:
        return True
    now = len(index.metadata)
    return abs(now - calibration.chunks) > RECALIBRATE_CHANGE * max(calibration.chunks, 1)


def ensure_calibration(index: Index, force: bool = False) -> Calibration:
    """The index's calibration: the stored one if still valid, else computed and stored."""
    cached = getattr(index, "_calibration", None)
    if not force and cached is not None and not is_stale(cached, index):
        return cached
    current = None if force else stored(index)
    if current is None or is_stale(current, index):
        current = calibrate(index)
        index.manifest.set(MANIFEST_KEY, json.dumps(current.as_dict()))
    index._calibration = current  # type: ignore[attr-defined]
    return current


def decide(signals: dict[str, float], calibration: Calibration) -> str:
    """``answered``, ``partial`` (borderline: closest passages shown with reservations) or ``no_answer``."""
    score = signals["score"]
    if score < calibration.refuse_below:
        return "no_answer"
    if score < calibration.answer_from:
        return "partial"
    return "answered"


def describe(calibration: Calibration) -> str:
    """The calibration in French, for ``assistant calibration`` and the eval report."""
    return (
        f"Seuils de refus étalonnés sur cet index ({calibration.computed}, modèle {calibration.model}, "
        f"{calibration.chunks} passages) :\n"
        f"  refus en dessous de {calibration.refuse_below:.4f}, réponse incertaine jusqu'à "
        f"{calibration.answer_from:.4f}, réponse au-delà\n"
        f"  mesurés sur {calibration.in_scope} pseudo-questions tirées du corpus (médiane "
        f"{calibration.in_scope_median:.4f}) et {calibration.off_topic} questions hors champ "
        f"(quantile {OFF_TOPIC_QUANTILE:.0%} : {calibration.off_topic_q:.4f})\n"
        f"  score = similarité du meilleur passage − {UNKNOWN_WEIGHT} × part des termes "
        "de la question absents du corpus ; recalcul automatique quand plus de "
        f"{RECALIBRATE_CHANGE:.0%} des passages changent"
    ).replace(".", ",")
