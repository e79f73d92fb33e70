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

import json
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from assistant.store.lexical import analyse, strip_accents

if TYPE_CHECKING:
    from assistant.retrieve import Index
    from assistant.types import Hit

MANIFEST_KEY = "refusal_calibration"
VERSION = 2  # 2: + the answerability gap and its weight (perturbed pseudo-questions)
TOP_FOR_SUPPORT = 3
UNKNOWN_WEIGHT = 0.1
OFF_TOPIC_QUANTILE = 0.9
REFUSE_AT = 0.45
ANSWER_AT = 0.6
PSEUDO_QUESTIONS = 200
PSEUDO_WORDS = 10  # a question is short: the first words of a sentence, not the whole sentence
RECALIBRATE_CHANGE = 0.2
SENTENCE = re.compile(r"(?<=[.!?…])\s+")
# answerability (in-domain questions whose asked-for content the passages lack), see ``gap``
TOP_FOR_GAP = 5  # the passages that must hold the question's anchors and asked-for type
UNFILLED_GAP = 0.5  # an asked-for type found nowhere: weaker evidence than a missing name
TYPE_WINDOW = 15  # words around a question term where the asked-for type must appear
PERTURBED_QUESTIONS = 100  # perturbed pseudo-questions measured at calibration
PERTURBED_RECALL = 0.75  # share of perturbed pseudo-questions the gap weight is set to refuse
MAX_GAP_SPREAD = 1.0  # the gap weight never exceeds this many in-scope/off-topic spreads
WORDS = re.compile(r"[^\W_]+(?:[-'’][^\W_]+)*", re.UNICODE)
YEAR = re.compile(r"(?:19|20)\d\d")
PHONE = re.compile(r"(?<!\d)0\d(?:[ .-]?\d\d){4}(?!\d)")
SENTENCE_MARKS = '.!?:;«"(\n—–-*#>|•'
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


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
    gap_weight: float = 0.0
    perturbed: int = 0
    perturbed_refused: float = 0.0
    in_scope_refused: float = 0.0
    version: int = VERSION

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def support(question: str, hits: Sequence[Hit], idf: Callable[[str], float], max_idf: float = 8.0,
            glossary: dict[str, str] | None = None) -> dict[str, Any]:
    """Signals of the corpus's support for ``question`` (already corrected): dense similarity of the
    best passage, IDF-weighted coverage of the question's terms by the top passages, the share of
    the question's terms unknown to the corpus, the calibrated ``score``, and the answerability
    ``gap`` (what the question specifically asks for that the top passages lack, see ``gap``)."""
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
    answerable = gap(question, hits, idf, max_idf, glossary)
    return {"coverage": round(coverage, 4), "dense": round(dense, 4), "unknown": round(unknown, 4),
            "agreement": both, "score": round(score_of(dense, unknown), 4), "gap": answerable["gap"],
            "missing": answerable["missing"], "asked": answerable["asked"], "unfilled": answerable["unfilled"]}


def score_of(dense: float, unknown: float) -> float:
    """The calibrated score: dense similarity, minus a penalty for the question's terms the corpus
    never uses (« bitcoin », « clafoutis »: strong evidence that the question is about something else)."""
    return dense - UNKNOWN_WEIGHT * unknown


@dataclass(frozen=True)
class AskedType:
    """One entry of ``assistant/data/types_reponse.yaml``: how a question asks for a type of content."""

    name: str
    phrases: tuple[str, ...]  # accent-free, lower case; a trailing « … »: at the start of the question only
    nouns: tuple[str, ...]
    answer: str


@lru_cache(maxsize=1)
def answer_types() -> tuple[tuple[AskedType, ...], frozenset[str], frozenset[str]]:
    """The asked-for types, the number words, and the month names and time markers of
    ``data/types_reponse.yaml``."""
    text = resources.files("assistant").joinpath("data/types_reponse.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)

    def plain(words: Sequence[str]) -> tuple[str, ...]:  # « … » stays one mark (NFKD makes it « ... »)
        return tuple(strip_accents(str(w).lower().replace("…", "\0")).replace("\0", "…").strip() for w in words)

    types = tuple(AskedType(str(t["type"]), plain(t.get("questions") or []), plain(t.get("noms") or []),
                            str(t["reponse"])) for t in data["types"])
    times = plain((data.get("mois") or []) + (data.get("reperes_de_temps") or []))
    return types, frozenset(plain(data.get("nombres_en_lettres") or [])), frozenset(times)


def asked_type(question: str) -> AskedType | None:
    """The type of content the question asks for (« combien » -> nombre), None for an open question."""
    words = [strip_accents(w.lower()) for w in WORDS.findall(question.replace("’", "'"))]
    words = [w.split("'")[-1] for w in words]
    flat = " " + " ".join(words) + " "
    for kind in answer_types()[0]:
        for phrase in kind.phrases:
            if phrase.endswith("…"):
                if flat.startswith(" " + phrase.rstrip("… ") + " "):
                    return kind
            elif f" {phrase} " in flat:
                return kind
        for i, w in enumerate(words):
            if w in ("quel", "quelle", "quels", "quelles") and any(x in kind.nouns for x in words[i + 1:i + 5]):
                return kind
    return None


def anchors(question: str) -> list[str]:
    """The question's anchors: the specific things it names, which the passages that answer it must
    name too. Years, and capitalised words (names of places, bodies, people, acronyms) except the
    first word of a sentence."""
    out: list[str] = []
    for match in WORDS.finditer(question):
        word = match.group(0)
        before = question[:match.start()].rstrip(" \t\u00a0")
        if YEAR.fullmatch(word) or (word[0].isupper() and before and before[-1] not in SENTENCE_MARKS):
            out.append(word)
    return out


def names(text: str) -> list[str]:
    """The anchors of a passage that are names: acronyms, and capitalised words that are not French
    dictionary words (« Bègles », « CNDP »; not « Structure » at the start of a list line)."""
    from assistant.store.lexical import french_words

    known = french_words()
    return [w for w in anchors(text) if not YEAR.fullmatch(w)
            and (w.isupper() or strip_accents(w.lower()) not in known)]


def _type_near(kind: AskedType, text: str, terms: set[str]) -> bool:
    """Does ``text`` hold content of the asked-for type within TYPE_WINDOW words of a question term?"""
    if kind.answer == "telephone":
        return bool(PHONE.search(text))
    if kind.answer == "courriel":
        return bool(EMAIL.search(text))
    _, numbers, months = answer_types()
    words = WORDS.findall(text)
    stems = [analyse(w) for w in words]
    near = [i for i, st in enumerate(stems) if st and st[0] in terms]
    if not near:
        return False
    for i, word in enumerate(words):
        if not any(abs(i - j) <= TYPE_WINDOW for j in near):
            continue
        plain = strip_accents(word.lower())
        if kind.answer == "nombre" and (word[0].isdigit() or plain in numbers):
            return True
        if kind.answer == "date" and (YEAR.fullmatch(word) or any(p in months for p in plain.replace("’", "'").split("'"))):
            return True
        if (kind.answer == "nom" and word[0].isupper() and i > 0 and not words[i - 1].endswith(".")
                and not (stems[i] and stems[i][0] in terms)):
            return True
    return False


def gap(question: str, hits: Sequence[Hit], idf: Callable[[str], float], max_idf: float = 8.0,
        glossary: dict[str, str] | None = None) -> dict[str, Any]:
    """How much of what the question specifically asks for the top passages lack, in 0..1: the
    largest of (a) each anchor (``anchors``) missing from the TOP_FOR_GAP passages, weighted by its
    rarity (idf / max idf; 1 when the corpus never uses it), and (b) UNFILLED_GAP when the question
    asks for a type of content (« combien », « quand », « numéro de téléphone », see ``data/types_reponse.yaml``)
    that none of those passages holds near the question's terms. An acronym counts as found when
    its glossary expansion is."""
    top = hits[:TOP_FOR_GAP]
    present: set[str] = set()
    for hit in top:
        present |= set(analyse(hit.chunk.embed_text))
    expansions = {k.lower(): v for k, v in (glossary or {}).items()}
    missing: list[str] = []
    value = 0.0
    for word in anchors(question):
        terms = analyse(word)
        if not terms or all(t in present for t in terms):
            continue
        expansion = expansions.get(word.lower())
        if expansion and all(t in present for t in analyse(expansion)):
            continue
        weight = max(idf(t) / max_idf if idf(t) else 1.0 for t in terms)
        missing.append(word)
        value = max(value, min(weight, 1.0))
    kind = asked_type(question)
    unfilled = False
    if kind is not None and top:
        terms = set(analyse(question))
        unfilled = not any(_type_near(kind, hit.chunk.text, terms) for hit in top)
        if unfilled:
            value = max(value, UNFILLED_GAP)
    return {"gap": round(value, 4), "missing": missing, "asked": kind.name if kind else None,
            "unfilled": unfilled}


def off_topic_questions() -> list[str]:
    """The shipped out-of-scope questions (``assistant/data/hors_champ.yaml``)."""
    text = resources.files("assistant").joinpath("data/hors_champ.yaml").read_text(encoding="utf-8")
    return [str(q) for q in yaml.safe_load(text)["questions"]]


def pseudo_questions(index: Index, limit: int = PSEUDO_QUESTIONS) -> list[str]:
    """The first PSEUDO_WORDS words of one sentence (6 to 30 words, the longest) from each of up to
    ``limit`` passages spread evenly over the corpus in a fixed order: what a short question the
    corpus answers looks like to the scorer."""
    return [q for q, _ in pseudo_sources(index, limit)]


def pseudo_sources(index: Index, limit: int = PSEUDO_QUESTIONS) -> list[tuple[str, str]]:
    """(pseudo-question, text of the passage it comes from), see ``pseudo_questions``."""
    ids = sorted(index.metadata)
    if not ids:
        return []
    step = max(1, len(ids) // limit)
    chosen = ids[::step][:limit]
    chunks = index.manifest.get_chunks(chosen)
    out: list[tuple[str, str]] = []
    for cid in chosen:
        chunk = chunks.get(cid)
        if chunk is None:
            continue
        sentences = [s.strip(" -*#>\t\n") for s in SENTENCE.split(chunk.text.replace("\n", " "))]
        sentences = [s for s in sentences if 6 <= len(s.split()) <= 30]
        if sentences:
            words = max(sentences, key=lambda s: len(s.split())).split()
            out.append((" ".join(words[:PSEUDO_WORDS]), chunk.embed_text))
    return out


def perturbed_questions(sources: Sequence[tuple[str, str]], idf: Callable[[str], float]) -> list[str]:
    """In-domain questions the corpus does not answer, made from the pseudo-questions: the most
    specific word of each (its rarest anchor, else its rarest word) is replaced by an anchor of
    another passage, one its own passage never uses (« … du conseil de Bègles » -> « … du conseil de
    Tulle »). The subject stays the corpus's; the specific thing asked is no longer there."""
    pool: list[tuple[str, set[str]]] = []
    seen: set[str] = set()
    for _, text in sources:
        for word in names(text):
            terms = analyse(word)
            if terms and all(idf(t) for t in terms) and word not in seen:
                seen.add(word)
                pool.append((word, set(terms)))
    if not pool:
        return []
    out: list[str] = []
    step = -(-len(sources) // PERTURBED_QUESTIONS) or 1
    for i, (question, text) in enumerate(sources[::step]):
        own = set(analyse(text))
        words = [w for w in WORDS.findall(question) if analyse(w)]
        candidates = anchors(question) or words
        if not candidates:
            continue
        target = max(candidates, key=lambda w: max(idf(t) for t in analyse(w)) if analyse(w) else 0.0)
        start = (i * 7919 + len(pool) // 2) % len(pool)  # a fixed, spread-out walk over the pool
        for k in range(len(pool)):
            word, terms = pool[(start + k) % len(pool)]
            if not terms & own:
                out.append(re.sub(rf"(?<![\w-]){re.escape(target)}(?![\w-])", word, question, count=1))
                break
    return out


def _signals(index: Index, questions: Sequence[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for q in questions:
        corrected = index.lexical.correct(q)
        hits = index.search(q, k=6)
        out.append(support(corrected, hits, index.idf, index.max_idf, index.glossary))
    return out


def _scores(index: Index, questions: list[str]) -> list[float]:
    return [s["score"] for s in _signals(index, questions)]


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


def gap_weight(perturbed: Sequence[dict[str, Any]], refuse_below: float, spread: float) -> float:
    """The weight of the answerability gap on this index: the smallest that refuses PERTURBED_RECALL
    of the perturbed pseudo-questions (``score - weight x gap`` below the refusal threshold), at most
    MAX_GAP_SPREAD x the spread between the in-scope median and the off-topic quantile."""
    cap = MAX_GAP_SPREAD * max(spread, 0.0)
    needs: list[float] = []
    for s in perturbed:
        if s["score"] < refuse_below:
            needs.append(0.0)
        elif s["gap"] > 0:
            needs.append((s["score"] - refuse_below) / s["gap"] + 1e-4)
        else:
            needs.append(float("inf"))
    if not needs:
        return cap
    return min(quantile([min(n, cap) for n in needs], PERTURBED_RECALL), cap)


def adjusted(signals: dict[str, Any], calibration: Calibration) -> float:
    """The score the decision compares to the thresholds: ``score - gap_weight x gap``."""
    return float(signals["score"]) - calibration.gap_weight * float(signals.get("gap") or 0.0)


def calibrate(index: Index) -> Calibration:
    """Measure the distributions on ``index`` and derive its thresholds and gap weight (seconds)."""
    sources = pseudo_sources(index)
    inside = _signals(index, [q for q, _ in sources])
    outside = _signals(index, off_topic_questions())
    perturbed = _signals(index, perturbed_questions(sources, index.idf))
    refuse, answer_from, low, high = thresholds([s["score"] for s in inside], [s["score"] for s in outside])
    weight = gap_weight(perturbed, refuse, high - low)
    index._query_cache.clear()
    calibration = Calibration(round(refuse, 4), round(answer_from, 4), round(low, 4), round(high, 4), len(inside),
                              len(outside), len(index.metadata), index.settings.embedding_model,
                              time.strftime("%Y-%m-%d %H:%M:%S"), gap_weight=round(weight, 4),
                              perturbed=len(perturbed))
    calibration.perturbed_refused = round(_refused(perturbed, calibration), 4)
    calibration.in_scope_refused = round(_refused(inside, calibration), 4)
    return calibration


def _refused(signals: Sequence[dict[str, Any]], calibration: Calibration) -> float:
    return sum(decide(s, calibration) == "no_answer" for s in signals) / len(signals) if signals else 0.0


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


def stored_in(index_dir: Path, settings: Any = None) -> dict[str, Any] | None:
    """The stored calibration of the index in ``index_dir`` (or, with ``settings`` naming a
    PostgreSQL database, in that shared state) as a dict (None when absent)."""
    from assistant.store.state import read_meta

    raw = read_meta(index_dir, settings, MANIFEST_KEY)
    try:
        return json.loads(raw) if raw else None
    except ValueError:
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


def decide(signals: dict[str, Any], calibration: Calibration) -> str:
    """``answered``, ``partial`` (borderline: closest passages shown with reservations) or ``no_answer``,
    from the ``adjusted`` score: an in-domain question whose asked-for content the passages lack
    loses up to ``gap_weight`` and falls to ``partial`` or ``no_answer``."""
    score = adjusted(signals, calibration)
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
        f"de la question absents du corpus − {calibration.gap_weight:.4f} × lacune\n"
        "  lacune (0 à 1) = ce que la question demande précisément (nom, année, chiffre, date, numéro) "
        "et que les meilleurs passages ne contiennent pas\n"
        f"  poids de la lacune réglé sur {calibration.perturbed} pseudo-questions modifiées (un nom "
        f"remplacé par un autre du corpus) : {calibration.perturbed_refused:.0%} refusées, contre "
        f"{calibration.in_scope_refused:.0%} des pseudo-questions intactes\n"
        f"  recalcul automatique quand plus de {RECALIBRATE_CHANGE:.0%} des passages changent"
    ).replace(".", ",")
