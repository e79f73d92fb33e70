"""Answer quality on a gold set, for BM25 alone, dense alone and hybrid (the README's table).

    .venv/bin/python benchmarks/answers.py --set evals/gold/test.yaml           # report
    .venv/bin/python benchmarks/answers.py --set evals/gold/dev.yaml --calibrate  # refusal thresholds

Metrics (answerable questions unless said otherwise):
- hit@1 / hit@3: a gold source is the first / among the first three distinct files retrieved;
- key facts: mean share of the expected key facts found in the passages the answer cites
  (case, accents and spaces ignored), and the share of answers where all of them are found;
- refusals: precision and recall of ``no_answer`` on the questions that expect it (out of scope,
  injections), and the false refusal rate on answerable questions;
- latency: median and p95 of ``answer()`` (warm, model loaded).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import unicodedata
from pathlib import Path
from typing import Any

import yaml


def norm(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.replace("\u00a0", " ").replace("\u202f", " ").lower())
    text = "".join(c for c in text if not unicodedata.combining(c)).replace("’", "'")
    return re.sub(r"\s+", " ", text)


def load_set(path: str) -> list[dict[str, Any]]:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def evaluate(index: Any, entries: list[dict[str, Any]], mode: str) -> dict[str, float]:
    from assistant.answer import answer
    from assistant.conversation import standalone_question

    index._query_cache.clear()  # no embedding reused from another mode: latencies are per question
    h1 = h3 = 0
    fact_share: list[float] = []
    all_facts = 0
    answerable = refused_ok = refused_bad = expected_no = refused_total = 0
    latencies: list[float] = []
    for e in entries:
        history = e.get("history") or []
        result = answer(e["question"], history=history, filters=e.get("filters"), index=index, mode=mode)
        latencies.append(result.timings_ms["total"])
        refused = result.status == "no_answer"
        refused_total += refused
        if e["expected_status"] == "no_answer":
            expected_no += 1
            refused_ok += refused
            continue
        answerable += 1
        refused_bad += refused
        hits = index.search(standalone_question(e["question"], history), k=10, mode=mode, filters=e.get("filters"))
        sources: list[str] = []
        for h in hits:
            if h.chunk.metadata["source"] not in sources:
                sources.append(h.chunk.metadata["source"])
        gold = set(e["gold_sources"])
        h1 += bool(gold & set(sources[:1]))
        h3 += bool(gold & set(sources[:3]))
        cited = norm(" ".join(c.text for c in result.citations))
        facts = e.get("key_facts") or []
        found = [norm(f) in cited for f in facts]
        if facts:
            fact_share.append(sum(found) / len(facts))
            all_facts += all(found)
    return {
        "questions": len(entries), "hit@1": h1 / answerable, "hit@3": h3 / answerable,
        "key_facts": statistics.mean(fact_share) if fact_share else 0.0,
        "all_key_facts": all_facts / len(fact_share) if fact_share else 0.0,
        "refusal_precision": refused_ok / refused_total if refused_total else 1.0,
        "refusal_recall": refused_ok / expected_no if expected_no else 1.0,
        "false_refusals": refused_bad / answerable,
        "latency_p50_ms": statistics.median(latencies),
        "latency_p95_ms": sorted(latencies)[int(0.95 * (len(latencies) - 1))],
    }


def calibrate(index: Any, entries: list[dict[str, Any]]) -> None:
    """Print refusal recall / false refusals over a grid of thresholds (dev set only)."""
    from assistant.answer import support
    from assistant.conversation import standalone_question

    rows = []
    for e in entries:
        q = standalone_question(e["question"], e.get("history") or [])
        if e["expected_status"] == "no_answer" and e.get("kind") == "injection":
            continue  # refused by the injection rule, not by thresholds
        hits = index.search(q, k=6, filters=e.get("filters"))
        rows.append((e["expected_status"], support(index.lexical.correct(q), hits, index.idf, index.max_idf)))
    neg = [s for st, s in rows if st == "no_answer"]
    pos = [s for st, s in rows if st == "answered"]
    print(f"{len(pos)} questions avec réponse, {len(neg)} hors champ")
    print("poids_couverture  seuil  rappel_refus  faux_refus")
    for weight in (0.0, 0.05, 0.1, 0.2):
        for threshold in (0.84, 0.86, 0.88, 0.90, 0.91, 0.92, 0.94, 0.96):
            def refused(s: dict[str, float], w: float = weight, t: float = threshold) -> bool:
                return s["dense"] + w * s["coverage"] < t
            recall = sum(map(refused, neg)) / len(neg)
            false = sum(map(refused, pos)) / len(pos)
            if recall > 0 and false < 0.3:
                print(f"{weight:16.2f}  {threshold:5.2f}  {recall:12.2f}  {false:10.2f}")
    print("lexical seul : couverture  rappel_refus  faux_refus")
    for cov in (0.3, 0.4, 0.45, 0.5, 0.6):
        recall = sum(s["coverage"] < cov for s in neg) / len(neg)
        false = sum(s["coverage"] < cov for s in pos) / len(pos)
        print(f"{cov:23.2f}  {recall:12.2f}  {false:10.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default="evals/gold/test.yaml")
    parser.add_argument("--index", default=None)
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--modes", default="lexical,dense,hybrid")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from assistant.retrieve import open_index
    from assistant.settings import load_settings

    settings = load_settings(**({"index_dir": Path(args.index)} if args.index else {}))
    index = open_index(settings)
    entries = load_set(args.set)
    index.search("échauffement du modèle", k=1)
    if args.calibrate:
        calibrate(index, entries)
        return
    print(f"jeu : {args.set} ({len(entries)} questions) ; modèle : {settings.embedding_model}")
    print("| mode | hit@1 | hit@3 | faits clés (moyenne) | tous les faits | précision refus | rappel refus | faux refus | latence p50 | p95 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    names = {"lexical": "BM25 seul", "dense": "dense seul", "hybrid": "hybride"}
    for mode in args.modes.split(","):
        m = evaluate(index, entries, mode)
        print(f"| {names[mode]} | {m['hit@1']:.2f} | {m['hit@3']:.2f} | {m['key_facts']:.2f} | {m['all_key_facts']:.2f} | "
              f"{m['refusal_precision']:.2f} | {m['refusal_recall']:.2f} | {m['false_refusals']:.2f} | "
              f"{m['latency_p50_ms']:.0f} ms | {m['latency_p95_ms']:.0f} ms |")


if __name__ == "__main__":
    main()
