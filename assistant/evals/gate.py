"""Comparing reports and the regression gate.

The gate compares the GATED metrics of a run with the baseline (``evals/baseline/report.json``): it
fails when one falls (for false refusals: rises) by more than its tolerance. Tolerances live in one
file, ``evals/tolerances.yaml``, counted in questions of the set (at most one: a tolerance of one
question on the 71 answerable questions of test is 1/71 = 0,014). The gate never skips: a missing
baseline, a baseline made on another set or configuration, a metric that is ``None`` or a tolerance
wider than one question is a failure, with a French sentence that says what to do.

Gated (what the reader gets): hit@1, hit@3, MRR, key facts in the answer text, key facts in a cited
sentence whose passage holds them, refusal recall, false refusals, relevance of the suggested
experiences. Citation precision and supported sentences are 1,0 by construction for the built-in
composer (it copies sentences from the passages it cites): they are reported, and gated only for
a run whose answers a language model writes (``config: llm``).

Usage::

    problems = gate(report, baseline)          # [] when the run passes, else French sentences
    print(compare_table(report_a, report_b))   # deltas, in French
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

TOLERANCES = Path(__file__).resolve().parents[2] / "evals" / "tolerances.yaml"
LOWER_IS_BETTER = {"false_refusals", "latency_p50_ms", "latency_p95_ms"}
LABELS = {
    "hit@1": "hit@1", "hit@3": "hit@3", "hit@5": "hit@5", "mrr": "MRR",
    "key_facts": "faits clés dans les passages cités (moyenne)", "all_key_facts": "tous les faits clés cités",
    "answer_coverage": "faits clés dans le texte de la réponse",
    "cited_facts": "faits clés dans une phrase citée et dans son passage",
    "citation_precision": "précision des citations", "supported_sentences": "phrases appuyées par leurs sources",
    "suggestion_relevance": "expériences suggérées pertinentes", "refusal_precision": "précision des refus",
    "refusal_recall": "rappel des refus", "false_refusals": "faux refus",
    "latency_p50_ms": "latence médiane (ms)", "latency_p95_ms": "latence p95 (ms)",
}
# the number of questions behind each gated metric (a key of the report's « overall »)
DENOMINATOR = {"hit@1": "answerable", "hit@3": "answerable", "mrr": "answerable", "answer_coverage": "with_facts",
               "cited_facts": "with_facts", "refusal_recall": "expected_refusals", "false_refusals": "answerable",
               "suggestion_relevance": "with_suggestions", "citation_precision": "answerable",
               "supported_sentences": "answerable"}
HEADLINE = ("hit@1", "hit@3", "mrr", "answer_coverage", "cited_facts", "refusal_recall", "false_refusals",
            "suggestion_relevance")
LLM_ONLY = ("citation_precision", "supported_sentences")
COMPARED = (*HEADLINE, *LLM_ONLY, "hit@5", "key_facts", "all_key_facts", "refusal_precision",
            "latency_p50_ms", "latency_p95_ms")


class ToleranceError(ValueError):
    """``evals/tolerances.yaml`` is missing or wrong (French message naming the file and the fix)."""


def load_tolerances(path: Path = TOLERANCES) -> dict[str, float]:
    """Tolerance of each gated metric, in questions of the set (0 < value <= 1)."""
    fix = f"corrigez {path} (voir evals/README.md, « Porte de non-régression »)"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ToleranceError(f"Fichier des tolérances introuvable : {path} ({exc.strerror}) ; {fix}.") from exc
    values = (data or {}).get("tolerances") if isinstance(data, dict) else None
    if not isinstance(values, dict):
        raise ToleranceError(f"{path} : clé « tolerances » absente ; {fix}.")
    out: dict[str, float] = {}
    for key, value in values.items():
        if key not in DENOMINATOR:
            raise ToleranceError(f"{path} : indicateur inconnu « {key} » ; {fix}.")
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ToleranceError(f"{path} : la tolérance de « {key} » vaut {value!r}, elle doit être un nombre de "
                                 f"questions entre 0 et 1 (le jeu ne distingue pas mieux qu'une question) ; {fix}.")
        out[str(key)] = float(value)
    missing = [k for k in (*HEADLINE, *LLM_ONLY) if k not in out]
    if missing:
        raise ToleranceError(f"{path} : tolérance manquante pour {', '.join(missing)} ; {fix}.")
    return out


def gated_metrics(report: dict[str, Any]) -> tuple[str, ...]:
    """The metrics the gate checks for this run (the LLM-only ones when a language model answered)."""
    return (*HEADLINE, *LLM_ONLY) if report["meta"].get("config") == "llm" else HEADLINE


def tolerance_of(key: str, report: dict[str, Any], tolerances: dict[str, float]) -> float:
    """Absolute tolerance of a metric on this run's set: questions / number of questions behind it."""
    n = report["overall"].get(DENOMINATOR[key]) or 0
    return tolerances[key] / n if n else 0.0


def load_report(path: Path) -> dict[str, Any]:
    """A report.json, given as the file or its folder."""
    path = path / "report.json" if path.is_dir() else path
    return json.loads(path.read_text(encoding="utf-8"))


def same_set(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Were both reports made on the same question set (same file content)?"""
    return bool(a["meta"].get("set_sha1")) and a["meta"].get("set_sha1") == b["meta"].get("set_sha1")


REBASELINE = ("refaites la référence dans un commit à part, sans autre changement, dont le message dit pourquoi "
              "(evals/README.md, « Mettre à jour la référence »)")


def gate(report: dict[str, Any], baseline: dict[str, Any] | None, tolerances: dict[str, float] | None = None,
         baseline_name: str = "evals/baseline/report.json") -> list[str]:
    """French sentences, one per problem; empty when the run passes. The gate cannot be skipped: a
    missing or inapplicable baseline and a ``None`` metric are problems too."""
    if baseline is None:
        return [f"pas de référence : {baseline_name} est introuvable ; {REBASELINE}."]
    if not same_set(report, baseline):
        return [f"le jeu de questions {report['meta'].get('set')} n'est pas celui de la référence {baseline_name} "
                f"(empreinte {report['meta'].get('set_sha1')} ≠ {baseline['meta'].get('set_sha1')}) : le jeu a changé "
                f"sans nouvelle référence ; {REBASELINE}."]
    if baseline["meta"].get("config") != report["meta"].get("config"):
        return [f"la référence {baseline_name} est faite avec la configuration {baseline['meta'].get('config')}, "
                f"ce passage avec {report['meta'].get('config')} : lancez la même configuration ou donnez une "
                "autre référence (--baseline)."]
    try:
        tolerances = tolerances if tolerances is not None else load_tolerances()
    except ToleranceError as exc:
        return [str(exc)]
    problems = []
    for key in gated_metrics(report):
        new, old = report["overall"].get(key), baseline["overall"].get(key)
        if new is None or old is None:
            where = "ce passage" if new is None else f"la référence {baseline_name}"
            problems.append(f"{LABELS[key]} : pas de valeur dans {where} (aucune question ne le mesure) ; complétez "
                            "le jeu de questions ou refaites la référence.")
            continue
        tolerance = tolerance_of(key, report, tolerances)
        worse = new - old if key in LOWER_IS_BETTER else old - new
        if worse > tolerance + 1e-9:
            problems.append(f"{LABELS[key]} : {fr(old)} → {fr(new)} (écart {fr(abs(new - old))} > tolérance "
                            f"{fr(tolerance)}, soit {fr(tolerances[key], 1)} question)")
    return problems


def deltas(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows (metric, label, a, b, delta, better?) from run A to run B."""
    rows = []
    for key in COMPARED:
        va, vb = a["overall"].get(key), b["overall"].get(key)
        delta = vb - va if va is not None and vb is not None else None
        better = None if not delta else (delta < 0) == (key in LOWER_IS_BETTER)
        rows.append({"metric": key, "label": LABELS[key], "a": va, "b": vb, "delta": delta, "better": better,
                     "headline": key in gated_metrics(b)})
    return rows


def fr(value: float, digits: int = 3, sign: bool = False) -> str:
    """A number written the French way, with a decimal comma: ``fr(0.93) == "0,930"``,
    ``fr(0.014, sign=True) == "+0,014"``."""
    return format(value, f"{'+' if sign else ''}.{digits}f").replace(".", ",")


def fmt(value: float | None, key: str = "") -> str:
    """A metric for display: latencies in whole milliseconds, rates with three decimals."""
    if value is None:
        return "—"
    return fr(value, 0) if key.startswith("latency") else fr(value)


def fmt_delta(value: float | None, key: str = "") -> str:
    """A signed difference of a metric, written as ``fmt`` writes the metric: « +0,014 », « -3 »."""
    if value is None:
        return "—"
    return fr(value, 0 if key.startswith("latency") else 3, sign=True)


def compare_table(a: dict[str, Any], b: dict[str, Any]) -> str:
    """A plain-text table of the deltas from A to B, in French."""
    lines = [f"A : {a['meta'].get('config_label')} — {a['meta'].get('started')} — {a['meta'].get('set')}",
             f"B : {b['meta'].get('config_label')} — {b['meta'].get('started')} — {b['meta'].get('set')}"]
    if not same_set(a, b):
        lines.append("Attention : les deux rapports ne portent pas sur le même jeu de questions.")
    width = max(len(r["label"]) for r in deltas(a, b)) + 2
    lines.append(f"{'indicateur':<{width}}{'A':>9}{'B':>9}{'écart':>9}")
    for r in deltas(a, b):
        mark = "" if r["better"] is None else ("  mieux" if r["better"] else "  moins bien")
        delta = fmt_delta(r["delta"], r["metric"])
        star = "*" if r["headline"] else " "
        lines.append(f"{star}{r['label']:<{width - 1}}{fmt(r['a'], r['metric']):>9}{fmt(r['b'], r['metric']):>9}"
                     f"{delta:>9}{mark}")
    lines.append("* indicateur de la porte de non-régression (tolérances : evals/tolerances.yaml)")
    return "\n".join(lines)


def find_previous(reports_dir: Path, report: dict[str, Any], exclude: Path | None = None) -> dict[str, Any] | None:
    """The latest earlier report in ``reports_dir`` on the same set and configuration, if any."""
    found = []
    for path in reports_dir.glob("*/report.json") if reports_dir.is_dir() else []:
        if exclude is not None and path.parent.resolve() == exclude.resolve():
            continue
        try:
            other = load_report(path)
        except (OSError, ValueError, KeyError):
            continue
        if same_set(other, report) and other["meta"].get("config") == report["meta"].get("config") \
                and other["meta"].get("started", "") <= report["meta"].get("started", ""):
            found.append((other["meta"].get("started", ""), other))
    return max(found, key=lambda x: x[0])[1] if found else None


def markdown_table(reports: list[dict[str, Any]]) -> str:
    """The README's table: one row per configuration."""
    head = ("| mode | hit@1 | hit@3 | hit@5 | MRR | faits dans la réponse | faits cités à leur source "
            "| faits dans les passages | précision citations | suggestions pertinentes | précision refus "
            "| rappel refus | faux refus | latence p50 | p95 |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in reports:
        o = r["overall"]
        cells = [r["meta"]["config_label"]] + [fr(o[k], 2) if o.get(k) is not None else "—" for k in (
            "hit@1", "hit@3", "hit@5", "mrr", "answer_coverage", "cited_facts", "key_facts", "citation_precision",
            "suggestion_relevance", "refusal_precision", "refusal_recall", "false_refusals")]
        cells += [f"{o['latency_p50_ms']:.0f} ms", f"{o['latency_p95_ms']:.0f} ms"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
