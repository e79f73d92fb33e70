"""Hybrid retrieval: dense (Chroma) + lexical (BM25, French stemming), fused by reciprocal rank.

- Filters (``doc_type``, ``echelle``, ``departement``, ``theme``) apply in both retrievers: as a
  Chroma ``where`` clause for the dense side, as an allowed-id set for BM25.
- Query expansion from the corpus glossary, both ways: « PETR » adds « pôle d'équilibre
  territorial et rural », and the spelled-out form adds the acronym.
- Near-duplicate passages (same terms, e.g. a paragraph repeated in two files) are removed.
- Only chunks listed in the manifest are returned: vectors left behind by an interrupted ingest are
  ignored. The embedding model is loaded on the first dense query, not at opening.

Usage::

    index = open_index(settings)
    hits = index.search("comment lancer un conseil citoyen ?", k=5, filters={"echelle": "quartier"})
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assistant.settings import Settings
from assistant.store.lexical import Bm25Index, analyse, strip_accents
from assistant.store.manifest import Manifest
from assistant.store.state import open_state, require_index
from assistant.store.vector import slug
from assistant.types import Hit

RRF_K = 60
FILTER_KEYS = ("doc_type", "echelle", "departement", "theme")
DUPLICATE_JACCARD = 0.85
QUERY_CACHE_SIZE = 256
EXPANSION_WEIGHT = 0.5  # BM25 weight of the terms that only the glossary expansion brings


def rrf(rankings: list[list[str]], k: int = RRF_K) -> dict[str, float]:
    """Reciprocal rank fusion: score(id) = sum over rankings of 1 / (k + rank)."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return scores


def matches(meta: dict[str, Any], filters: dict[str, Any]) -> bool:
    """Does a chunk's metadata satisfy the filters? (lists: echelle, themes; case/accents ignored)."""
    for key, wanted in filters.items():
        if wanted in (None, "", []):
            continue
        if key == "doc_type" and meta.get("doc_type") != wanted:
            return False
        if key == "echelle" and wanted not in (meta.get("echelle") or []):
            return False
        if key == "departement" and slug(str(meta.get("departement") or "")) != slug(str(wanted)):
            return False
        if key == "theme" and slug(str(wanted)) not in {slug(t) for t in meta.get("themes") or []}:
            return False
    return True


def chroma_where(filters: dict[str, Any]) -> dict[str, Any] | None:
    """The same filters as a Chroma ``where`` clause over the flattened metadata."""
    clauses: list[dict[str, Any]] = []
    for key, wanted in filters.items():
        if wanted in (None, "", []):
            continue
        if key == "doc_type":
            clauses.append({"doc_type": wanted})
        elif key == "echelle":
            clauses.append({f"echelle_{slug(str(wanted))}": True})
        elif key == "departement":
            clauses.append({"departement_slug": slug(str(wanted))})
        elif key == "theme":
            clauses.append({f"theme_{slug(str(wanted))}": True})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def expand_query(question: str, glossary: dict[str, str]) -> str:
    """Add the expansion of each acronym found, and the acronym of each expansion found."""
    extra: list[str] = []
    plain = strip_accents(question.lower())
    for acronym, expansion in glossary.items():
        if re.search(rf"\b{re.escape(acronym)}\b", question, flags=re.I if len(acronym) > 3 else 0):
            extra.append(expansion)
        elif strip_accents(expansion.lower()) in plain:
            extra.append(acronym)
    return question if not extra else question + " (" + " ; ".join(extra) + ")"


@dataclass
class Index:
    """An opened index: manifest, lexical index, and (lazily) the vector store and the embedder."""

    settings: Settings
    index_dir: Path
    manifest: Manifest
    lexical: Bm25Index
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    glossary: dict[str, str] = field(default_factory=dict)
    _store: Any = None
    _embedder: Any = None
    _fallback: Any = None
    _query_cache: dict[str, Any] = field(default_factory=dict)
    _files: dict[str, list[str]] | None = None
    published: int = 0  # the published generation this index was opened at

    @property
    def store(self) -> Any:
        if self._store is None:
            from assistant.store.vector import open_vector_store

            self._store = open_vector_store(self.settings, self.index_dir)
        return self._store

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            from assistant.embedders import get_embedder

            self._embedder = get_embedder(self.settings)
        return self._embedder

    @property
    def max_idf(self) -> float:
        return float(self.lexical.idf.max()) if len(self.lexical.idf) else 1.0

    def query_vector(self, query: str) -> Any:
        """The query's embedding; the last few are kept, since one answer searches the same text twice
        (passages, then experiences) and the evals repeat questions across modes."""
        vector = self._query_cache.pop(query, None)
        if vector is None:
            vector = self.embedder.embed_batch([query], kind="query")[0]
        self._query_cache[query] = vector
        while len(self._query_cache) > QUERY_CACHE_SIZE:
            self._query_cache.pop(next(iter(self._query_cache)))
        return vector

    def file_chunks(self, source: str) -> list[str]:
        """The chunk ids of one file in reading order (page, then position in the page)."""
        if self._files is None:
            files: dict[str, list[str]] = {}
            for cid, meta in self.metadata.items():
                files.setdefault(str(meta.get("source")), []).append(cid)
            for ids in files.values():
                ids.sort(key=lambda c: (self.metadata[c].get("page") or 0, self.metadata[c].get("ordinal") or 0))
            self._files = files
        return self._files.get(source, [])

    def file_doc_type(self, source: str) -> str:
        """The document type of a file (``autre`` when unknown)."""
        ids = self.file_chunks(source)
        return str(self.metadata[ids[0]].get("doc_type") or "autre") if ids else "autre"

    def idf(self, term: str) -> float:
        """Inverse document frequency of an analysed term (0 when unknown)."""
        t = self.lexical.vocab.get(term)
        return float(self.lexical.idf[t]) if t is not None else 0.0

    def _dense(self, vector: Any, pool: int, filters: dict[str, Any]) -> list[tuple[str, float]]:
        """Chroma first; if its segment is unreadable (after a crash, until the next ingest repairs
        it), an exact search over the manifest's own vectors."""
        if self._fallback is None:
            try:
                return self.store.query(vector, pool, where=chroma_where(filters))
            except Exception:  # noqa: BLE001 - chromadb InternalError and friends
                ids, metas, vectors = self.manifest.vectors()
                self._fallback = (ids, metas, vectors)
        ids, metas, vectors = self._fallback
        if not ids:
            return []
        scores = vectors @ vector
        order = [j for j in np.argsort(-scores) if matches(metas[j], filters)][:pool]
        return [(ids[j], float(scores[j])) for j in order]

    def search(self, question: str, k: int = 5, mode: str = "hybrid", pool: int = 30,
               filters: dict[str, Any] | None = None, expand: bool = True) -> list[Hit]:
        """Top ``k`` hits for ``question``; ``mode`` is ``hybrid``, ``dense`` or ``lexical``."""
        filters = {key: v for key, v in (filters or {}).items() if key in FILTER_KEYS and v not in (None, "")}
        question = self.lexical.correct(question)
        query = expand_query(question, self.glossary) if expand else question
        dense: list[tuple[str, float]] = []
        lexical: list[tuple[str, float]] = []
        if mode in ("hybrid", "dense"):
            vector = self.query_vector(query)
            dense = [(i, s) for i, s in self._dense(vector, pool, filters) if i in self.metadata]
        if mode in ("hybrid", "lexical"):
            allowed = {i for i, m in self.metadata.items() if matches(m, filters)} if filters else None
            # the expansion's own terms weigh less than the question's: « marche exploratoire dans
            # notre QPV » is about the marche, not about the QPV's definition
            terms, own = analyse(query), set(analyse(question))
            boost = {t: EXPANSION_WEIGHT for t in terms if t not in own}
            lexical = self.lexical.search(terms, pool, allowed=allowed, boost=boost)
        fused = rrf([[i for i, _ in dense], [i for i, _ in lexical]])
        dense_score = dict(dense)
        dense_rank = {i: r for r, (i, _) in enumerate(dense, start=1)}
        lex_rank = {i: r for r, (i, _) in enumerate(lexical, start=1)}
        ranked = sorted(fused, key=lambda i: -fused[i])
        chunks = self.manifest.get_chunks(ranked[: max(k * 3, 15)])
        hits: list[Hit] = []
        kept_terms: list[set[str]] = []
        for i in ranked:
            if i not in chunks:
                continue
            terms = set(analyse(chunks[i].text))
            if any(_jaccard(terms, other) > DUPLICATE_JACCARD for other in kept_terms):
                continue
            kept_terms.append(terms)
            hits.append(Hit(chunks[i], fused[i], dense_rank.get(i), lex_rank.get(i), dense_score.get(i)))
            if len(hits) >= k:
                break
        return hits


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def open_index(settings: Settings, index_dir: Path | None = None, pin: bool = False) -> Index:
    """Open an index built by ``assistant ingest``; a French error says what to run if it is missing.

    ``pin=True`` (the web app) keeps the manifest connection on the snapshot read here, so that the
    passages, the BM25 and the metadata stay those of one generation while another process or
    replica ingests (``Manifest.pin``); ``generation`` is then the published one it serves."""
    index_dir = index_dir or settings.index_dir
    state = open_state(settings, index_dir)
    require_index(state)
    manifest = state.manifest()
    if pin:
        manifest.pin()
    try:
        lexical = state.lexical(manifest)
        glossary = json.loads(manifest.get("glossary", "{}") or "{}")
        metadata = manifest.all_metadata()
        published = manifest.published
    except BaseException:
        manifest.close()
        raise
    index = Index(settings, index_dir, manifest, lexical, metadata=metadata, glossary=glossary)
    index.published = published
    return index
