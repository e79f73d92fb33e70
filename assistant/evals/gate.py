"""Comparing reports and the regression gate.

The gate compares the HEADLINE metrics of a run with the baseline (``evals/baseline/report.json``):
it fails when one falls by more than ``TOLERANCE`` (absolute), or, for false refusals (lower is
better), rises by more than ``TOLERANCE``. Reports made on different sets are not compared.

Usage::

    problems = gate(report, baseline)          # [] when the run passes, else French sentences
    print(compare_table(report_a, report_b))   # headline deltas, in French
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TOLERANCE = 0.03
HEADLINE = ("hit@3", "key_facts", "refusal_recall", "false_refusals", "citation_precision")
LOWER_IS_BETTER = {"false_refusals", "latency_p50_ms", "latency_p95_ms"}
LABELS = {
    "hit@1": "hit@1", "hit@3": "hit@3", "hit@5": "hit@5", "mrr": "MRR",
    "key_facts": "faits clés dans les passages cités (moyenne)", "all_key_facts": "tous les faits clés cités",
    "answer_coverage": "faits clés dans le texte de la réponse", "citation_precision": "précision des citations",
    "supported_sentences": "phrases appuyées par leurs sources", "refusal_precision": "précision des refus",
    "refusal_recall": "rappel des refus", "false_refusals": "faux refus",
    "latency_p50_ms": "latence médiane (ms)", "latency_p95_ms": "latence p95 (ms)",
}
COMPARED = (*HEADLINE, "hit@1", "hit@5", "mrr", "all_key_facts", "answer_coverage", "supported_sentences",
            "refusal_precision", "latency_p50_ms", "latency_p95_ms")


def load_report(path: Path) -> dict[str, Any]:
    """A report.json, given as the file or its folder."""
    path = path / "report.json" if path.is_dir() else path
    return json.loads(path.read_text(encoding="utf-8"))


def same_set(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Were both reports made on the same question set (same file content)?"""
    return bool(a["meta"].get("set_sha1")) and a["meta"].get("set_sha1") == b["meta"].get("set_sha1")


def gate(report: dict[str, Any], baseline: dict[str, Any], tolerance: float = TOLERANCE) -> list[str]:
    """French sentences, one per headline metric beyond tolerance; empty when the run passes."""
    problems = []
    for key in HEADLINE:
        new, old = report["overall"].get(key), baseline["overall"].get(key)
        if new is None or old is None:
            continue
        worse = new - old if key in LOWER_IS_BETTER else old - new
        if worse > tolerance + 1e-9:
            problems.append(f"{LABELS[key]} : {fr(old)} → {fr(new)} (écart {fr(abs(new - old))} > tolérance "
                            f"{fr(tolerance, 2)})")
    return problems


def deltas(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows (metric, label, a, b, delta, better?) from run A to run B."""
    rows = []
    for key in COMPARED:
        va, vb = a["overall"].get(key), b["overall"].get(key)
        delta = vb - va if va is not None and vb is not None else None
        better = None if not delta else (delta < 0) == (key in LOWER_IS_BETTER)
        rows.append({"metric": key, "label": LABELS[key], "a": va, "b": vb, "delta": delta, "better": better,
                     "headline": key in HEADLINE})
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
    lines.append(f"* indicateur principal (porte de non-régression : tolérance {fr(TOLERANCE, 2)})")
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
    head = ("| mode | hit@1 | hit@3 | hit@5 | MRR | faits clés (moyenne) | tous les faits | faits dans la réponse "
            "| précision citations | précision refus | rappel refus | faux refus | latence p50 | p95 |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in reports:
        o = r["overall"]
        cells = [r["meta"]["config_label"]] + [fr(o[k], 2) if o.get(k) is not None else "—" for k in (
            "hit@1", "hit@3", "hit@5", "mrr", "key_facts", "all_key_facts", "answer_coverage", "citation_precision",
            "refusal_precision", "refusal_recall", "false_refusals")]
        cells += [f"{o['latency_p50_ms']:.0f} ms", f"{o['latency_p95_ms']:.0f} ms"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
