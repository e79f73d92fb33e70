"""Public pages rendered on the server (no JavaScript needed): the catalogue of fiches outils and
fiches expériences at ``/catalogue``, the « Déclaration d'accessibilité » at ``/accessibilite``, and
the widget's compact filter form.

The catalogue lists every indexed fiche outil and fiche expérience (one entry per file, from the
index's metadata), filterable with a plain GET form (``?type=fiche_experience&echelle=commune
&departement=Landes&theme=participation``), each entry linking to the document itself
(``/sources/…``), illustrative ones marked « exemple fictif ». The experiences are also shown on a
tile grid of the 12 départements of Nouvelle-Aquitaine (``static/departements-na.json``, a layout
drawn for this project, CC0): each tile gives the number of experiences and filters on its
département.

Usage::

    register_public_pages(app, service)      # in server.create_app
    catalogue_entries(service.index)         # one dict per fiche (title, type, échelles, …)
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse

from assistant.retrieve import Index
from assistant.web.service import DOC_TYPE_LABELS, ECHELLE_LABELS, Service

STATIC = Path(__file__).resolve().parent / "static"
CATALOGUE_TYPES = ("fiche_outil", "fiche_experience")
FILTERS = ("type", "echelle", "departement", "theme")
FICTIF = '<span class="fictif">exemple fictif</span>'


def esc(value: Any) -> str:
    return html.escape(str(value if value is not None else ""), quote=True)


def tiles() -> dict[str, Any]:
    """The tile layout of the 12 départements (rows and columns from 1)."""
    return json.loads((STATIC / "departements-na.json").read_text(encoding="utf-8"))


def catalogue_entries(index: Index) -> list[dict[str, Any]]:
    """One entry per indexed fiche outil / fiche expérience, sorted by title."""
    entries: dict[str, dict[str, Any]] = {}
    for meta in index.metadata.values():
        doc_type = str(meta.get("doc_type") or "autre")
        source = str(meta.get("source") or "")
        if doc_type not in CATALOGUE_TYPES or not source or source in entries:
            continue
        echelle = meta.get("echelle") or []
        entries[source] = {
            "source": source, "title": str(meta.get("title") or source), "doc_type": doc_type,
            "echelles": [echelle] if isinstance(echelle, str) else [str(e) for e in echelle],
            "departement": str(meta.get("departement") or ""), "territoire": str(meta.get("territoire") or ""),
            "themes": [str(t) for t in meta.get("themes") or []], "illustrative": bool(meta.get("illustrative")),
        }
    return sorted(entries.values(), key=lambda e: e["title"].lower())


def matches(entry: dict[str, Any], chosen: dict[str, str]) -> bool:
    if chosen.get("type") and entry["doc_type"] != chosen["type"]:
        return False
    if chosen.get("echelle") and chosen["echelle"] not in entry["echelles"]:
        return False
    if chosen.get("departement") and entry["departement"] != chosen["departement"]:
        return False
    return not chosen.get("theme") or chosen["theme"].lower() in (t.lower() for t in entry["themes"])


def _select(name: str, label: str, options: list[tuple[str, str]], chosen: str, empty: str) -> str:
    opts = [f'<option value="">{esc(empty)}</option>'] + [
        f'<option value="{esc(v)}"{" selected" if v == chosen else ""}>{esc(lab)}</option>' for lab, v in options]
    return (f'<div class="field"><label for="f-{name}">{esc(label)}</label>'
            f'<select id="f-{name}" name="{name}">{"".join(opts)}</select></div>')


def source_href(source: str, prefix: str = "/") -> str:
    return prefix + "sources/" + quote(source)


def _page(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="fr"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{esc(title)}</title>'
            f'<link rel="stylesheet" href="/public-static/catalogue.css"></head><body>'
            f'<a class="skip" href="#contenu">Aller au contenu</a>'
            f'<header class="site"><p class="brand"><a href="/">Assistant du dialogue territorial</a> · PQN-A</p>'
            f'<nav aria-label="Pages"><ul><li><a href="/">Poser une question</a></li>'
            f'<li><a href="/catalogue">Catalogue des fiches</a></li>'
            f'<li><a href="/accessibilite">Accessibilité</a></li></ul></nav></header>'
            f'<main id="contenu">{body}</main></body></html>')


def render_catalogue(service: Service, query: dict[str, str]) -> str:
    """The whole catalogue page for the filters in ``query``."""
    entries = catalogue_entries(service.index)
    chosen = {k: str(query.get(k) or "").strip() for k in FILTERS}
    shown = [e for e in entries if matches(e, chosen)]
    choices = service.filter_choices()
    departements = sorted({e["departement"] for e in entries if e["departement"]})
    themes = sorted({t for e in entries for t in e["themes"]}, key=str.lower)
    form = (
        '<form class="filters" method="get" action="/catalogue" aria-label="Filtrer le catalogue">'
        + _select("type", "Type", [(DOC_TYPE_LABELS[t], t) for t in CATALOGUE_TYPES], chosen["type"], "Tous")
        + _select("echelle", "Échelle", choices["echelle"], chosen["echelle"], "Toutes")
        + _select("departement", "Département", [(d, d) for d in departements], chosen["departement"], "Tous")
        + _select("theme", "Thème", [(t, t) for t in themes], chosen["theme"], "Tous")
        + '<div class="field buttons"><button type="submit">Filtrer</button>'
          '<a href="/catalogue">Tout afficher</a></div></form>')
    items = []
    for e in shown:
        labels = [DOC_TYPE_LABELS.get(e["doc_type"], e["doc_type"])]
        labels += [ECHELLE_LABELS.get(x, x) for x in e["echelles"]][:3]
        if e["departement"]:
            labels.append(e["departement"])
        meta = " · ".join(esc(x) for x in labels)
        themes_html = "".join(f'<li><a href="/catalogue?{esc(urlencode({"theme": t}))}">{esc(t)}</a></li>'
                              for t in e["themes"][:6])
        items.append(
            f'<li class="item {esc(e["doc_type"])}"><h3><a href="{esc(source_href(e["source"]))}">{esc(e["title"])}</a>'
            f'{" " + FICTIF if e["illustrative"] else ""}</h3><p class="meta">{meta}</p>'
            + (f'<p class="territoire">{esc(e["territoire"])}</p>' if e["territoire"] else "")
            + (f'<ul class="themes" aria-label="Thèmes">{themes_html}</ul>' if themes_html else "") + "</li>")
    listing = f'<ul class="items">{"".join(items)}</ul>' if items else (
        '<p class="empty">Aucune fiche ne correspond à ces filtres. <a href="/catalogue">Tout afficher</a></p>')
    grid = tiles()
    counts: dict[str, int] = {}
    for e in entries:
        if e["doc_type"] == "fiche_experience" and e["departement"]:
            counts[e["departement"]] = counts.get(e["departement"], 0) + 1
    tile_html = []
    for t in grid["tiles"]:
        n = counts.get(t["name"], 0)
        current = ' aria-current="true"' if chosen["departement"] == t["name"] else ""
        href = "/catalogue?" + urlencode({"type": "fiche_experience", "departement": t["name"]})
        label = f'{n} expérience{"s" if n > 1 else ""}'
        tile_html.append(
            f'<li class="tile r{t["row"]} c{t["col"]}{" none" if not n else ""}"><a href="{esc(href)}"{current}>'
            f'<span class="code">{esc(t["code"])}</span><span class="name">{esc(t["name"])}</span>'
            f'<span class="count">{label}</span></a></li>')
    total_exp = sum(counts.values())
    active = [f"{esc(k)} : {esc(v)}" for k, v in chosen.items() if v]
    body = (
        '<h1>Catalogue des fiches outils et des fiches expériences</h1>'
        '<p class="intro">Toutes les fiches du centre de ressources, à filtrer par type, échelle, département ou thème. '
        'Chaque titre ouvre le document. Les fiches marquées ' + FICTIF + ' sont des illustrations, pas des expériences '
        'réelles.</p>'
        '<section aria-labelledby="carte-titre" class="map"><h2 id="carte-titre">Les expériences par département</h2>'
        f'<p>{total_exp} fiches expériences situées dans un département de Nouvelle-Aquitaine. '
        'Choisissez un département pour voir ses expériences.</p>'
        f'<ul class="tiles" aria-label="Départements de Nouvelle-Aquitaine">{"".join(tile_html)}</ul></section>'
        f'<section aria-labelledby="liste-titre"><h2 id="liste-titre">Les fiches</h2>{form}'
        f'<p class="count" role="status">{len(shown)} fiche{"s" if len(shown) > 1 else ""} sur {len(entries)}'
        + (f' (filtres : {", ".join(active)})' if active else "") + f'</p>{listing}</section>')
    return _page("Catalogue des fiches — Assistant du dialogue territorial (PQN-A)", body)


def render_accessibility(service: Service) -> str:
    """The « Déclaration d'accessibilité » in the RGAA model's form (state from the automated audit)."""
    body = (
        "<h1>Déclaration d'accessibilité</h1>"
        "<p>Le centre de ressources Pays et Quartiers de Nouvelle-Aquitaine (PQN-A) s'engage à rendre son assistant "
        "du dialogue territorial accessible conformément à l'article 47 de la loi n° 2005-102 du 11 février 2005.</p>"
        "<p>Cette déclaration d'accessibilité s'applique à l'assistant : la conversation (<a href=\"/\">page "
        "d'accueil</a>), le widget intégré aux sites partenaires, le <a href=\"/catalogue\">catalogue des fiches</a> "
        "et l'espace équipe.</p>"
        "<h2>État de conformité</h2>"
        "<p>L'assistant du dialogue territorial est <strong>non conforme</strong> avec le référentiel général "
        "d'amélioration de l'accessibilité (RGAA), version 4.1 : aucun audit de conformité complet n'a encore été "
        "réalisé.</p>"
        "<h2>Résultats des tests</h2>"
        "<p>Un contrôle automatique (axe-core, exécuté à chaque modification dans un navigateur réel) vérifie la "
        "conversation, le widget sur une page d'accueil d'un autre site, le catalogue, la présente page et l'espace "
        "équipe : aucune violation d'impact « grave » ou « critique ». Un parcours au clavier seul du widget (ouvrir, "
        "poser une question, lire la réponse, ouvrir une source, fermer) est testé, avec un focus visible rendu au "
        "bouton d'ouverture. Un contrôle automatique ne couvre qu'une partie des critères du RGAA : le taux de "
        "conformité n'est pas encore mesuré.</p>"
        "<h2>Contenus non accessibles</h2>"
        "<h3>Non-conformités connues</h3><ul>"
        "<li>Les documents sources (PDF, Word) ouverts depuis les citations n'ont pas tous été vérifiés "
        "(structure, alternatives textuelles).</li>"
        "<li>L'interface de conversation principale repose sur la bibliothèque Gradio, dont certains composants "
        "(listes déroulantes) n'ont pas été audités à la main.</li></ul>"
        "<h3>Dérogations pour charge disproportionnée</h3><p>Aucune.</p>"
        "<h3>Contenus non soumis à l'obligation d'accessibilité</h3><p>Aucun.</p>"
        "<h2>Établissement de cette déclaration d'accessibilité</h2>"
        "<p>Cette déclaration a été établie le 2 décembre 2026 sur la base des tests automatiques décrits "
        "ci-dessus.</p>"
        "<h3>Technologies utilisées pour la réalisation de l'assistant</h3><ul><li>HTML5</li><li>CSS</li>"
        "<li>JavaScript (le catalogue et cette page fonctionnent sans JavaScript)</li></ul>"
        "<h3>Environnement de test</h3><ul><li>Chromium (Debian), piloté par Playwright</li>"
        "<li>axe-core (npm), règles WCAG 2.0, 2.1 et 2.2 niveaux A et AA</li><li>Navigation au clavier seul</li></ul>"
        "<h3>Pages ayant fait l'objet de la vérification</h3><ul><li><a href=\"/\">Conversation</a></li>"
        "<li><a href=\"/widget\">Widget</a></li><li><a href=\"/catalogue\">Catalogue</a></li>"
        "<li><a href=\"/accessibilite\">Déclaration d'accessibilité</a></li><li>Espace équipe</li></ul>"
        "<h2>Retour d'information et contact</h2>"
        "<p>Si vous n'arrivez pas à accéder à un contenu ou à un service, contactez le centre de ressources PQN-A "
        "pour être orienté vers une alternative accessible ou obtenir le contenu sous une autre forme.</p>"
        "<h2>Voies de recours</h2>"
        "<p>Si vous constatez un défaut d'accessibilité vous empêchant d'accéder à un contenu ou une fonctionnalité, "
        "que vous nous l'avez signalé et que vous n'avez pas obtenu de réponse satisfaisante, vous êtes en droit de "
        "faire parvenir vos doléances ou une demande de saisine au Défenseur des droits :</p><ul>"
        "<li>écrire un message au Défenseur des droits (formulaire en ligne sur defenseurdesdroits.fr) ;</li>"
        "<li>contacter le délégué du Défenseur des droits dans votre région ;</li>"
        "<li>envoyer un courrier par la poste (gratuit, ne pas mettre de timbre) : Défenseur des droits, "
        "Libre réponse 71120, 75342 Paris CEDEX 07.</li></ul>")
    return _page("Déclaration d'accessibilité — Assistant du dialogue territorial (PQN-A)", body)


def widget_filters_html(service: Service) -> str:
    """The widget's compact filters (échelle, département, type), inside a closed <details>."""
    choices = service.filter_choices()
    rows = []
    for name, label, empty in (("echelle", "Échelle", "Toutes"), ("departement", "Département", "Tous"),
                               ("doc_type", "Type", "Tous")):
        opts = [f'<option value="">{esc(empty)}</option>'] + [
            f'<option value="{esc(v)}">{esc(lab)}</option>' for lab, v in choices[name]]
        rows.append(f'<label for="w-{name}">{esc(label)}</label>'
                    f'<select id="w-{name}" name="{name}" data-filter="{name}">{"".join(opts)}</select>')
    return ('<details class="filters" id="filters"><summary>Filtres <span id="filters-on"></span></summary>'
            f'<div class="filter-grid">{"".join(rows)}</div></details>')


def register_public_pages(app: FastAPI, service: Service) -> None:
    """Add ``/catalogue``, ``/accessibilite`` and their stylesheet to the app."""

    @app.get("/catalogue")
    def catalogue(request: Request) -> HTMLResponse:
        query = {k: v[:100] for k, v in request.query_params.items() if k in FILTERS}
        return HTMLResponse(render_catalogue(service, query))

    @app.get("/accessibilite")
    def accessibilite() -> HTMLResponse:
        return HTMLResponse(render_accessibility(service))

    @app.get("/public-static/catalogue.css")
    def catalogue_css() -> FileResponse:
        return FileResponse(STATIC / "catalogue.css", media_type="text/css; charset=utf-8",
                            headers={"Cache-Control": "public, max-age=300"})
