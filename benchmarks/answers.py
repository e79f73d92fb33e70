"""Refusal threshold calibration on the dev set; the answer-quality table moved to ``assistant eval``.

    .venv/bin/python benchmarks/answers.py --set evals/gold/dev.yaml --calibrate  # refusal thresholds
    .venv/bin/python benchmarks/answers.py --set evals/gold/test.yaml             # report only (default: dev)
    .venv/bin/assistant eval --set evals/gold/test.yaml --configs bm25,dense,hybrid  # the README's table

The metrics (hit@k, MRR, key facts, citation precision, refusals, latency) live in
``assistant.evals.metrics``; reports, comparison and the regression gate in ``assistant.evals``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any


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
    parser.add_argument("--set", default="evals/gold/dev.yaml", help="jeu de questions (défaut : dev ; test ne sert qu'à rendre compte)")
    parser.add_argument("--index", default=None)
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--modes", default="bm25,dense,hybrid", help="configurations of assistant eval")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not args.calibrate:
        from assistant.cli import main as cli

        modes = args.modes.replace("lexical", "bm25")
        sys.exit(cli(["eval", "--set", args.set, "--configs", modes, "--no-gate"]
                     + (["--index", args.index] if args.index else [])))
    from assistant.evals.goldsets import load_set
    from assistant.retrieve import open_index
    from assistant.settings import load_settings

    settings = load_settings(**({"index_dir": Path(args.index)} if args.index else {}))
    index = open_index(settings)
    index.search("échauffement du modèle", k=1)
    calibrate(index, load_set(Path(args.set)))


if __name__ == "__main__":
    main()
