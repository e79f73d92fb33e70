"""Porte de non-régression du corpus de transfert (scripts/test.sh, dernière étape).

    .venv/bin/python scripts/gate_transfert.py evals/reports/ci-transfert evals/baseline/transfert

Même règle que la porte d'``assistant eval`` (assistant/evals/gate.py, tolérances de
evals/tolerances.yaml, en questions) et même exigence de jeu identique, à une différence près : un
indicateur qu'aucune question de ce corpus ne mesure, ni dans la référence ni dans ce passage (les
expériences suggérées : le corpus de transfert n'a pas de fiches expériences), est ignoré et nommé,
au lieu de faire échouer la porte. Code de sortie 1 et message en français en cas de régression.
"""

from __future__ import annotations

import sys
from pathlib import Path

from assistant.evals.gate import HEADLINE, LABELS, LOWER_IS_BETTER, fr, gate, load_report


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("Usage : scripts/gate_transfert.py RAPPORT REFERENCE (dossiers ou report.json)", file=sys.stderr)
        return 2
    report, baseline = load_report(Path(argv[0])), load_report(Path(argv[1]))
    unmeasured = [k for k in HEADLINE if report["overall"].get(k) is None and baseline["overall"].get(k) is None]
    for key in unmeasured:  # the same value on both sides: the gate compares nothing there
        report["overall"][key] = baseline["overall"][key] = 0.0 if key in LOWER_IS_BETTER else 1.0
    problems = gate(report, baseline, baseline_name=argv[1])
    if unmeasured:
        print("Corpus de transfert, non mesurés ici : " + ", ".join(LABELS[k] for k in unmeasured))
    if problems:
        print(f"Porte du corpus de transfert : ÉCHEC par rapport à {argv[1]}")
        for p in problems:
            print("  - " + p)
        return 1
    o = report["overall"]
    print(f"Porte du corpus de transfert : réussie (rappel refus {fr(o['refusal_recall'])}, faux refus "
          f"{fr(o['false_refusals'])}, hit@3 {fr(o['hit@3'])}).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
