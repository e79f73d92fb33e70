"""The public side through HTTP (FastAPI TestClient): the streamed answer (same contract as
``/api/ask``), follow-up questions from the cited documents' headings, the catalogue (filters,
links, tile grid), the accessibility statement, the staff analytics (plots, CSV) and the retention
rule. Tiny corpus, real embedded Chroma; the fake embedder (named so) replaces the model."""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from test_web import build_web_index

from assistant.answer import answer
from assistant.web.analytics import compute, to_csv
from assistant.web.server import create_app
from assistant.web.stream import follow_ups, pieces

STAFF = {"Authorization": "Basic " + base64.b64encode(b"equipe:secret-equipe").decode()}


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    settings, index = build_web_index(tmp_path_factory.mktemp("public"), chroma_collection="public_test")
    app = create_app(settings, index=index, with_ui=False)
    with TestClient(app) as client:
        yield settings, index, app, client


def events(text: str) -> list[tuple[str, dict]]:
    out = []
    for block in text.split("\n\n"):
        name, data = None, ""
        for line in block.splitlines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
        if name:
            out.append((name, json.loads(data)))
    return out


def test_stream_gives_tokens_then_the_json_contract(web):
    _, index, _, client = web
    r = client.post("/api/ask/stream", json={"question": "Comment lancer un conseil citoyen ?", "channel": "widget"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    got = events(r.text)
    names = [n for n, _ in got]
    assert names[-1] == "answer" and names.count("token") >= 2 and set(names) == {"token", "answer"}
    final = got[-1][1]
    expected = dataclasses.asdict(answer("Comment lancer un conseil citoyen ?", index=index))
    assert final["answer"] == expected["answer"] and final["citations"] == expected["citations"]
    assert "".join(d["text"] for n, d in got if n == "token") == final["answer"]
    assert final["answer_id"] and isinstance(final["follow_ups"], list)


def test_stream_refuses_bad_requests_before_streaming(web):
    _, _, _, client = web
    r = client.post("/api/ask/stream", json={"question": "conseil", "filters": {"couleur": "bleu"}})
    assert r.status_code == 400 and "Filtre inconnu" in r.json()["detail"]
    r = client.post("/api/ask/stream", json={"question": "conseil", "channel": "autre"})
    assert r.status_code == 400 and "Canal inconnu" in r.json()["detail"]
    r = client.post("/api/ask/stream", json={"question": "conseil"}, headers={"Origin": "https://ailleurs.example"})
    assert r.status_code == 403


def test_stream_applies_filters_and_records_the_channel(web):
    _, _, app, client = web
    r = client.post("/api/ask/stream", json={"question": "Que fait le conseil citoyen du quartier ?", "channel": "widget",
                                             "filters": {"departement": "Landes", "doc_type": "fiche_experience"}})
    final = events(r.text)[-1][1]
    assert final["citations"] and all(c["source"] == "fiches-experiences/cc-acacias.md" for c in final["citations"])
    rows = app.state.service.store.answer_rows()
    assert rows[-1]["channel"] == "widget"


def test_follow_ups_come_from_real_headings_of_cited_documents(web):
    _, index, _, _ = web
    result = answer("Comment lancer un conseil citoyen ?", index=index)
    suggestions = follow_ups(index, result)
    headings = {str(m.get("section") or "").split(" > ")[-1].lower() for m in index.metadata.values()}
    titles = {str(m.get("title")) for m in index.metadata.values()}
    assert 1 <= len(suggestions) <= 3
    for s in suggestions:
        if s.startswith("Comment s'est passée l'expérience"):
            assert any(f"« {t} »" in s for t in titles)
        else:
            title, _, heading = s.rstrip(" ?").partition(" : ")
            assert title in titles and heading.lower() in headings
    assert follow_ups(index, answer("Quelle est la recette de la pâte à crêpes ?", index=index)) == []


def test_pieces_rebuild_the_text():
    text = "Un texte\navec [1] des retours à la ligne et  deux espaces."
    assert "".join(pieces(text)) == text


def test_catalogue_lists_filters_and_links_documents(web):
    _, _, _, client = web
    r = client.get("/catalogue")
    assert r.status_code == 200 and '<html lang="fr">' in r.text and "<script" not in r.text
    assert "Le conseil citoyen" in r.text and "Un conseil citoyen co-animé par le centre social" in r.text
    assert 'href="/sources/fiches-outils/conseil-citoyen.md"' in r.text and "exemple fictif" in r.text
    assert r.text.count('<li class="tile') == 12 and "Pyrénées-Atlantiques" in r.text
    landes = client.get("/catalogue", params={"type": "fiche_experience", "departement": "Landes"})
    assert "cc-acacias.md" in landes.text and "cc-tilleuls.md" not in landes.text
    assert "1 fiche sur" in landes.text and 'aria-current="true"' in landes.text
    theme = client.get("/catalogue", params={"theme": "communication"})
    assert "affichage.md" in theme.text and "conseil-citoyen.md" not in theme.text
    echelle = client.get("/catalogue", params={"echelle": "region"})
    assert "Aucune fiche ne correspond" in echelle.text
    assert client.get("/sources/fiches-outils/conseil-citoyen.md").status_code == 200


def test_accessibility_statement_in_rgaa_form(web):
    _, _, _, client = web
    text = client.get("/accessibilite").text
    for part in ("Déclaration d'accessibilité", "État de conformité", "Résultats des tests", "Contenus non accessibles",
                 "Établissement de cette déclaration", "Retour d'information et contact", "Voies de recours"):
        assert part in text


def test_widget_has_compact_filters(web):
    _, _, _, client = web
    text = client.get("/widget").text
    assert 'data-filter="echelle"' in text and 'data-filter="departement"' in text and 'data-filter="doc_type"' in text
    assert '<option value="Landes">Landes</option>' in text and "{{" not in text


def test_analytics_needs_the_staff_password_and_draws_plots(web):
    _, _, _, client = web
    assert client.get("/staff/analytics").status_code == 401
    for q in ("Comment lancer un conseil citoyen ?", "Quelle est la recette de la pâte à crêpes ?"):
        client.post("/api/ask", json={"question": q, "channel": "api"})
    r = client.get("/staff/analytics", headers=STAFF)
    assert r.status_code == 200 and r.text.count("<svg") == 4 and "<rect" in r.text
    assert "Questions par jour et par canal" in r.text and "sans réponse" in r.text
    csv_text = client.get("/staff/analytics.csv", headers=STAFF).text
    header, *rows = csv_text.strip().splitlines()
    assert header == "jour,api,widget,ui,total,sans_reponse,avis_positifs,avis_negatifs" and rows


def test_compute_counts_channels_refusals_thumbs_and_themes(web):
    _, index, _, _ = web
    cites = json.dumps([{"source": "fiches-outils/conseil-citoyen.md"}])
    rows = [{"ts": "2026-11-30T10:00:00+00:00", "channel": "widget", "status": "answered", "citations": cites,
             "rating": "up"},
            {"ts": "2026-11-30T11:00:00+00:00", "channel": "ui", "status": "no_answer", "citations": "[]",
             "rating": "down"},
            {"ts": "2026-12-01T09:00:00+00:00", "channel": "api", "status": "answered", "citations": cites,
             "rating": None}]
    f = compute(rows, index)
    assert f["total"] == 3 and f["refusals"] == 1 and f["up"] == 1 and f["down"] == 1
    assert f["days"]["2026-11-30"]["widget"] == 1 and f["days"]["2026-11-30"]["no_answer"] == 1
    assert dict(f["themes"])["conseil citoyen"] == 2
    assert to_csv(f).splitlines()[1] == "2026-11-30,0,1,1,2,1,1,1"


def test_retention_deletes_old_questions_and_their_feedback(tmp_path):
    from assistant.types import Answer
    from assistant.web.feedback import FeedbackStore

    store = FeedbackStore(tmp_path / "f.sqlite")
    old = store.record_answer(Answer("q1", "q1", "answered", "a"), "api", {}, {})
    new = store.record_answer(Answer("q2", "q2", "no_answer", "b"), "widget", {}, {})
    store.add_feedback(old, rating="up")
    store.add_feedback(new, rating="down")
    later = datetime.now(UTC) + timedelta(days=31)
    store._db.execute("UPDATE answers SET ts=? WHERE id=?", ((datetime.now(UTC) - timedelta(days=40)).isoformat(), old))
    assert store.purge_older_than(0) == 0  # 0 = kept
    assert store.purge_older_than(30) == 1
    assert [r["answer_id"] for r in store.feedback_rows()] == [new]
    assert store.counts() == {"answers": 1, "up": 0, "down": 1}
    assert store.purge_older_than(30, now=later) == 1 and store.counts()["answers"] == 0


def test_retention_runs_when_the_app_starts(tmp_path):
    from assistant.types import Answer
    from assistant.web.feedback import FeedbackStore

    settings, index = build_web_index(tmp_path, chroma_collection="retention_test", retention_days=7)
    store = FeedbackStore(settings.feedback_path)
    old = store.record_answer(Answer("q", "q", "answered", "a"), "api", {}, {})
    store._db.execute("UPDATE answers SET ts=? WHERE id=?", ((datetime.now(UTC) - timedelta(days=8)).isoformat(), old))
    store.close()
    app = create_app(settings, index=index, with_ui=False)
    assert app.state.service.store.counts()["answers"] == 0
