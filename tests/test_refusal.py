"""The refusal rule calibrated on each index (assistant/refusal.py) and the ``partial`` status in the
CLI, the REST API and the chat. Real ingest, real embedded Chroma; the fake embedder (named so)
replaces the model. The widget's rendering of ``partial`` is in tests/test_browser.py."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
from conftest import build_index, write_md

from assistant import refusal
from assistant.answer import answer
from assistant.ingest import ingest
from assistant.retrieve import open_index
from assistant.store.lexical import analyse
from assistant.types import Chunk, Hit

TOPICS = [
    ("conseil-citoyen", "Le conseil citoyen", "Le conseil citoyen réunit des habitants tirés au sort et des acteurs locaux du quartier prioritaire."),
    ("pcaet", "Le plan climat", "Le plan climat air énergie territorial fixe les actions de transition énergétique de l'intercommunalité."),
    ("budget", "Le budget participatif", "Le budget participatif laisse les habitants proposer puis voter des projets financés par la commune."),
    ("jardin", "Le jardin partagé", "Le jardin partagé est cultivé par une association de voisins sur un terrain prêté par la mairie."),
    ("mobilite", "La mobilité solidaire", "Le garage solidaire loue des voitures à petit prix aux demandeurs d'emploi sans véhicule."),
    ("eau", "Le prix de l'eau", "Le syndicat des eaux remplace les canalisations qui fuient et fixe le prix du mètre cube."),
    ("jeunes", "Le conseil des jeunes", "Le conseil municipal des jeunes élit douze collégiens qui gèrent un petit budget de projets."),
    ("epicerie", "L'épicerie solidaire", "L'épicerie solidaire vend des produits locaux à prix réduit aux familles orientées par le CCAS."),
    ("habitat", "L'habitat inclusif", "L'habitat inclusif regroupe des logements ordinaires avec une animatrice et un projet de vie partagée."),
    ("services", "La maison France services", "La maison France services aide les usagers dans leurs démarches administratives en ligne."),
]


def fiche(title: str, text: str) -> str:
    return f"---\ntype: fiche_outil\ntitre: {title}\n---\n# {title}\n\n## En bref\n\n{text} Cette fiche présente la démarche pas à pas.\n"


def corpus_files(n: int = len(TOPICS)) -> dict[str, str]:
    return {f"fiches-outils/{slug}.md": fiche(title, text) for slug, title, text in TOPICS[:n]}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_index(tmp_path_factory.mktemp("refusal"), corpus_files(), chroma_collection="refusal_test")


def test_thresholds_sit_between_the_two_distributions_and_shift_with_them():
    inside, outside = [0.80, 0.85, 0.90], [0.60, 0.62, 0.70]
    refuse, answer_from, low, high = refusal.thresholds(inside, outside)
    assert low < refuse < answer_from < high
    shifted = refusal.thresholds([x + 0.07 for x in inside], [x + 0.07 for x in outside])
    assert shifted == pytest.approx((refuse + 0.07, answer_from + 0.07, low + 0.07, high + 0.07))


def test_calibration_moves_with_a_corpus_whose_scores_are_shifted(built, monkeypatch):
    _, index = built
    base = refusal.calibrate(index)
    search = index.search

    def shifted(*args, **kwargs):  # the same corpus, seen by a model whose similarities sit 0.05 higher
        hits = search(*args, **kwargs)
        return [dataclasses.replace(h, dense_score=h.dense_score + 0.05 if h.dense_score is not None else None)
                for h in hits]

    monkeypatch.setattr(index, "search", shifted)
    moved = refusal.calibrate(index)
    assert moved.refuse_below == pytest.approx(base.refuse_below + 0.05, abs=2e-4)
    assert moved.answer_from == pytest.approx(base.answer_from + 0.05, abs=2e-4)
    assert moved.gap_weight == pytest.approx(base.gap_weight, abs=2e-4)  # a weight in score units: shift-free
    assert base.in_scope >= 8 and base.off_topic >= 60


def test_calibration_is_stored_at_ingest_and_reloaded(built, monkeypatch, capsys):
    settings, index = built
    stored = refusal.stored(index)
    assert stored is not None and stored.chunks == len(index.metadata) and stored.model == "fake"
    assert refusal.stored_in(settings.index_dir) == stored.as_dict()
    fresh = open_index(settings)

    def boom(_index):
        raise AssertionError("la calibration enregistrée aurait dû être relue")

    monkeypatch.setattr(refusal, "calibrate", boom)
    assert refusal.ensure_calibration(fresh) == stored
    from assistant.cli import main

    monkeypatch.setenv("ASSISTANT_EMBEDDING_MODEL", "fake")
    assert main(["calibration", "--index", str(settings.index_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["refuse_below"] == stored.refuse_below
    assert main(["calibration", "--index", str(settings.index_dir)]) == 0
    assert "Seuils de refus étalonnés" in capsys.readouterr().out


def test_calibration_is_recomputed_after_a_large_change_only(tmp_path):
    settings, index = build_index(tmp_path, corpus_files(8), chroma_collection="refusal_change")
    first = refusal.stored(index)
    assert first is not None and first.chunks == 8
    index.manifest.close()
    corpus = settings.corpus_dir
    slug, title, text = TOPICS[8]
    write_md(corpus / f"fiches-outils/{slug}.md", fiche(title, text))  # +1 passage out of 8: kept
    report = ingest(corpus, settings.index_dir, settings, progress=False)
    assert not report.calibrated and refusal.stored_in(settings.index_dir)["computed"] == first.computed
    for k in range(3):  # +3 more: more than 20 % of the passages measured on
        write_md(corpus / f"rapports/r{k}.md", fiche(f"Rapport {k}", f"Le rapport numéro {k} décrit la vie associative locale."))
    report = ingest(corpus, settings.index_dir, settings, progress=False)
    assert report.calibrated and "Seuils de refus étalonnés" in report.summary()
    assert refusal.stored_in(settings.index_dir)["chunks"] == 12


def force_band(index, refuse_below: float, answer_from: float) -> None:
    """Store a calibration whose band makes every question ``partial`` (or refused)."""
    current = refusal.ensure_calibration(index)
    forced = dataclasses.replace(current, refuse_below=refuse_below, answer_from=answer_from)
    index.manifest.set(refusal.MANIFEST_KEY, json.dumps(forced.as_dict()))
    index._calibration = forced


def test_borderline_evidence_gives_a_partial_answer_with_quoted_cited_excerpts(tmp_path):
    _, index = build_index(tmp_path, corpus_files(), chroma_collection="refusal_partial")
    force_band(index, -10.0, 10.0)
    result = answer("Comment marche le garage solidaire ?", index=index)
    assert result.status == "partial" and result.citations and not result.experiences
    assert result.answer.startswith("**Réponse incertaine**")
    assert "> " in result.answer and "[1]" in result.answer
    assert result.citations[0].source == "fiches-outils/mobilite.md"
    force_band(index, 10.0, 10.0)
    refused = answer("Comment marche le garage solidaire ?", index=index)
    assert refused.status == "no_answer" and refused.citations == []


def test_out_of_scope_is_still_no_answer_with_the_calibrated_rule(built):
    _, index = built
    for q in ("Quelle est la recette du clafoutis aux cerises ?", "Comment changer la batterie d'un iPhone ?"):
        assert answer(q, index=index).status == "no_answer", q
    assert answer("Le garage solidaire loue des voitures à qui ?", index=index).status != "no_answer"


def test_partial_in_the_cli_rest_and_chat(tmp_path):
    import os
    import subprocess
    import sys

    from fastapi.testclient import TestClient

    from assistant.web.server import create_app
    from assistant.web.ui import chat_text

    settings, index = build_index(tmp_path, corpus_files(), chroma_collection="refusal_fronts",
                                  rate_limit_per_minute=1000)
    force_band(index, -10.0, 10.0)
    question = "Comment marche le garage solidaire ?"
    env = dict(os.environ, ASSISTANT_EMBEDDING_MODEL="fake", ASSISTANT_CHROMA_COLLECTION="refusal_fronts")
    exe = str(Path(sys.executable).parent / "assistant")
    r = subprocess.run([exe, "ask", "--index", str(settings.index_dir), "--json", question], capture_output=True,
                       text=True, env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["status"] == "partial" and data["citations"] and "Réponse incertaine" in data["answer"]
    r = subprocess.run([exe, "ask", "--index", str(settings.index_dir), question], capture_output=True,
                       text=True, env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0 and "Réponse incertaine" in r.stdout and "garage solidaire" in r.stdout
    app = create_app(settings, index=index, with_ui=False)
    with TestClient(app) as client:
        body = client.post("/api/ask", json={"question": question}).json()
    assert body["status"] == "partial" and body["citations"][0]["source"] == "fiches-outils/mobilite.md"
    shown = chat_text(answer(question, index=index))
    assert "Réponse incertaine" in shown and "garage solidaire" in shown


# --- answerability: in-domain questions whose asked-for content the passages lack (refusal.gap) ---

def hit_of(text: str, n: int = 0) -> Hit:
    return Hit(Chunk(f"c{n}", text, f"Fiche — En bref\n{text}", {}), 1.0, 1, 1, 0.9)


def known_idf(corpus: list[str]):
    """An idf over hand-made passages: rarer terms weigh more, unknown terms 0."""
    docs = [set(analyse(t)) for t in corpus]
    vocab = set().union(*docs)

    def idf(term: str) -> float:
        df = sum(term in d for d in docs)
        return math.log(1 + len(docs) / df) if term in vocab else 0.0

    return idf, math.log(1 + len(docs))


JEUNES = "Le conseil municipal des jeunes de Niort élit douze collégiens qui gèrent un petit budget."
SANS_CHIFFRE = "Le conseil municipal des jeunes de Niort élit des collégiens qui gèrent un petit budget."
AUTRE = "La maison France services de Melle aide les usagers dans leurs démarches en ligne."


def test_gap_asked_figure_held_or_lacking():
    idf, top = known_idf([JEUNES, AUTRE])
    question = "Combien de collégiens élit le conseil des jeunes de Niort ?"
    held = refusal.gap(question, [hit_of(JEUNES)], idf, top)
    assert held["asked"] == "nombre" and not held["unfilled"] and held["gap"] == 0.0
    lacking = refusal.gap(question, [hit_of(SANS_CHIFFRE)], idf, top)
    assert lacking["unfilled"] and lacking["gap"] == refusal.UNFILLED_GAP
    # the same passages, an open question: nothing specific is asked, nothing lacks
    assert refusal.gap("Comment fonctionne le conseil des jeunes ?", [hit_of(SANS_CHIFFRE)], idf, top)["gap"] == 0.0


def test_gap_missing_anchor_weighs_by_rarity_and_unknown_names_weigh_most():
    # « Melle » is in two passages of three: less rare than a name found once, or never
    idf, top = known_idf([JEUNES, AUTRE, "Le marché de Melle accueille les producteurs locaux."])
    hits = [hit_of(JEUNES)]
    assert refusal.gap("Le conseil des jeunes de Niort gère quel budget ?", hits, idf, top)["missing"] == []
    elsewhere = refusal.gap("Le conseil des jeunes de Melle gère quel budget ?", hits, idf, top)
    unknown = refusal.gap("Le conseil des jeunes de Tulle gère quel budget ?", hits, idf, top)
    assert elsewhere["missing"] == ["Melle"] and unknown["missing"] == ["Tulle"]
    assert 0.0 < elsewhere["gap"] < unknown["gap"] == 1.0
    # a year the passages do not give is an anchor too; a capital at the start of a sentence is not
    assert refusal.gap("Le conseil des jeunes a été créé en 2019 ?", hits, idf, top)["missing"] == ["2019"]
    assert refusal.anchors("Conseil des jeunes. Combien à Niort ?") == ["Niort"]


def test_gap_glossary_expansion_counts_for_its_acronym():
    idf, top = known_idf([JEUNES, AUTRE])
    hits = [hit_of(AUTRE)]
    question = "La MFS de Melle aide les usagers ?"
    assert refusal.gap(question, hits, idf, top)["missing"] == ["MFS"]
    assert refusal.gap(question, hits, idf, top, glossary={"MFS": "maison France services"})["missing"] == []


def test_asked_types_come_from_the_data_file():
    from importlib import resources

    import yaml

    data = yaml.safe_load(resources.files("assistant").joinpath("data/types_reponse.yaml").read_text("utf-8"))
    for entry in data["types"]:
        phrase = entry["questions"][0].rstrip("… ")
        kind = refusal.asked_type(f"{phrase} pour le conseil des jeunes ?".capitalize())
        assert kind is not None, entry["type"]
    assert refusal.asked_type("Quand l'aide est-elle versée ?").name == "date"
    assert refusal.asked_type("Quelle est la superficie minimale du jardin ?").name == "nombre"
    assert refusal.asked_type("Quel est le numéro de téléphone de l'accueil ?").name == "telephone"
    # a relative « qui » does not ask for a name
    assert refusal.asked_type("L'expérience qui embauche des chômeurs, comment marche-t-elle ?") is None


def test_gap_time_markers_and_phone_numbers_answer_their_questions():
    passage = "L'aide est versée en deux fois : 70 % à la signature, le solde six mois après la fin du projet."
    idf, top = known_idf([passage, AUTRE])
    assert refusal.gap("Quand l'aide est-elle versée ?", [hit_of(passage)], idf, top)["gap"] == 0.0
    phone = "L'accueil de la maison France services répond au 05 49 12 34 56 du lundi au vendredi."
    question = "Quel est le numéro de téléphone de l'accueil ?"
    assert refusal.gap(question, [hit_of(phone)], idf, top)["gap"] == 0.0
    assert refusal.gap(question, [hit_of(AUTRE)], idf, top)["unfilled"]


def test_perturbed_questions_swap_in_a_name_their_passage_never_uses():
    sources = [(JEUNES.split(" qui")[0], JEUNES), (AUTRE.split(" aide")[0], AUTRE)]
    idf, _ = known_idf([JEUNES, AUTRE])
    perturbed = refusal.perturbed_questions(sources, idf)
    assert len(perturbed) == 2
    for (question, own), changed in zip(sources, perturbed, strict=True):
        before, after = question.split(), changed.split()
        swapped = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
        assert len(swapped) == 1, changed  # one word replaced: its rarest anchor
        old, new = swapped[0]
        assert old in refusal.anchors(question) and new in {"Niort", "Melle", "France"} - {old}
        assert not set(analyse(new)) & set(analyse(own))  # a name the passage never uses


def test_gap_in_answer_on_a_real_index(built):
    """Real ingest and retrieval: the same question, once about a place the corpus names in its
    passage, once about a place it never names; the second loses gap_weight x gap in the decision."""
    _, index = built
    calibration = refusal.ensure_calibration(index)
    assert 0.0 < calibration.gap_weight <= refusal.MAX_GAP_SPREAD * (calibration.in_scope_median
                                                                     - calibration.off_topic_q) + 1e-4
    assert calibration.perturbed >= 8 and calibration.perturbed_refused >= calibration.in_scope_refused

    def signals(q: str) -> dict:
        hits = index.search(q, k=6)
        return refusal.support(index.lexical.correct(q), hits, index.idf, index.max_idf, index.glossary)

    held = signals("Combien de collégiens élit le conseil municipal des jeunes ?")
    lacking = signals("Combien de collégiens élit le conseil municipal des jeunes de Tulle ?")
    assert held["gap"] == 0.0 and lacking["missing"] == ["Tulle"] and lacking["gap"] == 1.0
    assert refusal.adjusted(lacking, calibration) == pytest.approx(lacking["score"] - calibration.gap_weight)


def test_a_stored_calibration_of_the_previous_version_is_recomputed(tmp_path):
    settings, index = build_index(tmp_path, corpus_files(6), chroma_collection="refusal_version")
    current = refusal.stored(index)
    assert current is not None and current.version == refusal.VERSION
    old = {k: v for k, v in current.as_dict().items()
           if k not in ("gap_weight", "perturbed", "perturbed_refused", "in_scope_refused")}
    index.manifest.set(refusal.MANIFEST_KEY, json.dumps(dict(old, version=1)))
    assert refusal.stored(index) is None
    again = refusal.ensure_calibration(open_index(settings))
    assert again.version == refusal.VERSION and again.gap_weight == current.gap_weight
    assert refusal.stored_in(settings.index_dir)["gap_weight"] == current.gap_weight


def test_transfer_gate_fails_on_a_refusal_regression_and_skips_what_the_corpus_cannot_measure(tmp_path, capsys):
    import importlib.util

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("gate_transfert", root / "scripts/gate_transfert.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    baseline = root / "evals/baseline/transfert/report.json"
    data = json.loads(baseline.read_text(encoding="utf-8"))
    assert data["overall"]["suggestion_relevance"] is None  # no experience fiches in that corpus
    same = tmp_path / "same.json"
    same.write_text(json.dumps(data), encoding="utf-8")
    assert module.main([str(same), str(baseline)]) == 0
    assert "non mesurés ici : expériences suggérées pertinentes" in capsys.readouterr().out
    worse = json.loads(baseline.read_text(encoding="utf-8"))
    worse["overall"]["false_refusals"] += 2 / worse["overall"]["answerable"]  # two more questions refused
    bad = tmp_path / "worse.json"
    bad.write_text(json.dumps(worse), encoding="utf-8")
    assert module.main([str(bad), str(baseline)]) == 1
    assert "ÉCHEC" in capsys.readouterr().out


def test_gap_weight_follows_the_spread_of_a_corpus_whose_scores_are_stretched(built, monkeypatch):
    _, index = built
    base = refusal.calibrate(index)
    search = index.search

    def stretched(*args, **kwargs):  # similarities twice as spread out around 0.5
        return [dataclasses.replace(h, dense_score=0.5 + 2 * (h.dense_score - 0.5) if h.dense_score is not None else None)
                for h in search(*args, **kwargs)]

    monkeypatch.setattr(index, "search", stretched)
    moved = refusal.calibrate(index)
    spread = base.in_scope_median - base.off_topic_q
    assert moved.in_scope_median - moved.off_topic_q > 1.5 * spread
    assert base.gap_weight > 0 and moved.gap_weight > 1.5 * base.gap_weight
