"""``answer(question, history, filters) -> Answer``: the one call behind the CLI, the web app, the
widget and the evals.

The flow:

1. Questions that try to give the assistant new instructions are refused (never obeyed).
2. A follow-up is rewritten into a standalone question (LLM when configured, else the heuristic of
   ``assistant.conversation``).
3. Hybrid retrieval with the filters (``assistant.retrieve``).
4. Support check (``assistant.refusal``, thresholds calibrated on each index at ingest): ``no_answer``
   when the best dense passage is not close enough, or when the passages lack what the question
   specifically asks for (a name, a year, a figure, a date: the answerability gap); ``partial``
   (closest passages quoted) when borderline. The ``no_answer`` message says what the assistant
   covers and points to the closest fiches.
5. The section the question asks about and the continuation of the best passages are added
   (``assistant.focus``); the built-in composer writes the cited answer (``assistant.compose``);
   when a language model is configured it writes the answer instead, and it is checked
   (``assistant.llm.generate``); on error, timeout or failed check the composer's answer is served
   with a note.
6. Two or three experiences are suggested (``assistant.experiences``).

Usage::

    index = open_index(settings)
    result = answer("Comment lancer un conseil citoyen ?", index=index)
    result.status, result.answer, result.citations, result.experiences
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Callable
from typing import Any

from assistant import refusal
from assistant.compose import compose
from assistant.conversation import standalone_question
from assistant.experiences import suggest
from assistant.focus import add_focus
from assistant.retrieve import Index
from assistant.types import Answer, Citation, Hit

# The refusal rule is calibrated on each index at ingest time (assistant.refusal, issue 15). BM25
# alone (``mode="lexical"``, evals only) has no dense score: it refuses on lexical coverage.
MIN_COVERAGE = 0.45  # idf-weighted share of the question's terms found in the top passages
PARTIAL_EXCERPTS = 3

SCOPE = (
    "Je réponds à partir des documents du centre de ressources Pays et Quartiers de Nouvelle-Aquitaine "
    "sur le dialogue territorial : conseils citoyens, conseils de développement, conventions "
    "citoyennes, concertation, co-construction, écoute territoriale, tiers-lieux, PTCE, Territoires "
    "zéro chômeur, PCAET, PAT, médiation, évaluation participative, et les expériences des territoires."
)
NO_ANSWER = "Je n'ai pas trouvé de réponse à cette question dans les documents du centre. "
PARTIAL = (
    "**Réponse incertaine** : les documents ne répondent peut-être pas exactement à cette question. "
    "Voici les passages les plus proches, à vérifier avant de vous en servir :"
)
INJECTION_ANSWER = (
    "Je ne peux pas changer mes consignes ni sortir de mon rôle : je réponds seulement, en citant "
    "mes sources, à des questions sur le dialogue territorial. "
)
INJECTION = re.compile(
    r"(ignore[rz]?|oublie[rz]?|ne tiens pas compte)\b.{0,40}\b(instructions?|consignes?|règles?|corpus|prompt|documents?|tout)"
    r"|tu es (maintenant|désormais)|à partir de maintenant,? tu|nouvelles? (instructions?|consignes?)"
    r"|(affiche|révèle|montre|donne)[- ]?(moi)?\b.{0,20}\b(prompt|instructions?|consignes?) (système|cachées?|initiales?)"
    r"|system prompt|jailbreak|mode développeur|agis comme|fais comme si tu étais|joue le rôle",
    re.I,
)


def is_injection(question: str) -> bool:
    """Does the question try to give the assistant new instructions?"""
    plain = unicodedata.normalize("NFC", question)
    return bool(INJECTION.search(plain))


def support(question: str, hits: list[Hit], idf: Callable[[str], float], max_idf: float = 8.0,
            glossary: dict[str, str] | None = None) -> dict[str, Any]:
    """Signals used to decide whether the corpus supports an answer (see ``assistant.refusal.support``)."""
    return refusal.support(question, hits, idf, max_idf, glossary)


def decide(signals: dict[str, Any], index: Index, mode: str = "hybrid") -> str:
    """``answered`` | ``partial`` | ``no_answer`` for the index's own calibration (BM25 alone: the
    lexical coverage rule, never ``partial``)."""
    if mode == "lexical":
        return "answered" if signals["coverage"] >= MIN_COVERAGE else "no_answer"
    return refusal.decide(signals, refusal.ensure_calibration(index))


def refusal_rule(settings: Any) -> dict[str, Any]:
    """The refusal thresholds in force for the settings' index (recorded with feedback)."""
    return {"calibration": refusal.stored_in(settings.index_dir, settings), "unknown_weight": refusal.UNKNOWN_WEIGHT,
            "min_coverage": MIN_COVERAGE, "top_for_support": refusal.TOP_FOR_SUPPORT}


def citation_of(n: int, hit: Hit) -> Citation:
    meta = hit.chunk.metadata
    return Citation(
        n=n, source=str(meta.get("source", "")), title=str(meta.get("title", "")),
        doc_type=str(meta.get("doc_type", "autre")), page=meta.get("page"), section=meta.get("section"),
        text=hit.chunk.text, score=round(float(hit.score), 4), illustrative=bool(meta.get("illustrative")),
        ocr=bool(meta.get("ocr")),
    )


def excerpt(text: str, limit: int = 320) -> str:
    """A passage cut at a word boundary near ``limit`` characters, on one line."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[:limit].rsplit(" ", 1)[0]
    return cut + " …"


def partial_text(hits: list[Hit]) -> str:
    """The ``partial`` answer: a French warning, then the closest passages quoted and cited."""
    lines = [PARTIAL, ""]
    for n, hit in enumerate(hits, start=1):
        meta = hit.chunk.metadata
        where = str(meta.get("title") or meta.get("source") or "")
        if meta.get("section"):
            where += f", « {meta['section']} »"
        if meta.get("page"):
            where += f", page {meta['page']}"
        lines.append(f"> {excerpt(hit.chunk.text)} [{n}]\n>\n> — *{where}*\n")
    return "\n".join(lines).rstrip()


def _closest(hits: list[Hit]) -> str:
    titles: list[str] = []
    for hit in hits:
        meta = hit.chunk.metadata
        if meta.get("doc_type") == "fiche_outil" and meta.get("title") not in titles:
            titles.append(str(meta.get("title")))
    if not titles:
        return ""
    return "\n\nFiches les plus proches de votre question, à consulter :\n" + "\n".join(f"- {t}" for t in titles[:3])


def answer(question: str, history: list[str] | None = None, filters: dict[str, Any] | None = None,
           index: Index | None = None, chat_model: Any = None, on_token: Callable[[str], None] | None = None,
           mode: str = "hybrid") -> Answer:
    """Answer one question (see the module docstring). ``mode`` (hybrid|dense|lexical) is for evals."""
    if index is None:
        from assistant.retrieve import open_index
        from assistant.settings import get_settings

        index = open_index(get_settings())
    if chat_model is None:
        chat_model = _chat_model(index)
    t0 = time.perf_counter()
    question = (question or "").strip()
    history = [h for h in (history or []) if h and h.strip()]
    if not question or is_injection(question):
        text = (INJECTION_ANSWER if question else "Posez une question sur le dialogue territorial. ") + SCOPE
        return Answer(question, question, "no_answer", text, timings_ms={"retrieve": 0.0, "generate": 0.0, "total": 0.0})

    standalone = None
    if chat_model is not None and history:
        from assistant.llm import rewrite

        standalone = rewrite(question, history, chat_model)
    standalone = standalone or standalone_question(question, history)
    hits = index.search(standalone, k=6, filters=filters, mode=mode)
    t1 = time.perf_counter()
    corrected = index.lexical.correct(standalone)
    signals = support(corrected, hits, index.idf, index.max_idf, index.glossary)
    status = decide(signals, index, mode)
    text, used = "", []
    if status == "answered":
        hits, focus = add_focus(corrected, hits, index)
        text, used = compose(standalone, hits, index.idf, focus)
        status = "answered" if used else "no_answer"
    elif status == "partial":
        used = hits[:PARTIAL_EXCERPTS]
        text = partial_text(used)
        status = "partial" if used else "no_answer"
    citations = [citation_of(n, hit) for n, hit in enumerate(used, start=1)]
    if status == "no_answer":
        citations = []
        text = NO_ANSWER + SCOPE + _closest(hits)
    elif status == "answered" and chat_model is not None:
        from assistant.llm import generate

        result = generate(standalone, citations, chat_model, on_token=on_token)
        if result.ok and result.text:
            text = result.text + (f"\n\n*{result.note}*" if result.note else "")
        else:
            text = text + f"\n\n*{result.note}*"
    experiences = suggest(index, standalone, filters, exclude_sources={c.source for c in citations}) if status == "answered" else []
    t3 = time.perf_counter()
    # "generate" covers composition (or the LLM) and the experience suggestions
    timings = {"retrieve": round((t1 - t0) * 1000, 1), "generate": round((t3 - t1) * 1000, 1),
               "total": round((t3 - t0) * 1000, 1)}
    return Answer(question=question, standalone_question=standalone, status=status, answer=text,
                  citations=citations, experiences=experiences, timings_ms=timings)


def _chat_model(index: Index) -> Any:
    if index.settings.llm == "none":
        return None
    cached = getattr(index, "_chat_model", None)
    if cached is None:
        from assistant.llm import get_chat_model

        cached = get_chat_model(index.settings)
        index._chat_model = cached  # type: ignore[attr-defined]
    return cached
