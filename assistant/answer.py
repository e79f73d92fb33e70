"""``answer(question, history, filters) -> Answer``: the one call behind the CLI and, later, the web app.

This first version is extractive and deliberately plain: it retrieves passages (hybrid search),
keeps from each of the best ones the sentences that share the most terms with the question, and
cites them ``[n]``. It states nothing that is not in a cited passage. When no passage shares a
term with the question it answers ``no_answer`` and says what the corpus covers.

Usage::

    index = open_index(settings)
    result = answer("Comment lancer un conseil citoyen ?", index=index)
    result.status, result.answer, result.citations
"""

from __future__ import annotations

import time
from typing import Any

from assistant.chunking import split_sentences
from assistant.retrieve import Index
from assistant.store.lexical import analyse
from assistant.types import Answer, Citation, Hit

MAX_CITATIONS = 3
MIN_COVERAGE = 0.5  # share of the question's terms found in the cited passages
NO_ANSWER = (
    "Je n'ai pas trouvé de réponse à cette question dans les documents du centre de ressources. "
    "Je réponds sur le dialogue territorial : conseils citoyens, conseils de développement, "
    "conventions citoyennes, concertation, co-construction, écoute territoriale, et les expériences "
    "des territoires de Nouvelle-Aquitaine."
)


def _best_sentences(text: str, terms: set[str], limit: int = 2) -> list[str]:
    sentences = [s for s in split_sentences(text.replace("\n", " ")) if len(s) > 20]
    scored = [(len(terms & set(analyse(s))), -i, s) for i, s in enumerate(sentences)]
    scored = [x for x in scored if x[0] > 0]
    best = sorted(scored, reverse=True)[:limit]
    return [s for _, _, s in sorted(best, key=lambda x: -x[1])]


def _citation(n: int, hit: Hit) -> Citation:
    meta = hit.chunk.metadata
    return Citation(
        n=n, source=str(meta.get("source", "")), title=str(meta.get("title", "")),
        doc_type=str(meta.get("doc_type", "autre")), page=meta.get("page"), section=meta.get("section"),
        text=hit.chunk.text, score=round(float(hit.score), 4), illustrative=bool(meta.get("illustrative")),
    )


def answer(question: str, history: list[str] | None = None, filters: dict[str, Any] | None = None,
           index: Index | None = None) -> Answer:
    """Answer one question from the index (history and filters are accepted, used from issue 4 on)."""
    if index is None:
        from assistant.retrieve import open_index
        from assistant.settings import get_settings

        index = open_index(get_settings())
    t0 = time.perf_counter()
    hits = index.search(question, k=6)
    t1 = time.perf_counter()
    terms = set(analyse(question))
    lines: list[str] = []
    citations: list[Citation] = []
    for hit in hits:
        if hit.lexical_rank is None:
            continue
        sentences = _best_sentences(hit.chunk.text, terms)
        if not sentences:
            continue
        citation = _citation(len(citations) + 1, hit)
        citations.append(citation)
        label = " (exemple fictif)" if citation.illustrative else ""
        lines.append(f"- {' '.join(sentences)} [{citation.n}]{label}")
        if len(citations) >= MAX_CITATIONS:
            break
    covered = set().union(*(analyse(c.text) for c in citations)) if citations else set()
    coverage = len(terms & covered) / len(terms) if terms else 0.0
    if not citations or coverage < MIN_COVERAGE:
        citations, status, text = [], "no_answer", NO_ANSWER
    else:
        status = "answered"
        sources = "\n".join(
            f"- [{c.n}] {c.title}" + (f", p. {c.page}" if c.page else "") + f" ({c.source})" for c in citations
        )
        text = "D'après les documents du centre :\n\n" + "\n".join(lines) + "\n\n**Pour aller plus loin**\n" + sources
    t2 = time.perf_counter()
    return Answer(
        question=question, standalone_question=question, status=status, answer=text, citations=citations,
        timings_ms={"retrieve": round((t1 - t0) * 1000, 1), "generate": round((t2 - t1) * 1000, 1),
                    "total": round((t2 - t0) * 1000, 1)},
    )
