"""assistant.store.lexical: the French analyser and the typo corrector. The corrector fixes real typos
against the corpus's words and leaves alone what a French dictionary (pyspellchecker's, shipped as a
package) or the corpus knows, acronyms and names."""

from __future__ import annotations

import pytest

from assistant.store.lexical import Bm25Index, analyse, compound_words, french_words, surface_words

CORPUS = [
    "Comment faire participer les habitants au plan climat ?",
    "La co-construction avec les habitants demande du temps ; la co-construction se prépare.",
    "Les étapes : monter le groupe, fixer les règles, rendre compte.",
    "Une démarche écoconstruction et un conseil citoyen en QPV, loin du centre.",
]


@pytest.fixture(scope="module")
def lexical() -> Bm25Index:
    index = Bm25Index.build([str(i) for i in range(len(CORPUS))], [analyse(t) for t in CORPUS])
    for text in CORPUS:
        for w in surface_words(text):
            index.words[w] = index.words.get(w, 0) + 1
        for c in compound_words(text):
            index.compounds[c.replace("-", "")] = c
    return index


def test_the_dictionary_is_french_and_accent_free():
    words = french_words()
    assert len(words) > 100_000
    assert {"legalement", "melent", "monter", "coin", "tarte"} <= words
    assert "habitans" not in words and "coment" not in words


@pytest.mark.parametrize(("typed", "fixed"), [
    ("coment faire participer les habitans ?", "comment faire participer les habitants ?"),
    ("la coconstruction, par où commencer ?", "la co-construction, par où commencer ?"),
    ("Coment fixer les regles ?", "comment fixer les regles ?"),
])
def test_typos_are_fixed_against_the_corpus(lexical, typed, fixed):
    assert lexical.correct(typed) == fixed


@pytest.mark.parametrize("question", [
    "c'est légalement obligatoire ?",            # was « egalement »
    "des idées pour que les habitants s'en mêlent ?",  # was « melant »
    "on voudrait monter un conseil dans notre coin",   # was « monte », « loin »
    "une recette de tarte aux pommes",           # out of scope: stays so
    "la concertation à Bègles, c'est cher ?",     # a name, and « cher » (was « chez »)
    "un conseil citoyen en QPVV",                # an acronym typed in capitals
])
def test_french_words_names_and_acronyms_are_left_alone(lexical, question):
    assert lexical.correct(question) == question


def test_the_corrected_compound_meets_the_corpus_terms(lexical):
    corrected = lexical.correct("coconstruction avec les habitants")
    top = lexical.search(analyse(corrected), k=1)
    assert top and top[0][0] == "1"


def test_a_boost_below_one_lets_the_questions_own_terms_lead():
    # « marche exploratoire dans notre QPV » + the glossary's « quartier prioritaire… »: the passage
    # about the marche must not lose to the one that only matches the expansion's many terms
    docs = ["La marche exploratoire se fait à pied avec les habitants.",
            "Un quartier prioritaire de la politique de la ville est défini par l'État (QPV)."]
    index = Bm25Index.build(["marche", "qpv"], [analyse(t) for t in docs])
    query = analyse("marche exploratoire QPV quartier prioritaire politique ville")
    expansion = set(analyse("quartier prioritaire politique ville"))
    assert index.search(query, 2)[0][0] == "qpv"
    ranked = index.search(query, 2, boost={t: 0.3 for t in expansion})
    assert [i for i, _ in ranked] == ["marche", "qpv"]
    assert ranked[1][1] < index.search(query, 2)[0][1]  # the boost lowers the score, never drops the passage
