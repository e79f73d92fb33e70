from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_docx, make_pdf, write_md

from assistant.errors import LoadError
from assistant.loaders import load_file


def test_markdown_front_matter_fields(tmp_path: Path):
    f = write_md(tmp_path / "fiches-experiences/x.md", """---
type: fiche_experience
titre: Un conseil citoyen co-animé
territoire: Quartier X, Commune Y
departement: Gironde
echelle: quartier
themes: [conseil citoyen, participation]
date: 2024-05
statut: exemple fictif
---
# Un conseil citoyen co-animé

Texte de la fiche.
""")
    doc = load_file(f, tmp_path).documents[0]
    m = doc.metadata
    assert m["doc_type"] == "fiche_experience" and m["title"] == "Un conseil citoyen co-animé"
    assert m["echelle"] == ["quartier"] and m["themes"] == ["conseil citoyen", "participation"]
    assert m["departement"] == "Gironde" and m["date"] == "2024-05"
    assert m["illustrative"] is True and m["source"] == "fiches-experiences/x.md"
    assert doc.text.startswith("# Un conseil citoyen")


def test_invalid_yaml_warns_and_keeps_body(tmp_path: Path):
    f = write_md(tmp_path / "fiches-outils/bad.md", "---\ntitre: [non fermé\ntype: : :\n---\n# Titre du texte\n\nCorps gardé.\n")
    result = load_file(f, tmp_path)
    assert "Corps gardé." in result.documents[0].text
    assert result.warnings and "bad.md" in result.warnings[0] and "YAML" in result.warnings[0]
    assert result.documents[0].metadata["doc_type"] == "fiche_outil"  # from the folder
    assert result.documents[0].metadata["title"] == "Titre du texte"  # from the first heading


def test_no_front_matter_type_from_folder_title_from_name(tmp_path: Path):
    f = write_md(tmp_path / "rapports/mon-rapport_annuel.txt", "Du texte sans titre.\n")
    m = load_file(f, tmp_path).documents[0].metadata
    assert m["doc_type"] == "rapport" and m["title"] == "Mon rapport annuel"
    assert m["illustrative"] is False


def test_transcript_speakers_in_metadata(tmp_path: Path):
    f = write_md(tmp_path / "entretiens/e.md", "# Entretien\n\n**Enquêtrice** : Bonjour.\n\n**Marie Dupont** : Euh, bonjour.\n\nPaul : Moi aussi.\n\nQ : Et ensuite ?\n\nR : Voilà.\n")
    m = load_file(f, tmp_path).documents[0].metadata
    assert m["speakers"] == ["Enquêtrice", "Marie Dupont", "Paul", "Q", "R"]


def test_cp1252_text_is_detected(tmp_path: Path):
    f = tmp_path / "fiches-outils/ancien.txt"
    f.parent.mkdir(parents=True)
    f.write_bytes("Élus, délégués et habitants : la co-construction à l'échelle du quartier.".encode("cp1252"))
    result = load_file(f, tmp_path)
    assert "Élus, délégués" in result.documents[0].text
    assert result.warnings and "ancien.txt" in result.warnings[0] and "UTF-8" in result.warnings[0]


def test_pdf_pages_title_and_keywords(tmp_path: Path):
    f = make_pdf(tmp_path / "rapports/r.pdf", ["1. Méthode\nPremière page sur la concertation.", "2. Résultats\nDeuxième page : écoute."],
                 title="Rapport régional", keywords="type=rapport; echelle=region; themes=a, b; statut=exemple fictif")
    docs = load_file(f, tmp_path).documents
    assert [d.metadata["page"] for d in docs] == [1, 2]
    assert docs[0].metadata["title"] == "Rapport régional" and docs[0].metadata["illustrative"] is True
    assert docs[0].metadata["themes"] == ["a", "b"] and docs[0].metadata["echelle"] == ["region"]
    assert "Deuxième page : écoute." in docs[1].text and "## 2. Résultats" in docs[1].text


def test_pdf_section_continues_on_the_next_page(tmp_path: Path):
    from assistant.chunking import chunk_document

    f = make_pdf(tmp_path / "rapports/r.pdf", [
        "Rapport\n4. État des lieux\n4.2 Trois profils de conseils\nLe premier profil : les conseils actifs.",
        "Le deuxième profil : les conseils en veille. Le troisième : les conseils renouvelés.\n5. Pistes\nUne piste.",
    ], title="Rapport")
    docs = load_file(f, tmp_path).documents
    chunks = [c for d in docs for c in chunk_document(d)]
    by_page = {(c.metadata["page"], c.metadata["section"]) for c in chunks if "conseils" in c.text}
    assert by_page == {(1, "4. État des lieux > 4.2 Trois profils de conseils"),
                       (2, "4. État des lieux > 4.2 Trois profils de conseils")}
    assert any(c.metadata["page"] == 2 and c.metadata["section"] == "5. Pistes" for c in chunks)


def test_pdf_title_from_first_line_without_metadata(tmp_path: Path):
    f = make_pdf(tmp_path / "autres/sans-titre.pdf", ["Actes du séminaire\nTexte."])
    assert load_file(f, tmp_path).documents[0].metadata["title"] == "Actes du séminaire"


def test_docx_headings_lists_tables_and_metadata_table(tmp_path: Path):
    f = make_docx(tmp_path / "fiches-outils/w.docx", {"type": "fiche_outil", "titre": "Budget participatif", "echelle": "commune", "themes": "budget, participation"}, [
        ("Heading 1", "Budget participatif"), ("Heading 2", "Étapes"), ("List Number", "Voter le règlement."),
        ("List Bullet", "Informer largement."), ("Normal", "Un paragraphe."), ("table", "Étape|Durée\nVote|1 mois"),
    ])
    doc = load_file(f, tmp_path).documents[0]
    assert doc.metadata["title"] == "Budget participatif" and doc.metadata["themes"] == ["budget", "participation"]
    assert "## Étapes" in doc.text and "1. Voter le règlement." in doc.text and "- Informer largement." in doc.text
    assert "Vote | 1 mois" in doc.text and "champ" not in doc.text


def test_docx_metadata_section(tmp_path: Path):
    f = make_docx(tmp_path / "x/w.docx", None, [("Heading 1", "Métadonnées"), ("Normal", "type : fiche_experience"),
                                                ("Normal", "statut : exemple fictif"), ("Heading 1", "Un titre"), ("Normal", "Corps.")])
    doc = load_file(f, tmp_path).documents[0]
    assert doc.metadata["doc_type"] == "fiche_experience" and doc.metadata["illustrative"] is True
    assert "Métadonnées" not in doc.text and "Corps." in doc.text


@pytest.mark.parametrize("case, expected", [
    ("empty", "vide (0 octet)"),
    ("fake_pdf", "n'est pas un PDF"),
    ("encrypted", "mot de passe"),
    ("scanned", "OCR"),
    ("oversized", "trop volumineux"),
    ("unknown", "non prise en charge"),
    ("bad_docx", "Word illisible"),
])
def test_bad_inputs_have_french_messages_naming_the_file(tmp_path: Path, case: str, expected: str):
    d = tmp_path / "fiches-outils"
    d.mkdir()
    max_bytes = None
    if case == "empty":
        f = d / "vide.md"
        f.write_bytes(b"")
    elif case == "fake_pdf":
        f = d / "faux.pdf"
        f.write_text("Ceci est un texte, pas un PDF.", encoding="utf-8")
    elif case == "encrypted":
        f = make_pdf(d / "protege.pdf", ["Secret."], password="motdepasse")
    elif case == "scanned":
        f = make_pdf(d / "scan.pdf", ["", ""])
    elif case == "oversized":
        f = write_md(d / "gros.md", "x " * 5000)
        max_bytes = 1000
    elif case == "unknown":
        f = d / "tableau.xlsx"
        f.write_bytes(b"PK\x03\x04")
    else:
        f = d / "casse.docx"
        f.write_bytes(b"pas un zip")
    with pytest.raises(LoadError) as info:
        load_file(f, tmp_path, max_bytes=max_bytes)
    assert expected in str(info.value)
    assert str(info.value).startswith(f"fiches-outils/{f.name} :")


SIDECAR = """type: fiche_experience
titre: Bilan des ateliers du lavoir
territoire: Bourg-Neuf (commune fictive)
departement: Creuse
echelle: [commune, intercommunalite]
themes: [patrimoine, participation]
statut: exemple fictif
"""


def test_sidecar_metadata_for_a_pdf_and_a_docx(tmp_path: Path):
    pdf = make_pdf(tmp_path / "rapports/bilan.pdf", ["Bilan\n\nLes habitants ont restauré le lavoir.", "Suite du bilan."],
                   keywords="type=rapport; echelle=region")
    (tmp_path / "rapports/bilan.pdf.meta.yaml").write_text(SIDECAR, encoding="utf-8")
    docs = load_file(pdf, tmp_path).documents
    assert [d.metadata["page"] for d in docs] == [1, 2]
    for m in (d.metadata for d in docs):
        assert m["doc_type"] == "fiche_experience" and m["title"] == "Bilan des ateliers du lavoir"
        assert m["echelle"] == ["commune", "intercommunalite"] and m["departement"] == "Creuse"
        assert m["themes"] == ["patrimoine", "participation"] and m["illustrative"] is True
    word = make_docx(tmp_path / "entretiens/e.docx", {"type": "entretien", "titre": "Ancien titre"},
                     [("Normal", "Animatrice : Bonjour."), ("Normal", "Habitant : Nous voulions le lavoir.")])
    (tmp_path / "entretiens/e.docx.meta.yaml").write_text("titre: Entretien au lavoir\ndepartement: Landes\n",
                                                         encoding="utf-8")
    m = load_file(word, tmp_path).documents[0].metadata
    assert m["title"] == "Entretien au lavoir" and m["departement"] == "Landes" and m["doc_type"] == "entretien"


def test_broken_or_unknown_sidecar_keys_warn_and_the_file_still_loads(tmp_path: Path):
    txt = write_md(tmp_path / "rapports/note.txt", "Une note sur la concertation.\n")
    side = tmp_path / "rapports/note.txt.meta.yaml"
    side.write_text("titre: [non fermé\n", encoding="utf-8")
    result = load_file(txt, tmp_path)
    assert result.documents and "note.txt.meta.yaml" in result.warnings[0] and "corpus/README.md" in result.warnings[0]
    side.write_text("titre: Note\ncouleur: bleu\n", encoding="utf-8")
    result = load_file(txt, tmp_path)
    assert result.documents[0].metadata["title"] == "Note" and "couleur" in result.warnings[0]
    assert "couleur" not in result.documents[0].metadata


def test_ingest_reads_a_file_again_when_its_sidecar_changes(tmp_path: Path, settings_for):
    from assistant.ingest import ingest
    from assistant.retrieve import open_index

    s = settings_for()
    make_pdf(s.corpus_dir / "rapports/bilan.pdf", ["Bilan\n\nLes habitants ont restauré le lavoir communal."])
    first = ingest(s.corpus_dir, s.index_dir, s, progress=False)
    assert first.added == ["rapports/bilan.pdf"] and not first.skipped
    side = s.corpus_dir / "rapports/bilan.pdf.meta.yaml"
    side.write_text(SIDECAR, encoding="utf-8")
    second = ingest(s.corpus_dir, s.index_dir, s, progress=False)
    assert second.changed == ["rapports/bilan.pdf"] and not second.skipped  # the sidecar is no corpus file
    index = open_index(s)
    assert {m["departement"] for m in index.metadata.values()} == {"Creuse"}
    assert index.search("lavoir", k=3, filters={"echelle": "commune", "departement": "Creuse"})
    index.manifest.close()
    assert ingest(s.corpus_dir, s.index_dir, s, progress=False).unchanged == ["rapports/bilan.pdf"]
    side.unlink()
    assert ingest(s.corpus_dir, s.index_dir, s, progress=False).changed == ["rapports/bilan.pdf"]
