"""Compare refusal rules by measurement, on a DEV set only (issue 15).

    .venv/bin/python benchmarks/refusal.py --set evals/gold/dev.yaml [--index index/]

For every question of the set (injections aside: another rule refuses them), for the index's
in-scope pseudo-questions and for the shipped out-of-scope questions, the support signals are
measured once; then each candidate score is calibrated the way ``assistant.refusal`` does it
(thresholds between the off-topic quantile and the in-scope median) and scored on the set: refusal
recall, false refusals, and the share of ``partial`` answers on each side. Candidates:

- ``dense``: best dense similarity alone;
- ``dense-Wxunc``: dense - W x (1 - IDF-weighted coverage of the question's terms);
- ``dense-Wxunk``: dense - W x share of the question's terms unknown to the corpus;
- ``+agree``: + 0.01 x number of top-5 passages ranked top-5 by both retrievers;
- ``rel``: (dense - off-topic median) / (in-scope median - off-topic median), the score relative to
  the corpus's background similarity (the calibration itself is then scale-free);
- ``score-gap``: the retained score minus the answerability gap (``assistant.refusal.gap``: anchors
  and asked-for type the top passages lack) times the weight this index's perturbed pseudo-questions
  give (``assistant.refusal.gap_weight``), i.e. the rule in force.

The grid of (REFUSE_AT, ANSWER_AT) positions is printed for the retained score.

    .venv/bin/python benchmarks/refusal.py --latency [--set evals/gold/dev.yaml]

times ``answer()`` warm on every question of the set (median and p95, ms) and the share of it spent
in the answerability check (``assistant.refusal.gap``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

Signals = dict[str, float]


def measure(index: Any, questions: list[tuple[str, dict[str, Any] | None]]) -> list[Signals]:
    from assistant.refusal import support

    out = []
    for q, filters in questions:
        hits = index.search(q, k=6, filters=filters)
        out.append(support(index.lexical.correct(q), hits, index.idf, index.max_idf, index.glossary))
    return out


def candidates() -> dict[str, Any]:
    c: dict[str, Any] = {"dense": lambda s: s["dense"]}
    for w in (0.03, 0.05, 0.1, 0.15, 0.2):
        c[f"dense-{w}xunc"] = lambda s, w=w: s["dense"] - w * (1 - s["coverage"])
        c[f"dense-{w}xunk"] = lambda s, w=w: s["dense"] - w * s["unknown"]
    c["dense-0.1xunc+agree"] = lambda s: s["dense"] - 0.1 * (1 - s["coverage"]) + 0.01 * s["agreement"]
    return c


def evaluate(score: Any, pos: list[Signals], neg: list[Signals], inside: list[Signals],
             outside: list[Signals], refuse_at: float, answer_at: float) -> dict[str, float]:
    import statistics

    from assistant.refusal import OFF_TOPIC_QUANTILE, quantile

    low = quantile([score(s) for s in outside], OFF_TOPIC_QUANTILE)
    high = statistics.median(score(s) for s in inside)
    t_refuse, t_answer = low + refuse_at * (high - low), low + answer_at * (high - low)
    refused_neg = sum(score(s) < t_refuse for s in neg)
    refused_pos = sum(score(s) < t_refuse for s in pos)
    partial_neg = sum(t_refuse <= score(s) < t_answer for s in neg)
    partial_pos = sum(t_refuse <= score(s) < t_answer for s in pos)
    return {"recall": refused_neg / len(neg), "false": refused_pos / len(pos),
            "partial_pos": partial_pos / len(pos), "partial_neg": partial_neg / len(neg),
            "t_refuse": t_refuse, "t_answer": t_answer}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default="evals/gold/dev.yaml")
    parser.add_argument("--index", default=None)
    parser.add_argument("--latency", action="store_true", help="temps de answer() à chaud et part de la lacune")
    args = parser.parse_args()
    if args.latency:
        latency(args)
        return
    if "test" in Path(args.set).name:
        raise SystemExit("Réglage sur le jeu dev seulement : passez --set evals/gold/dev.yaml (ou un autre jeu dev).")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from assistant.conversation import standalone_question
    from assistant.evals.goldsets import load_set
    from assistant.refusal import (
        ANSWER_AT,
        REFUSE_AT,
        off_topic_questions,
        perturbed_questions,
        pseudo_sources,
    )
    from assistant.retrieve import open_index
    from assistant.settings import load_settings

    settings = load_settings(**({"index_dir": Path(args.index)} if args.index else {}))
    index = open_index(settings)
    entries = [e for e in load_set(Path(args.set)) if e.get("kind") != "injection"]
    questions = [(standalone_question(e["question"], e.get("history") or []), e.get("filters")) for e in entries]
    signals = measure(index, questions)
    pos = [s for e, s in zip(entries, signals, strict=True) if e["expected_status"] == "answered"]
    neg = [s for e, s in zip(entries, signals, strict=True) if e["expected_status"] == "no_answer"]
    sources = pseudo_sources(index)
    inside = measure(index, [(q, None) for q, _ in sources])
    outside = measure(index, [(q, None) for q in off_topic_questions()])
    perturbed = measure(index, [(q, None) for q in perturbed_questions(sources, index.idf)])
    print(f"{args.set} : {len(pos)} questions avec réponse, {len(neg)} à refuser ; "
          f"{len(inside)} pseudo-questions, {len(outside)} questions hors champ")
    print(f"positions : refus {REFUSE_AT}, réponse {ANSWER_AT}")
    print(f"{'score':24} rappel  faux_refus  incertaines(avec réponse)  incertaines(à refuser)")
    from assistant.refusal import gap_weight, quantile, score_of, thresholds

    refuse, _, low, high = thresholds([s["score"] for s in inside], [s["score"] for s in outside])
    weight = gap_weight(perturbed, refuse, high - low)
    print(f"poids de la lacune (pseudo-questions modifiées : {len(perturbed)}) : {weight:.4f} "
          f"(écart étalonné {high - low:.4f}, quantile {quantile([s['gap'] for s in perturbed], 0.5):.2f} médian)")
    table = dict(candidates())
    table["score-gap"] = lambda s: score_of(s["dense"], s["unknown"]) - weight * s["gap"]
    for name, score in table.items():
        r = evaluate(score, pos, neg, inside, outside, REFUSE_AT, ANSWER_AT)
        print(f"{name:24} {r['recall']:6.2f}  {r['false']:10.2f}  {r['partial_pos']:25.2f}  {r['partial_neg']:22.2f}")
    print("\nscore retenu (score-gap : assistant.refusal.adjusted), positions :")
    print("refus  réponse  rappel  faux_refus  incertaines(avec)  incertaines(à refuser)")
    for refuse_at in (0.1, 0.2, 0.3, 0.4, 0.5):
        for answer_at in (refuse_at, refuse_at + 0.1, refuse_at + 0.2, refuse_at + 0.3):
            r = evaluate(table["score-gap"], pos, neg, inside, outside, refuse_at, answer_at)
            print(f"{refuse_at:5.2f}  {answer_at:7.2f}  {r['recall']:6.2f}  {r['false']:10.2f}  "
                  f"{r['partial_pos']:17.2f}  {r['partial_neg']:22.2f}")


def latency(args: argparse.Namespace) -> None:
    import statistics
    import time

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from assistant import refusal
    from assistant.answer import answer
    from assistant.evals.goldsets import load_set
    from assistant.retrieve import open_index
    from assistant.settings import load_settings

    settings = load_settings(**({"index_dir": Path(args.index)} if args.index else {}))
    index = open_index(settings)
    entries = load_set(Path(args.set))
    spent: list[float] = []
    original = refusal.gap

    def timed(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return original(*a, **k)
        finally:
            spent.append((time.perf_counter() - t) * 1000)

    refusal.gap = timed  # type: ignore[assignment]
    for e in entries:  # warm-up: model and calibration loaded
        answer(e["question"], history=e.get("history"), filters=e.get("filters"), index=index)
    spent.clear()
    index._query_cache.clear()  # timed pass: each question embedded again, as a new question would be
    totals = []
    for e in entries:
        t = time.perf_counter()
        answer(e["question"], history=e.get("history"), filters=e.get("filters"), index=index)
        totals.append((time.perf_counter() - t) * 1000)
    totals.sort()
    print(f"{args.set} : {len(totals)} questions, answer() à chaud : médiane {statistics.median(totals):.1f} ms, "
          f"p95 {totals[int(0.95 * (len(totals) - 1))]:.1f} ms ; lacune (refusal.gap) : médiane "
          f"{statistics.median(spent):.2f} ms, max {max(spent):.2f} ms")
    print("charge :", os.getloadavg())


if __name__ == "__main__":
    main()
