"""Write a report: ``report.json`` (everything) and ``report.html`` (one self-contained page in French:
headline figures, inline SVG plots, failures table; no script, no external file; all text escaped).

Usage::

    write_report(report, Path("evals/reports/2026-01-01-hybrid"), previous=prev, baseline=base)
    write_compare(report_a, report_b, Path("evals/reports/compare.html"))
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from assistant.evals.gate import (
    HEADLINE,
    LABELS,
    LLM_ONLY,
    deltas,
    fmt,
    fmt_delta,
    fr,
    gate,
    gated_metrics,
    same_set,
)

COLORS = ("#1d4ed8", "#9ca3af", "#b45309")
SHORT = {"hit@1": "hit@1", "hit@3": "hit@3", "key_facts": "faits passages", "refusal_recall": "rappel refus",
         "false_refusals": "faux refus", "citation_precision": "préc. citations", "mrr": "MRR",
         "answer_coverage": "faits réponse", "cited_facts": "faits cités", "suggestion_relevance": "suggestions",
         "supported_sentences": "phrases appuyées"}
DOC_TYPE_LABELS = {"fiche_outil": "fiches outils", "fiche_experience": "fiches expériences",
                   "entretien": "entretiens", "rapport": "rapports", "autre": "autres"}
CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #111827; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { margin-top: 2em; border-bottom: 1px solid #d1d5db; }
.cards { display: flex; flex-wrap: wrap; gap: .8em; }
.card { border: 1px solid #d1d5db; border-radius: 8px; padding: .6em 1em; min-width: 11em; }
.card .v { font-size: 1.8em; font-weight: 700; } .card .l { color: #374151; font-size: .9em; }
.ok { color: #166534; } .ko { color: #b91c1c; font-weight: 700; }
table { border-collapse: collapse; width: 100%; font-size: .9em; }
th, td { border: 1px solid #d1d5db; padding: .3em .5em; vertical-align: top; text-align: left; }
th { background: #f3f4f6; } td.n { text-align: right; white-space: nowrap; }
details summary { cursor: pointer; } pre { white-space: pre-wrap; font-family: inherit; margin: 0; }
.meta { color: #374151; } svg text { font-family: system-ui, sans-serif; font-size: 12px; fill: #111827; }
"""


def esc(value: Any) -> str:
    """Any text shown in the page is escaped (questions, answers, passages come from users and corpus)."""
    return html.escape(str(value if value is not None else ""), quote=True)


def svg_bars(groups: list[str], series: list[tuple[str, list[float | None]]], title: str,
             maximum: float = 1.0) -> str:
    """Grouped vertical bars (values 0..maximum), one colour per series, with a legend."""
    width, height, left, bottom, top = max(420, 110 * len(groups) + 60), 260, 40, 60, 30
    plot_h = height - bottom - top
    group_w = (width - left - 10) / max(len(groups), 1)
    bar_w = group_w * 0.8 / max(len(series), 1)
    parts = [f'<svg role="img" aria-label="{esc(title)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg"><title>{esc(title)}</title>']
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        y = top + plot_h * (1 - tick)
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>'
                     f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{format(tick * maximum, ".2g").replace(".", ",")}</text>')
    for g, name in enumerate(groups):
        x0 = left + g * group_w + group_w * 0.1
        for s, (_, values) in enumerate(series):
            value = values[g]
            if value is None:
                continue
            h = plot_h * min(max(value / maximum, 0.0), 1.0)
            x = x0 + s * bar_w
            parts.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w - 2:.1f}" height="{h:.1f}" '
                         f'fill="{COLORS[s % len(COLORS)]}"><title>{esc(series[s][0])} — {esc(name)} : '
                         f'{fr(value)}</title></rect>')
        parts.append(f'<text x="{x0 + group_w * 0.4:.1f}" y="{height - bottom + 16}" text-anchor="middle">'
                     f'{esc(name[:18])}</text>')
    for s, (label, _) in enumerate(series):
        x = left + s * 170
        parts.append(f'<rect x="{x}" y="6" width="12" height="12" fill="{COLORS[s % len(COLORS)]}"/>'
                     f'<text x="{x + 16}" y="16">{esc(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def svg_histogram(values: list[float], title: str, bins: int = 12) -> str:
    """A histogram of latencies (ms)."""
    if not values:
        return "<p>Aucune mesure.</p>"
    low, high = min(values), max(values)
    step = (high - low) / bins or 1.0
    counts = [0] * bins
    for v in values:
        counts[min(int((v - low) / step), bins - 1)] += 1
    width, height, left, bottom, top = 560, 220, 40, 40, 15
    bar_w = (width - left - 10) / bins
    peak = max(counts)
    parts = [f'<svg role="img" aria-label="{esc(title)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg"><title>{esc(title)}</title>']
    for i, c in enumerate(counts):
        h = (height - bottom - top) * c / peak
        x = left + i * bar_w
        parts.append(f'<rect x="{x:.1f}" y="{height - bottom - h:.1f}" width="{bar_w - 2:.1f}" height="{h:.1f}" '
                     f'fill="{COLORS[0]}"><title>{low + i * step:.0f}–{low + (i + 1) * step:.0f} ms : {c} '
                     f'question(s)</title></rect>')
    parts.append(f'<text x="{left}" y="{height - bottom + 16}">{low:.0f} ms</text>'
                 f'<text x="{width - 10}" y="{height - bottom + 16}" text-anchor="end">{high:.0f} ms</text>'
                 f'<text x="{left - 4}" y="{top + 10}" text-anchor="end">{peak}</text>'
                 f'<text x="{width / 2:.0f}" y="{height - 6}" text-anchor="middle">latence de answer() '
                 f'(ms) ; hauteur = nombre de questions</text></svg>')
    return "".join(parts)


def failures(records: list[dict[str, Any]]) -> list[tuple[dict[str, Any], list[str]]]:
    """Records that went wrong, each with its reasons in French."""
    out = []
    for r in records:
        reasons = []
        if r["expected_status"] == "no_answer":
            if r["status"] == "answered":
                reasons.append("aurait dû dire que le corpus ne répond pas")
        else:
            if r["status"] == "no_answer":
                reasons.append("refus à tort")
            if not r["hit@3"]:
                reasons.append("source attendue absente des 3 premiers fichiers trouvés")
            said = r.get("facts_in_cited_sentences", r["facts_in_answer"])
            missing = [f for f, ok in zip(r["key_facts"], said, strict=True) if not ok]
            if missing and r["status"] == "answered":
                reasons.append("faits absents des phrases citées de la réponse : " + " ; ".join(missing))
            if not all(r["citations_supported"]):
                reasons.append("citation(s) qui n'appuient pas la réponse")
        if reasons:
            out.append((r, reasons))
    return out


def _failures_table(records: list[dict[str, Any]]) -> str:
    rows = []
    for r, reasons in failures(records):
        cited = "".join(f"<li>[{c['n']}] <code>{esc(c['source'])}</code>{' — ' + esc(c['section']) if c['section'] else ''}"
                        f"{' p. ' + esc(c['page']) if c['page'] else ''}</li>" for c in r["citations"])
        context = ""
        if r["history"]:
            context += f"<br><span class='meta'>avant : {esc(' / '.join(r['history']))}</span>"
        if r["filters"]:
            context += f"<br><span class='meta'>filtres : {esc(r['filters'])}</span>"
        rows.append(
            f"<tr class='failure'><td>{esc(r['id'])}<br><span class='meta'>{esc(r['kind'])}</span></td>"
            f"<td>{esc(r['question'])}{context}</td>"
            f"<td>{esc('répondre' if r['expected_status'] == 'answered' else 'refuser')}<br>"
            f"{'<br>'.join('<code>' + esc(s) + '</code>' for s in r['gold_sources'])}"
            f"{'<br>faits : ' + esc(' ; '.join(r['key_facts'])) if r['key_facts'] else ''}</td>"
            f"<td>{esc('; '.join(reasons))}<br><span class='meta'>fichiers trouvés : "
            f"{esc(', '.join(r['ranked_sources'][:3]))}</span></td>"
            f"<td><details><summary>{esc('réponse' if r['status'] == 'answered' else 'refus')}</summary>"
            f"<pre>{esc(r['answer'])}</pre></details><ul>{cited}</ul></td></tr>")
    if not rows:
        return "<p>Aucun échec : toutes les questions ont obtenu le résultat attendu.</p>"
    return ("<table><thead><tr><th>id</th><th>Question</th><th>Attendu (sources, faits)</th><th>Problème</th>"
            f"<th>Réponse et citations</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _group_table(groups: dict[str, dict[str, Any]], title: str) -> str:
    keys = ("questions", "hit@1", "hit@3", "mrr", "answer_coverage", "cited_facts", "key_facts", "refusal_recall",
            "false_refusals")
    head = "".join(f"<th>{esc(LABELS.get(k, 'questions'))}</th>" for k in keys)
    body = "".join(f"<tr><td>{esc(DOC_TYPE_LABELS.get(name, name))}</td>"
                   + "".join(f"<td class='n'>{g[k] if k == 'questions' else fmt(g.get(k))}</td>" for k in keys)
                   + "</tr>" for name, g in groups.items())
    return f"<table><caption>{esc(title)}</caption><thead><tr><th></th>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cards(report: dict[str, Any], baseline: dict[str, Any] | None) -> str:
    o = report["overall"]
    cards = []
    gated = gated_metrics(report)
    for key in (*HEADLINE, *LLM_ONLY, "key_facts", "latency_p50_ms", "latency_p95_ms"):
        ref = ""
        if baseline is not None and baseline["overall"].get(key) is not None and o.get(key) is not None:
            ref = f"<div class='meta'>référence : {fmt(baseline['overall'][key], key)}</div>"
        cards.append(f"<div class='card'><div class='v'>{fmt(o.get(key), key)}</div>"
                     f"<div class='l'>{esc(LABELS[key])}{'' if key in gated else ' (hors porte)'}</div>{ref}</div>")
    return f"<div class='cards'>{''.join(cards)}</div>"


def render_html(report: dict[str, Any], previous: dict[str, Any] | None = None,
                baseline: dict[str, Any] | None = None) -> str:
    """The whole page (see the module docstring)."""
    meta, o = report["meta"], report["overall"]
    verdict = ""
    if baseline is not None:
        problems = gate(report, baseline)
        verdict = ("<p class='ok'>Porte de non-régression : réussie (aucun indicateur de la porte ne recule de plus "
                   "de sa tolérance, evals/tolerances.yaml).</p>" if not problems else
                   "<p class='ko'>Porte de non-régression : ÉCHEC — " + esc(" ; ".join(problems)) + "</p>")
        if not same_set(report, baseline):
            baseline = None  # figures of another set are not drawn next to these
    shown = (*HEADLINE, "key_facts")
    series = [("ce passage", [o.get(k) for k in shown])]
    for label, other in (("passage précédent", previous), ("référence", baseline)):
        if other is not None:
            series.append((label, [other["overall"].get(k) for k in shown]))
    names = [SHORT[k] for k in shown]
    types = {k: v for k, v in report["by_doc_type"].items() if v["answerable"]}
    by_type = svg_bars([DOC_TYPE_LABELS.get(t, t) for t in types],
                       [("hit@3", [g["hit@3"] for g in types.values()]),
                        ("faits dans la réponse", [g["answer_coverage"] for g in types.values()])],
                       "hit@3 et faits clés dans la réponse par type de document")
    latencies = [r["latency_ms"] for r in report["records"]]
    n_fail = len(failures(report["records"]))
    return f"""<!DOCTYPE html>
<html lang="fr"><head><meta charset="utf-8"><title>Évaluation — {esc(meta['config_label'])} — {esc(meta['started'])}</title>
<style>{CSS}</style></head><body>
<h1>Évaluation de l'assistant — {esc(meta['config_label'])}</h1>
<p class="meta">Jeu : <code>{esc(meta['set'])}</code> ({o['questions']} questions, dont {o['answerable']} avec réponse
attendue) · modèle : {esc(meta['embedding_model'])} · LLM : {esc(meta['llm'])} · lancé le {esc(meta['started'])}
({esc(meta['seconds'])} s)</p>
{verdict}
<h2>Chiffres principaux</h2>
{_cards(report, baseline)}
<p class="meta">hit@3 : une source attendue est parmi les 3 premiers fichiers trouvés. Faits dans la réponse : part
moyenne des faits attendus présents, en mots entiers, dans le texte de la réponse (avant la liste des sources). Faits
cités : le fait est dans une phrase de la réponse ET dans le passage que cette phrase cite. Faits dans les passages :
présents quelque part dans les passages cités (indiqué, hors porte). Faux refus : questions du corpus auxquelles
l'assistant n'a pas répondu (plus bas = mieux).</p>
<h2>Comparaison avec le passage précédent et la référence</h2>
{svg_bars(names, series, "Indicateurs : ce passage, le précédent, la référence")}
<h2>Par type de document (source attendue)</h2>
{by_type}
{_group_table(report['by_doc_type'], "Indicateurs par type de document de la source attendue")}
<h2>Par catégorie de question</h2>
{_group_table(report['by_kind'], "Indicateurs par catégorie de question (kind)")}
<h2>Latence</h2>
<p>Médiane {fmt(o['latency_p50_ms'], 'latency')} ms · p95 {fmt(o['latency_p95_ms'], 'latency')} ms</p>
{svg_histogram(latencies, "Distribution des latences")}
<h2>Échecs ({n_fail})</h2>
{_failures_table(report['records'])}
</body></html>
"""


def write_report(report: dict[str, Any], out_dir: Path, previous: dict[str, Any] | None = None,
                 baseline: dict[str, Any] | None = None) -> Path:
    """Write report.json and report.html into ``out_dir``; returns the HTML path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    page = out_dir / "report.html"
    page.write_text(render_html(report, previous, baseline), encoding="utf-8")
    return page


def write_compare(a: dict[str, Any], b: dict[str, Any], path: Path) -> Path:
    """A small page with the deltas from A to B (table + bars)."""
    rows = deltas(a, b)
    body = "".join(
        f"<tr><td>{'<strong>' if r['headline'] else ''}{esc(r['label'])}{'</strong>' if r['headline'] else ''}</td>"
        f"<td class='n'>{fmt(r['a'], r['metric'])}</td><td class='n'>{fmt(r['b'], r['metric'])}</td>"
        f"<td class='n {'' if r['better'] is None else 'ok' if r['better'] else 'ko'}'>"
        f"{fmt_delta(r['delta'], r['metric'])}</td></tr>" for r in rows)
    head = [r for r in rows if r["headline"]]
    chart = svg_bars([SHORT[r["metric"]] for r in head], [("A", [r["a"] for r in head]),
                                                                    ("B", [r["b"] for r in head])], "A et B")
    page = f"""<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8"><title>Comparaison d'évaluations</title>
<style>{CSS}</style></head><body><h1>Comparaison d'évaluations</h1>
<p>A : {esc(a['meta']['config_label'])} — {esc(a['meta']['started'])} — <code>{esc(a['meta']['set'])}</code><br>
B : {esc(b['meta']['config_label'])} — {esc(b['meta']['started'])} — <code>{esc(b['meta']['set'])}</code></p>
{'' if same_set(a, b) else '<p class="ko">Les deux rapports ne portent pas sur le même jeu de questions.</p>'}
{chart}<table><thead><tr><th>indicateur</th><th>A</th><th>B</th><th>écart (B − A)</th></tr></thead>
<tbody>{body}</tbody></table></body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
