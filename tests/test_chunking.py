from __future__ import annotations

from assistant.chunking import _questions, chunk_document, split_sentences
from assistant.embedders import FakeEmbedder
from assistant.tokens import count_tokens
from assistant.types import Document


def doc(text: str, **meta) -> Document:
    base = {"title": "Le conseil citoyen", "source": "f.md", "doc_type": "fiche_outil"}
    base.update(meta)
    return Document(text, base)


def test_sections_give_the_path_and_are_never_mixed():
    d = doc("# Le conseil citoyen\n\n## En bref\n\nUn texte court.\n\n## Étapes pour lancer\n\n### Avant\n\n1. Informer.\n2. Tirer au sort.\n")
    chunks = chunk_document(d)
    assert [c.metadata["section"] for c in chunks] == ["En bref", "Étapes pour lancer > Avant"]
    assert chunks[1].embed_text.startswith("Le conseil citoyen — Étapes pour lancer > Avant\n")
    assert "1. Informer.\n2. Tirer au sort." in chunks[1].text


def test_size_in_tokens_and_sentences_not_cut():
    sentence = "Les habitants du quartier se réunissent chaque mois avec les associations locales."
    d = doc("## Section\n\n" + " ".join([sentence] * 60))
    chunks = chunk_document(d, max_tokens=100, overlap_tokens=0)
    assert len(chunks) > 5
    for c in chunks:
        assert count_tokens(c.text) <= 100
        assert c.text.endswith(".") and c.text[0].isupper()


def test_overlap_repeats_the_last_sentence():
    s = [f"Phrase numéro {i} sur la concertation préalable." for i in range(40)]
    chunks = chunk_document(doc("## S\n\n" + " ".join(s)), max_tokens=60, overlap_tokens=20)
    last_of_first = chunks[0].text.split("\n")[-1]
    assert chunks[1].text.startswith(last_of_first)


def test_transcript_turns_stay_whole_and_long_turns_keep_the_speaker():
    long_turn = "**Marie** : " + " ".join(["Alors euh, on a commencé par des réunions de quartier, voilà."] * 40)
    text = "**Enquêtrice** : Comment avez-vous commencé ?\n\n" + long_turn + "\n\n**Enquêtrice** : Et ensuite ?\n\nSuite du tour de Marie sans étiquette.\n"
    chunks = chunk_document(doc(text, doc_type="entretien"), max_tokens=120, overlap_tokens=0)
    first = chunks[0].text
    assert first.startswith("**Enquêtrice** : Comment avez-vous commencé ?")
    assert any(c.text.startswith("Marie (suite) : ") for c in chunks)
    last = chunks[-1].text
    assert "**Enquêtrice** : Et ensuite ?\nSuite du tour de Marie sans étiquette." in last


def test_fits_check_splits_until_it_fits():
    emb = FakeEmbedder(max_tokens=40)
    d = doc("## S\n\n" + " ".join(f"mot{i}" for i in range(300)))
    chunks = chunk_document(d, max_tokens=1000, overlap_tokens=0, fits=emb.fits)
    assert len(chunks) > 5 and all(emb.fits(c.embed_text) for c in chunks)
    assert sum(len(c.text.split()) for c in chunks) == 300


def test_split_sentences_french():
    assert split_sentences("Bonjour. « Oui », dit-il ! Et après ? 3 réunions.") == ["Bonjour.", "« Oui », dit-il !", "Et après ?", "3 réunions."]


def test_chunk_ids_change_with_content():
    a = chunk_document(doc("## S\n\nTexte A."))[0].id
    b = chunk_document(doc("## S\n\nTexte B."))[0].id
    assert a != b and a == chunk_document(doc("## S\n\nTexte A."))[0].id


def test_transcript_passages_are_named_by_the_question_they_answer():
    answer_turn = "**Marie** : " + " ".join(["On a fait des réunions de hameau, voilà, le samedi matin."] * 30)
    text = ("*Entretien fictif.*\n\n**Enquêtrice** : Comment avez-vous mobilisé les habitants des hameaux ?\n\n"
            + answer_turn + "\n\n**Enquêtrice** : Et après ?\n\n**Marie** : Des comités consultatifs.\n")
    chunks = chunk_document(doc(text, doc_type="entretien"), max_tokens=120, overlap_tokens=0)
    asked = "Comment avez-vous mobilisé les habitants des hameaux ?"
    assert chunks[0].metadata["section"] is None  # the notice before the first question
    continued = [c for c in chunks if c.text.startswith("Marie (suite) : ")]
    assert continued and all(c.metadata["section"] == f"Question : « {asked} »" for c in continued)
    assert continued[0].embed_text.startswith(f"Le conseil citoyen — Question : « {asked} »\n")
    # a short follow-up question is read with the substantive question before it
    blocks = ["*Entretien fictif.*", f"**Enquêtrice** : {asked}", "**Marie** : Des réunions.",
              "**Enquêtrice** : Et après ?", "**Marie** : Des comités consultatifs."]
    assert _questions(blocks) == [None, asked, asked, f"{asked} … Et après ?", f"{asked} … Et après ?"]


def test_a_page_continuing_a_section_keeps_its_path():
    page = doc("Suite de la liste des profils : conseils en veille, conseils renouvelés.\n\n## 5. Pistes\n\nUne piste.",
               doc_type="rapport", page=5, heading_path=[(2, "4. État des lieux"), (3, "4.2 Trois profils")])
    sections = [c.metadata["section"] for c in chunk_document(page)]
    assert sections == ["4. État des lieux > 4.2 Trois profils", "5. Pistes"]


def test_no_sentence_cut_after_an_initial_or_an_abbreviation():
    text = ("Le conseil est obligatoire (article L. 5211-10-1 du CGCT). M. Durand préside. "
            "Voir art. 7 et cf. p. 12. La suite vient.")
    assert split_sentences(text) == ["Le conseil est obligatoire (article L. 5211-10-1 du CGCT).",
                                     "M. Durand préside.", "Voir art. 7 et cf. p. 12.", "La suite vient."]
