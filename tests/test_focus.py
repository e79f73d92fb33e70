"""assistant.focus: the section a question asks about and the continuation of a passage are added
before composing, and the composer quotes them. Real embedded Chroma; the fake embedder (named so)
replaces the model, so retrieval here is mostly BM25."""

from __future__ import annotations

import pytest
from conftest import build_index

from assistant.compose import compose
from assistant.focus import add_focus, intents

FICHE = """---
type: fiche_outil
titre: La marche exploratoire
themes: [espace public]
---
# La marche exploratoire

## En bref

La marche exploratoire fait parcourir un quartier par un groupe d'habitantes qui observent l'espace public.

## Budget et moyens

Prévoir du temps d'agent pour la préparation et une petite somme pour la restitution.

## Étapes pour lancer

1. Constituer un groupe d'habitantes volontaires et choisir l'itinéraire.
2. Préparer une grille d'observation et faire la marche de jour et de nuit.
3. Restituer les constats aux services et aux élus.
"""
EXPERIENCE = """---
type: fiche_experience
titre: Une marche exploratoire dans le quartier des Tilleuls
statut: exemple fictif
---
# Une marche exploratoire dans le quartier des Tilleuls

*Exemple fictif à visée illustrative.*

## Territoire et contexte

Le quartier des Tilleuls (fictif) compte 4 000 habitants et une marche exploratoire y a été menée.

## Ce qui a été fait

Douze habitantes ont parcouru trois itinéraires et relevé 41 points noirs.

## Contact

Centre social des Tilleuls (fictif).
"""
TURN = "**Élue** : " + " ".join(["Alors on a commencé par des réunions de hameau, le samedi matin, avec un café."] * 12)
INTERVIEW = f"""---
type: entretien
titre: Entretien avec une élue rurale
statut: exemple fictif
---
# Entretien avec une élue rurale

**Enquêtrice** : Comment avez-vous fait participer les habitants des hameaux ?

{TURN} Ensuite nous avons créé des comités consultatifs ouverts à tous.

**Enquêtrice** : Et le conseil municipal ?

**Élue** : Les comités proposent, le conseil municipal décide.
"""

ANIMATEUR = """---
type: entretien
titre: Entretien avec un animateur de conseil citoyen
statut: exemple fictif
---
# Entretien avec un animateur de conseil citoyen

**Enquêteur** : Comment le conseil a-t-il tenu dans la durée, alors que beaucoup s'essoufflent ?

**Animateur** : Nous avons tenu un tableau de suivi des propositions, affiché à chaque séance. Chaque
proposition y avait une ligne : à qui elle avait été remise, ce que la mairie en avait dit, et quand.
Les membres voyaient ce qui avançait. Un refus y était écrit avec sa raison, jamais laissé sans réponse.

**Enquêteur** : Et ensuite ?

**Animateur** : Ensuite nous avons ajouté une réunion publique annuelle où le maire répondait point par
point au tableau, devant les habitants du quartier. Cette réunion a fait venir de nouveaux membres,
surtout des parents, qui ne connaissaient pas le conseil avant de l'y voir à l'oeuvre.

**Enquêteur** : Pourquoi avez-vous choisi une salle municipale plutôt qu'un local associatif du quartier ?

**Animateur** : Parce que la salle municipale était neutre : aucune association ne pouvait dire que le
conseil était le sien, et les horaires d'ouverture le soir convenaient aux personnes qui travaillent.
"""


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    _, index = build_index(tmp_path_factory.mktemp("focus"), {
        "fiches-outils/marche-exploratoire.md": FICHE,
        "fiches-experiences/marche-tilleuls.md": EXPERIENCE,
        "entretiens/elue-rurale.md": INTERVIEW,
        "entretiens/animateur.md": ANIMATEUR,
    }, chroma_collection="focus_test", chunk_tokens=120, chunk_overlap_tokens=0)
    return index


@pytest.mark.parametrize(("question", "expected"), [
    ("Comment on prépare une marche exploratoire ?", ["étapes"]),
    ("et ça coûte cher ?", ["moyens"]),
    ("c'est obligatoire ?", ["cadre légal"]),
    ("les erreurs à éviter ?", ["pièges"]),
    ("une marche exploratoire, ça a déjà été fait ailleurs ?", ["exemple"]),
    ("c'est quoi une marche exploratoire ?", ["définition"]),
    ("convention citoyenne ?", ["définition"]),  # a bare subject asks what it is
    ("PTCE ça veut dire quoi ?", ["définition"]),
    ("qu'est-ce que l'enquête régionale conseille ?", []),
    ("qui finance ?", ["moyens", "participants"]),
    ("et pour une intercommunalité ?", []),
    ("le garant, c'est la CNDP qui le choisit ?", ["participants"]),
    ("et on invite qui pour la restitution ?", ["participants"]),
    ("toucher les gens qui ne viennent jamais chez nous", []),  # « qui » relative, not asked
    ("en Gironde, un projet pour les chômeurs de longue durée", []),
    ("zéro chômeur qui paye les salaires ?", ["moyens"]),
    ("comment une comcom a associé les entreprises ?", ["étapes", "exemple"]),  # what others did
    ("comment lancer un conseil citoyen ?", ["étapes"]),
    ("coconstruction : les erreurs a eviter ?", ["pièges"]),  # typed without accents
    ("ca a deja ete fait ailleurs ?", ["exemple"]),
])
def test_intents_name_the_template_section(question, expected):
    assert [name for name, _, _ in intents(question)] == expected


def test_the_section_asked_for_is_added_after_its_file_and_quoted(index):
    question = "Comment on prépare une marche exploratoire ?"
    hits = [h for h in index.search(question, k=6) if h.chunk.metadata.get("section") != "Étapes pour lancer"][:1]
    assert hits and hits[0].chunk.metadata["source"] == "fiches-outils/marche-exploratoire.md"
    expanded, focus = add_focus(question, hits, index)
    added = [h for h in expanded if h.chunk.id in focus]
    assert [h.chunk.metadata["section"] for h in added] == ["Étapes pour lancer"]
    assert expanded[0] is hits[0] and expanded[1].chunk.id in focus  # right after its file's passage
    text, used = compose(question, expanded, index.idf, focus)
    assert added[0].chunk.id in {h.chunk.id for h in used}
    assert "grille d'observation" in text or "Constituer un groupe" in text


def test_examples_bring_what_was_done(index):
    question = "une marche exploratoire dans un quartier, ça a déjà été fait ailleurs ?"
    hits = [h for h in index.search(question, k=6) if h.chunk.metadata.get("section") != "Ce qui a été fait"][:3]
    expanded, focus = add_focus(question, hits, index)
    sections = {h.chunk.metadata["section"] for h in expanded if h.chunk.id in focus}
    assert sections == {"Ce qui a été fait"}


def test_a_question_without_intent_adds_nothing_from_fiches(index):
    question = "la marche exploratoire des habitantes dans l'espace public"
    assert not intents(question)
    hits = index.search(question, k=2)
    hits = [h for h in hits if h.chunk.metadata["doc_type"] != "entretien"]
    expanded, focus = add_focus(question, hits, index)
    assert focus == frozenset() and expanded == hits


def test_a_definition_brings_the_summary_of_the_fiche(index):
    question = "c'est quoi une marche exploratoire ?"
    hits = [h for h in index.search(question, k=6)
            if h.chunk.metadata["source"] == "fiches-outils/marche-exploratoire.md"
            and h.chunk.metadata.get("section") != "En bref"][:1]
    assert hits
    expanded, focus = add_focus(question, hits, index)
    assert [h.chunk.metadata["section"] for h in expanded if h.chunk.id in focus] == ["En bref"]


def test_an_interview_answer_continues_into_the_next_passage(index):
    ids = index.file_chunks("entretiens/elue-rurale.md")
    assert len(ids) >= 3
    chunks = index.manifest.get_chunks(ids)
    first = next(i for i in ids if "réunions de hameau" in chunks[i].text)
    nxt = ids[ids.index(first) + 1]
    assert chunks[first].metadata["section"] == chunks[nxt].metadata["section"]
    hit = next(h for h in index.search("réunions de hameau le samedi matin", k=10) if h.chunk.id == first)
    expanded, focus = add_focus("réunions de hameau le samedi matin", [hit], index)
    assert [h.chunk.id for h in expanded] == [first, nxt] and focus == {nxt}


def _thread_passages(index):
    ids = index.file_chunks("entretiens/animateur.md")
    chunks = index.manifest.get_chunks(ids)
    first = next(i for i in ids if "tableau de suivi" in chunks[i].text)
    follow = next(i for i in ids if "réunion publique annuelle" in chunks[i].text)
    other = next(i for i in ids if "salle municipale était neutre" in chunks[i].text)
    assert ids.index(follow) == ids.index(first) + 1 and ids.index(other) == ids.index(follow) + 1
    return chunks, first, follow, other


def test_a_short_follow_up_question_continues_the_same_thread(index):
    # « Et ensuite ? » is read with the question before it, so the passage that answers it is named
    # « Question : « Comment le conseil a-t-il tenu … ? … Et ensuite ? » »: another label, same thread
    chunks, first, follow, _ = _thread_passages(index)
    assert chunks[follow].metadata["section"] != chunks[first].metadata["section"]
    assert chunks[follow].metadata["section"].endswith("… Et ensuite ? »")
    hit = next(h for h in index.search("tableau de suivi des propositions", k=10) if h.chunk.id == first)
    expanded, focus = add_focus("tableau de suivi des propositions", [hit], index)
    assert [h.chunk.id for h in expanded] == [first, follow] and focus == {follow}


def test_a_new_question_of_the_interviewer_ends_the_thread(index):
    chunks, _, follow, other = _thread_passages(index)
    assert chunks[other].metadata["section"].startswith("Question : « Pourquoi avez-vous choisi")
    hit = next(h for h in index.search("réunion publique annuelle", k=10) if h.chunk.id == follow)
    expanded, focus = add_focus("réunion publique annuelle", [hit], index)
    assert [h.chunk.id for h in expanded] == [follow] and focus == frozenset()


def test_a_section_already_retrieved_is_in_focus_without_moving(index):
    question = "Comment on prépare une marche exploratoire ?"
    hits = index.search(question, k=6)
    steps = [h for h in hits if h.chunk.metadata.get("section") == "Étapes pour lancer"]
    assert steps
    expanded, focus = add_focus(question, hits, index)
    assert {h.chunk.id for h in steps} <= focus
    assert [h.chunk.id for h in expanded][: len(hits)] == [h.chunk.id for h in hits]


def test_an_answer_from_an_experience_brings_what_was_done(index):
    question = "les 41 points noirs relevés par les habitantes des Tilleuls"
    hits = [h for h in index.search(question, k=6) if h.chunk.metadata.get("section") != "Ce qui a été fait"]
    hits = [h for h in hits if h.chunk.metadata["doc_type"] == "fiche_experience"][:1]
    assert hits and not intents(question)
    expanded, focus = add_focus(question, hits, index)
    assert {h.chunk.metadata["section"] for h in expanded if h.chunk.id in focus} == {"Ce qui a été fait"}
