"""Staff analytics: questions per day and per channel, share of refusals, thumbs up/down, the most
asked themes, the « lacunes du corpus » trend; plots drawn as SVG on the server (no script, no CDN),
CSV export, and the retention rule (served questions deleted after ``ASSISTANT_RETENTION_DAYS``).

Only what the feedback store already holds is read (date, channel, status, cited sources, rating);
the themes of a question are those of the documents its answer cited (index metadata).

Routes (HTTP Basic with the staff password, like ``/staff/feedback.csv``):
``GET /staff/analytics`` (page with the plots), ``GET /staff/analytics.csv`` (one row per day).

Usage::

    figures = compute(service.store.answer_rows(), service.index)    # dict of counts
    svg = bar_chart([("2026-12-01", 3), ...], "Questions par jour")
    apply_retention(service)                                         # at start and hourly
"""

from __future__ import annotations

import csv
import html
import io
import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from assistant.retrieve import Index
from assistant.web.security import CHANNELS, csv_cell
from assistant.web.service import Service

CHANNEL_LABELS = {"api": "API", "widget": "Widget", "ui": "Conversation"}
CHANNEL_COLOURS = {"ui": "#1e3a8a", "widget": "#047857", "api": "#9a3412"}
PURGE_EVERY_S = 3600.0


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def compute(rows: list[dict[str, Any]], index: Index | None = None, top: int = 8) -> dict[str, Any]:
    """Counts from the served answers: per day and channel, refusals, thumbs, themes, lacunes."""
    themes_of: dict[str, list[str]] = {}
    if index is not None:
        for meta in index.metadata.values():
            themes_of.setdefault(str(meta.get("source")), [str(t) for t in meta.get("themes") or []])
    days: dict[str, dict[str, int]] = {}
    themes: Counter[str] = Counter()
    total = refusals = up = down = 0
    for row in rows:
        day = str(row["ts"])[:10]
        counts = days.setdefault(day, {**{c: 0 for c in CHANNELS}, "no_answer": 0, "up": 0, "down": 0})
        channel = row["channel"] if row["channel"] in CHANNELS else "api"
        counts[channel] += 1
        total += 1
        if row["status"] == "no_answer":
            counts["no_answer"] += 1
            refusals += 1
        if row.get("rating") in ("up", "down"):
            counts[row["rating"]] += 1
            up += row["rating"] == "up"
            down += row["rating"] == "down"
        try:
            sources = {str(c.get("source")) for c in json.loads(row.get("citations") or "[]")}
        except (ValueError, AttributeError):
            sources = set()
        themes.update({t for s in sources for t in themes_of.get(s, [])})
    return {"days": dict(sorted(days.items())), "total": total, "refusals": refusals,
            "refusal_share": refusals / total if total else 0.0, "up": up, "down": down,
            "themes": themes.most_common(top)}


def bar_chart(bars: list[tuple[str, dict[str, int]]], title: str, series: list[tuple[str, str, str]],
              width: int = 560, height: int = 220) -> str:
    """A stacked bar chart as accessible SVG (``role="img"``, title and a text summary).
    ``bars``: (label, {series key: value}); ``series``: (key, label, colour)."""
    left, bottom, top_pad = 36, 40, 14
    plot_w, plot_h = width - left - 10, height - bottom - top_pad
    peak = max([sum(v.get(k, 0) for k, _, _ in series) for _, v in bars] or [0]) or 1
    step = plot_w / max(len(bars), 1)
    bar_w = max(min(step * 0.7, 40), 2)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-labelledby="t-{abs(hash(title))}">'
             f'<title id="t-{abs(hash(title))}">{esc(title)}</title>',
             f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{width - 10}" y2="{top_pad + plot_h}" stroke="#374151"/>',
             f'<text x="{left - 6}" y="{top_pad + 10}" text-anchor="end" font-size="11" fill="#1f2937">{peak}</text>',
             f'<text x="{left - 6}" y="{top_pad + plot_h}" text-anchor="end" font-size="11" fill="#1f2937">0</text>']
    every = max(1, len(bars) // 8)
    for i, (label, values) in enumerate(bars):
        x = left + i * step + (step - bar_w) / 2
        y = top_pad + plot_h
        for key, name, colour in series:
            value = values.get(key, 0)
            if not value:
                continue
            h = plot_h * value / peak
            y -= h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{colour}">'
                         f'<title>{esc(label)} · {esc(name)} : {value}</title></rect>')
        if i % every == 0:
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{height - bottom + 16}" text-anchor="middle" '
                         f'font-size="10" fill="#1f2937">{esc(label[5:] if len(label) == 10 else label[:14])}</text>')
    legend_x = left
    for _key, name, colour in series:
        parts.append(f'<rect x="{legend_x}" y="{height - 14}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{legend_x + 14}" y="{height - 5}" font-size="11" fill="#1f2937">{esc(name)}</text>')
        legend_x += 14 + 8 * len(name) + 16
    parts.append("</svg>")
    return "".join(parts)


def hbar_chart(items: list[tuple[str, int]], title: str, width: int = 560) -> str:
    """Horizontal bars (themes), as SVG."""
    row_h, label_w = 22, 200
    height = max(len(items), 1) * row_h + 10
    peak = max([n for _, n in items] or [1]) or 1
    tid = f"h-{abs(hash(title))}"
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-labelledby="{tid}"><title id="{tid}">{esc(title)}</title>']
    for i, (label, n) in enumerate(items):
        y = 5 + i * row_h
        w = (width - label_w - 40) * n / peak
        parts.append(f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end" font-size="12" fill="#1f2937">'
                     f'{esc(label[:30])}</text><rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="15" '
                     f'fill="#1e3a8a"/><text x="{label_w + w + 4:.1f}" y="{y + 15}" font-size="12" '
                     f'fill="#1f2937">{n}</text>')
    parts.append("</svg>")
    return "".join(parts)


def to_csv(figures: dict[str, Any]) -> str:
    """One row per day: questions per channel, total, refusals, thumbs."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["jour", *CHANNELS, "total", "sans_reponse", "avis_positifs", "avis_negatifs"])
    for day, c in figures["days"].items():
        writer.writerow([csv_cell(day), *(c[ch] for ch in CHANNELS), sum(c[ch] for ch in CHANNELS),
                         c["no_answer"], c["up"], c["down"]])
    return out.getvalue()


def render_page(figures: dict[str, Any], retention_days: int) -> str:
    days = list(figures["days"].items())
    channel_series = [(c, CHANNEL_LABELS[c], CHANNEL_COLOURS[c]) for c in CHANNELS]
    per_day = bar_chart(days, "Questions par jour et par canal", channel_series)
    lacunes = bar_chart(days, "Questions restées sans réponse (lacunes du corpus) par jour",
                        [("no_answer", "Sans réponse", "#9a3412")])
    thumbs = bar_chart(days, "Avis par jour", [("up", "Utile", "#047857"), ("down", "Pas utile", "#991b1b")])
    themes = hbar_chart(figures["themes"], "Thèmes les plus demandés (documents cités)")
    share = f"{100 * figures['refusal_share']:.0f} %".replace(".", ",")
    per_channel = Counter()
    for _, c in days:
        for ch in CHANNELS:
            per_channel[ch] += c[ch]
    rows = "".join(f"<tr><th scope=\"row\">{esc(CHANNEL_LABELS[ch])}</th><td>{per_channel[ch]}</td></tr>"
                   for ch in CHANNELS)
    retention = (f"Les questions servies et leurs avis sont effacés après {retention_days} jours "
                 "(réglage <code>ASSISTANT_RETENTION_DAYS</code>)." if retention_days else
                 "Les questions servies sont gardées sans limite (<code>ASSISTANT_RETENTION_DAYS=0</code>).")
    body = (
        "<h1>Statistiques d'usage de l'assistant</h1>"
        f"<p>{figures['total']} questions servies · {figures['refusals']} sans réponse ({share}) · "
        f"{figures['up']} avis positifs · {figures['down']} avis négatifs. {retention}</p>"
        '<p><a href="/staff/analytics.csv">Exporter par jour en CSV</a> · '
        '<a href="/staff/feedback.csv">Exporter les avis en CSV</a></p>'
        f'<table><caption>Questions par canal</caption><tbody>{rows}</tbody></table>'
        f'<div class="charts"><figure><figcaption>Questions par jour et par canal</figcaption>{per_day}</figure>'
        f'<figure><figcaption>Lacunes du corpus (sans réponse) par jour</figcaption>{lacunes}</figure>'
        f'<figure><figcaption>Avis par jour</figcaption>{thumbs}</figure>'
        f'<figure><figcaption>Thèmes les plus demandés</figcaption>{themes}</figure></div>')
    return (f'<!doctype html><html lang="fr"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><title>Statistiques — espace équipe PQN-A</title>'
            f'<link rel="stylesheet" href="/public-static/catalogue.css"></head><body>'
            f'<header class="site"><p class="brand"><a href="/">Assistant du dialogue territorial</a> · espace équipe'
            f'</p></header><main id="contenu">{body}</main></body></html>')


def apply_retention(service: Service, force: bool = False) -> int:
    """Delete served questions older than the retention setting (at most once an hour unless ``force``)."""
    last = getattr(service, "_retention_at", 0.0)
    if not force and time.monotonic() - last < PURGE_EVERY_S:
        return 0
    service._retention_at = time.monotonic()  # type: ignore[attr-defined]
    return service.store.purge_older_than(service.settings.retention_days)


def register_analytics(app: FastAPI, service: Service, staff_refusal: Callable[[Request], Response | None]) -> None:
    """Add the staff analytics routes (HTTP Basic, like the other /staff/ routes)."""
    apply_retention(service, force=True)

    @app.get("/staff/analytics")
    def analytics(request: Request) -> Response:
        refusal = staff_refusal(request)
        if refusal is not None:
            return refusal
        apply_retention(service)
        figures = compute(service.store.answer_rows(), service.index)
        return HTMLResponse(render_page(figures, service.settings.retention_days))

    @app.get("/staff/analytics.csv")
    def analytics_csv(request: Request) -> Response:
        refusal = staff_refusal(request)
        if refusal is not None:
            return refusal
        figures = compute(service.store.answer_rows(), service.index)
        return Response(to_csv(figures), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="statistiques-assistant.csv"'})
