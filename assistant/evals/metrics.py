"""Pure metric functions (no index, no model): they take texts, lists and records, return numbers.

Usage::

    ranked = distinct_sources(["a.md", "a.md", "b.md"])         # ["a.md", "b.md"]
    hit_at(ranked, {"b.md"}, 1), reciprocal_rank(ranked, {"b.md"})   # False, 0.5
    facts_found(["tirage au sort"], "…le TIRAGE au sort…")       # [True]
    facts_found(["un tiers"], "un tiers-lieu")                    # [False]: whole words only
    answer_body("- Un point. [1]\n\n**Pour aller plus loin**\n- [1] …")  # "- Un point. [1]"
    facts_in_cited_sentences(["loi Lamy"], "- La loi Lamy. [1]", {1: "… loi Lamy …"})  # [True]
    citation_support("- Une phrase. [1]", {1: "Une phrase du passage."})  # {1: True}
    summarise(records)                                            # the headline dict of a group

A *record* is one evaluated question (see ``assistant.evals.runner.evaluate_one``).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Sequence
from typing import Any

from assistant.chunking import LIST_ITEM
from assistant.citations import MARKER, SUPPORT_THRESHOLD, markers, support_share
from assistant.store.lexical import analyse, strip_accents

SENTENCE_END = re.compile(r"(?<=[.!?…])\s+(?!\[)")
FURTHER = re.compile(r"^\W*pour aller plus loin\W*$", re.I)


def norm(text: str) -> str:
    """Case, accents, (non-breaking, thin) spaces and typographic apostrophes ignored: how key facts
    are matched, by the metrics and by the gold-set checks (scripts/build_gold.py, tests/test_gold.py)."""
    text = text.replace("\u00a0", " ").replace("\u202f", " ").replace("\u2009", " ")
    text = strip_accents(text.casefold()).replace("’", "'")
    return re.sub(r"\s+", " ", text).strip()


def distinct_sources(sources: Iterable[str]) -> list[str]:
    """Files in retrieval order, each once."""
    out: list[str] = []
    for source in sources:
        if source not in out:
            out.append(source)
    return out


def hit_at(ranked: Sequence[str], gold: Iterable[str], k: int) -> bool:
    """Is a gold source among the first ``k`` distinct files?"""
    return bool(set(gold) & set(ranked[:k]))


def reciprocal_rank(ranked: Sequence[str], gold: Iterable[str]) -> float:
    """1 / rank of the first gold file (0 when none is retrieved)."""
    wanted = set(gold)
    return next((1.0 / r for r, s in enumerate(ranked, start=1) if s in wanted), 0.0)


def fact_pattern(fact: str) -> re.Pattern[str]:
    """A key fact as whole words of the normalised text (``norm``): « un tiers » does not match « un
    tiers-lieu », « PAT » does not match « patrimoine »; a hyphen or a letter next to the fact
    prevents the match, an apostrophe or punctuation does not (« l'intercommunalité »)."""
    return re.compile(r"(?<![\w-])" + re.escape(norm(fact)) + r"(?![\w-])")


def fact_in(fact: str, text: str) -> bool:
    """Is ``fact`` in ``text`` as whole words (case, accents and spaces ignored)?"""
    return bool(fact_pattern(fact).search(norm(text)))


def facts_found(facts: Sequence[str], text: str) -> list[bool]:
    """For each key fact: is it in ``text`` as whole words (case, accents and spaces ignored)?"""
    plain = norm(text)
    return [bool(fact_pattern(f).search(plain)) for f in facts]


def answer_body(answer: str) -> str:
    """What the answer says: its text before the « Pour aller plus loin » list of sources (the
    titles and file names there state nothing)."""
    lines = []
    for line in answer.replace("\r\n", "\n").split("\n"):
        if FURTHER.match(line.replace("*", "").strip()):
            break
        lines.append(line)
    return "\n".join(lines)


def facts_in_cited_sentences(facts: Sequence[str], answer: str, passages: dict[int, str]) -> list[bool]:
    """For each key fact: does a sentence of the answer state it AND cite a passage that holds it?
    What the reader gets: the fact is said and its source says it too. A fact in an uncited
    sentence, or cited to the wrong passage (shuffled markers), does not count."""
    sentences = claim_sentences(answer)
    plain = {n: norm(t) for n, t in passages.items()}
    out = []
    for fact in facts:
        pattern = fact_pattern(fact)
        out.append(any(pattern.search(norm(s)) and any(n in plain and pattern.search(plain[n]) for n in cited)
                       for s, cited in sentences))
    return out


def claim_sentences(answer: str) -> list[tuple[str, list[int]]]:
    """The answer's sentences with their ``[n]`` markers, before « Pour aller plus loin » (a reading
    list, not a claim). Sentences keep a marker written after their full stop (« … citoyen. [1] »).
    In a list item the markers that end the item cite all of its sentences (« - Directeur : On a
    eu… plusieurs centaines de contributions. [2] » is one point with one source); in prose each
    sentence needs its own."""
    out: list[tuple[str, list[int]]] = []
    for line in answer.replace("\r\n", "\n").split("\n"):
        if FURTHER.match(line.replace("*", "").strip()):
            break
        item = LIST_ITEM.match(line)
        body = LIST_ITEM.sub("", line).strip()
        sentences = [s.strip() for s in SENTENCE_END.split(body) if s.strip()]
        ending = markers(sentences[-1]) if item and sentences else []
        for sentence in sentences:
            out.append((sentence, markers(sentence) or ending))
    return out


def content_terms(text: str) -> set[str]:
    """Analysed terms (French stemming, stop words removed) of a text without its markers."""
    return set(analyse(MARKER.sub(" ", text)))


def supported(sentence_terms: set[str], passage_terms: set[str], threshold: float = SUPPORT_THRESHOLD) -> bool:
    """Do the passage's terms cover at least ``threshold`` of the sentence's terms?"""
    return bool(sentence_terms) and support_share(sentence_terms, passage_terms) >= threshold


def citation_support(answer: str, passages: dict[int, str]) -> dict[int, bool]:
    """For each cited passage ``n``: do the sentences that cite it share >= 60 % of their terms with
    it? A passage no sentence cites does not support the answer."""
    sentences = claim_sentences(answer)
    out: dict[int, bool] = {}
    for n, text in passages.items():
        citing = " ".join(s for s, cited in sentences if n in cited)
        out[n] = supported(content_terms(citing), content_terms(text))
    return out


def sentence_support(answer: str, passages: dict[int, str]) -> tuple[int, int]:
    """(supported, total) answer sentences stating something: a sentence is supported when the
    passages it cites contain >= 60 % of its terms (no citation: not supported)."""
    terms_of = {n: content_terms(t) for n, t in passages.items()}
    good = total = 0
    for sentence, cited in claim_sentences(answer):
        terms = content_terms(sentence)
        if not terms or (not cited and sentence.rstrip().endswith(":")):
            continue  # a heading or a lead line « … : »
        total += 1
        support = set().union(*(terms_of.get(n, set()) for n in cited)) if cited else set()
        good += supported(terms, support)
    return good, total


def suggestions_relevant(question: str, suggested: Sequence[str], file_terms: dict[str, set[str]],
                         max_share: float = 0.5) -> list[bool]:
    """For each suggested experience (its file): does the file contain one of the question's
    *specific* terms, i.e. an analysed term found in at most ``max_share`` of the corpus files?
    An experience that only shares « projet » or « territoire » with the question is not relevant.
    ``file_terms``: analysed terms of each corpus file (``runner.file_terms``)."""
    n = max(len(file_terms), 1)
    terms = set(analyse(question))
    specific = {t for t in terms if sum(t in f for f in file_terms.values()) <= max_share * n}
    return [bool(specific & file_terms.get(source, set())) for source in suggested]


def refusal_scores(expected_refusal: Sequence[bool], refused: Sequence[bool]) -> dict[str, float]:
    """Precision and recall of refusals, and the false refusal rate on answerable questions.
    Conventions: no refusal at all -> precision 1; nothing to refuse -> recall 1."""
    pairs = list(zip(expected_refusal, refused, strict=True))
    refused_total = sum(r for _, r in pairs)
    expected_total = sum(e for e, _ in pairs)
    answerable = len(pairs) - expected_total
    good = sum(e and r for e, r in pairs)
    false = sum((not e) and r for e, r in pairs)
    return {"refusal_precision": good / refused_total if refused_total else 1.0,
            "refusal_recall": good / expected_total if expected_total else 1.0,
            "false_refusals": false / answerable if answerable else 0.0}


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile on sorted values (``p`` in 0..100), 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return float(ordered[int(round(p / 100 * (len(ordered) - 1)))])


def _mean(values: Sequence[float]) -> float | None:
    return statistics.mean(values) if values else None


def summarise(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The metrics of a group of records. Retrieval and key facts: answerable questions; citation
    precision: cited passages of answered questions (pooled); refusals: all questions."""
    answerable = [r for r in records if r["expected_status"] == "answered"]
    with_facts = [r for r in answerable if r["key_facts"]]
    cited = [ok for r in records for ok in r["citations_supported"]]
    sentences = sum(r["sentences_total"] for r in records)
    suggested = [r for r in records if r.get("suggestions_relevant")]
    out: dict[str, Any] = {
        "questions": len(records), "answerable": len(answerable), "with_facts": len(with_facts),
        "expected_refusals": len(records) - len(answerable), "with_suggestions": len(suggested),
        "hit@1": _mean([r["hit@1"] for r in answerable]), "hit@3": _mean([r["hit@3"] for r in answerable]),
        "hit@5": _mean([r["hit@5"] for r in answerable]), "mrr": _mean([r["rr"] for r in answerable]),
        "key_facts": _mean([sum(r["facts_in_citations"]) / len(r["key_facts"]) for r in with_facts]),
        "all_key_facts": _mean([float(all(r["facts_in_citations"])) for r in with_facts]),
        "answer_coverage": _mean([sum(r["facts_in_answer"]) / len(r["key_facts"]) for r in with_facts]),
        "cited_facts": _mean([sum(r.get("facts_in_cited_sentences", [])) / len(r["key_facts"]) for r in with_facts]),
        "suggestion_relevance": _mean([sum(r["suggestions_relevant"]) / len(r["suggestions_relevant"])
                                       for r in suggested]),
        "citation_precision": sum(cited) / len(cited) if cited else None,
        "supported_sentences": sum(r["sentences_supported"] for r in records) / sentences if sentences else None,
        "partial": sum(r["status"] == "partial" for r in records) / len(records) if records else 0.0,
        "latency_p50_ms": percentile([r["latency_ms"] for r in records], 50),
        "latency_p95_ms": percentile([r["latency_ms"] for r in records], 95),
    }
    out.update(refusal_scores([r["expected_status"] == "no_answer" for r in records],
                              [r["status"] == "no_answer" for r in records]))
    return out


def by_group(records: Sequence[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    """``summarise`` for each value of ``record[key]`` (e.g. ``doc_type``, ``kind``)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(str(r.get(key) or "—"), []).append(r)
    return {name: summarise(group) for name, group in sorted(groups.items())}
