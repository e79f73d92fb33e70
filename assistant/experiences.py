"""Experience suggestions: two or three fiches expériences relevant to the question.

They are found by a hybrid search restricted to ``doc_type = fiche_experience`` (the user's scale
and département, when given as filters, come first), grouped by file, and each gets a one-line reason
built from its metadata only (« même échelle : intercommunalité ; thème : mobilités »). They are
distinct from the citations (a file already cited is not suggested again) and carry the
``illustrative`` mark of their front matter.

Usage::

    suggest(index, "conseil de développement en milieu rural", filters={"echelle": "intercommunalite"})
"""

from __future__ import annotations

from typing import Any

from assistant.store.lexical import analyse

ECHELLE_LABELS = {
    "quartier": "quartier", "commune": "commune", "intercommunalite": "intercommunalité",
    "pays_petr": "pays / PETR", "departement": "département", "region": "région",
}


def reason(meta: dict[str, Any], question: str, filters: dict[str, Any] | None) -> str:
    """Why this experience: scale, matching themes, territory — from metadata only."""
    parts: list[str] = []
    filters = filters or {}
    echelles = meta.get("echelle") or []
    wanted = filters.get("echelle")
    if wanted and wanted in echelles:
        parts.append(f"même échelle : {ECHELLE_LABELS.get(wanted, wanted)}")
    elif echelles:
        parts.append("échelle : " + ", ".join(ECHELLE_LABELS.get(e, e) for e in echelles))
    q_terms = set(analyse(question))
    themes = [t for t in meta.get("themes") or [] if set(analyse(t)) & q_terms]
    if themes:
        parts.append(("thème : " if len(themes) == 1 else "thèmes : ") + ", ".join(themes[:3]))
    departement = meta.get("departement")
    if departement and filters.get("departement") == departement:
        parts.append(f"même département : {departement}")
    elif departement:
        parts.append(f"département : {departement}")
    return " ; ".join(parts) or "expérience proche de la question"


def suggest(index: Any, question: str, filters: dict[str, Any] | None = None,
            exclude_sources: set[str] | None = None, k: int = 3) -> list[dict[str, Any]]:
    """Up to ``k`` experiences (dicts of the JSON contract: source, title, territory, why, illustrative)."""
    exp_filters = {key: value for key, value in (filters or {}).items() if key in ("echelle", "departement", "theme")}
    exp_filters["doc_type"] = "fiche_experience"
    hits = index.search(question, k=20, filters=exp_filters)
    if len(hits) < k and len(exp_filters) > 1:  # not enough at that scale: widen to all experiences
        hits += index.search(question, k=20, filters={"doc_type": "fiche_experience"})
    out: list[dict[str, Any]] = []
    seen = set(exclude_sources or ())
    for hit in hits:
        meta = hit.chunk.metadata
        source = meta.get("source")
        if source in seen or hit.lexical_rank is None:
            continue
        seen.add(source)
        out.append({
            "source": source, "title": meta.get("title"), "territory": meta.get("territoire"),
            "departement": meta.get("departement"), "echelle": meta.get("echelle") or [],
            "why": reason(meta, question, filters), "illustrative": bool(meta.get("illustrative")),
        })
        if len(out) >= k:
            break
    return out
