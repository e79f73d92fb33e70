"""Run a question set through ``answer()`` (the app's own call) for one configuration.

Configurations: ``bm25`` (BM25 only), ``dense`` (vectors only), ``hybrid`` (the app's default, built-in
composer), ``llm`` (hybrid + the language model of ``ASSISTANT_LLM``; only when one is configured).
The first three never call a language model, even when one is configured.

Usage::

    index = open_index(settings)
    report = run_eval(load_set(Path("evals/gold/test.yaml")), index, config="hybrid",
                      set_path=Path("evals/gold/test.yaml"))
    report["overall"]["hit@3"], report["by_doc_type"], report["by_kind"], report["records"]
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.errors import AssistantError
from assistant.evals import metrics
from assistant.evals.goldsets import set_digest
from assistant.types import Answer

if TYPE_CHECKING:
    from assistant.retrieve import Index

CONFIGS = {"bm25": "lexical", "dense": "dense", "hybrid": "hybrid", "llm": "hybrid"}
CONFIG_LABELS = {"bm25": "BM25 seul", "dense": "dense seul", "hybrid": "hybride", "llm": "hybride + LLM"}
RANK_DEPTH = 20  # passages searched to rank the distinct files (hit@1/3/5, MRR)
NO_GOLD = "aucune (refus attendu)"


@contextlib.contextmanager
def _settings_for(index: Index, config: str) -> Iterator[None]:
    """bm25 / dense / hybrid run without a language model whatever ``ASSISTANT_LLM`` says."""
    saved = index.settings
    if config != "llm" and saved.llm != "none":
        index.settings = saved.model_copy(update={"llm": "none"})
    try:
        yield
    finally:
        index.settings = saved


def file_terms(index: Index) -> dict[str, set[str]]:
    """The analysed terms of each corpus file (from the lexical index), for the suggestion metric."""
    lexical = index.lexical
    if not lexical.ids:
        return {}
    terms = {t: term for term, t in lexical.vocab.items()}
    matrix = lexical.matrix.tocsc()
    out: dict[str, set[str]] = {}
    for j, cid in enumerate(lexical.ids):
        source = str(index.metadata.get(cid, {}).get("source", ""))
        rows = matrix.indices[matrix.indptr[j]:matrix.indptr[j + 1]]
        out.setdefault(source, set()).update(terms[int(t)] for t in rows)
    return out


def evaluate_one(entry: dict[str, Any], result: Answer, ranked: list[str], doc_types: dict[str, str],
                 llm: bool, terms_of_files: dict[str, set[str]] | None = None) -> dict[str, Any]:
    """One record: the entry, what was answered and cited, and its per-question metrics."""
    gold = entry["gold_sources"]
    passages = {c.n: " ".join(x for x in (c.title, c.section or "", c.text) if x) for c in result.citations}
    support = metrics.citation_support(result.answer, passages) if result.status == "answered" else {}
    good, total = metrics.sentence_support(result.answer, passages) if result.status == "answered" else (0, 0)
    cited_text = " ".join(c.text for c in result.citations)
    suggested = [str(e.get("source")) for e in result.experiences]
    return {
        "id": entry["id"], "question": entry["question"], "kind": entry["kind"],
        "history": entry["history"], "filters": entry["filters"],
        "doc_type": doc_types.get(gold[0], "inconnu") if gold else NO_GOLD,
        "expected_status": entry["expected_status"], "status": result.status,
        "gold_sources": gold, "key_facts": entry["key_facts"], "ranked_sources": ranked[:5],
        "hit@1": metrics.hit_at(ranked, gold, 1), "hit@3": metrics.hit_at(ranked, gold, 3),
        "hit@5": metrics.hit_at(ranked, gold, 5), "rr": metrics.reciprocal_rank(ranked, gold),
        "facts_in_citations": metrics.facts_found(entry["key_facts"], cited_text),
        "facts_in_answer": metrics.facts_found(entry["key_facts"], metrics.answer_body(result.answer)),
        "facts_in_cited_sentences": metrics.facts_in_cited_sentences(
            entry["key_facts"], result.answer, {c.n: c.text for c in result.citations}),
        "suggestions": suggested,
        "suggestions_relevant": metrics.suggestions_relevant(result.standalone_question, suggested,
                                                             terms_of_files or {}),
        "citations_supported": [support[n] for n in sorted(support)],
        "sentences_supported": good, "sentences_total": total, "llm": llm,
        "latency_ms": float(result.timings_ms.get("total", 0.0)),
        "answer": result.answer, "standalone_question": result.standalone_question,
        "citations": [{"n": c.n, "source": c.source, "section": c.section, "page": c.page,
                       "text": c.text} for c in result.citations],
    }


def _progress(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc="Évaluation", unit="question", file=sys.stderr, disable=not enabled)


def run_eval(entries: list[dict[str, Any]], index: Index, config: str = "hybrid", set_path: Path | None = None,
             progress: bool = True, on_progress: Callable[[int, int], None] | None = None,
             lock: threading.Lock | None = None) -> dict[str, Any]:
    """Evaluate ``entries`` (from ``load_set``) with one configuration; returns the report dict.
    ``lock`` is held around each question (the web app answers one question at a time)."""
    from assistant.answer import answer

    if config not in CONFIGS:
        raise AssistantError(f"Configuration inconnue « {config} » : choisissez parmi {', '.join(CONFIGS)}.")
    if config == "llm" and index.settings.llm == "none":
        raise AssistantError("La configuration llm demande un modèle de langage : définissez ASSISTANT_LLM.")
    mode = CONFIGS[config]
    guard = lock or contextlib.nullcontext()
    doc_types = {str(m.get("source")): str(m.get("doc_type") or "autre") for m in index.metadata.values()}
    terms_of_files = file_terms(index)
    with guard:
        index.search("échauffement du modèle", k=1, mode=mode)  # load the model outside the latencies
    index._query_cache.clear()  # no vector reused from another run: latencies are per question
    records: list[dict[str, Any]] = []
    started = time.time()
    bar = _progress(len(entries), progress)
    try:
        for i, entry in enumerate(entries, start=1):
            with guard, _settings_for(index, config):
                result = answer(entry["question"], history=entry["history"], filters=entry["filters"],
                                index=index, mode=mode)
                hits = index.search(result.standalone_question, k=RANK_DEPTH, mode=mode, filters=entry["filters"])
            ranked = metrics.distinct_sources(str(h.chunk.metadata["source"]) for h in hits)
            records.append(evaluate_one(entry, result, ranked, doc_types, config == "llm", terms_of_files))
            bar.update(1)
            if on_progress:
                on_progress(i, len(entries))
    finally:
        bar.close()
    settings = index.settings
    return {
        "meta": {"config": config, "config_label": CONFIG_LABELS[config], "mode": mode,
                 "set": str(set_path) if set_path else None,
                 "set_sha1": set_digest(set_path) if set_path and set_path.is_file() else None,
                 "embedding_model": settings.embedding_model, "chunk_tokens": settings.chunk_tokens,
                 "llm": settings.llm if config == "llm" else "none",
                 "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
                 "seconds": round(time.time() - started, 1)},
        "overall": metrics.summarise(records),
        "by_doc_type": metrics.by_group(records, "doc_type"),
        "by_kind": metrics.by_group(records, "kind"),
        "records": records,
    }
