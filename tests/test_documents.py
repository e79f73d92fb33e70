"""Staff manage the corpus (assistant/documents.py and the Service around it): names sanitised,
never outside the corpus, oversized and forged files refused by content, a broken file reported
with nothing else lost, replace only when asked, list with statuses, metadata through the sidecar,
passages preview, delete, and the background ingest while the old index keeps answering.
Real files, real ingest and Chroma; the fake embedder (named so) replaces the model."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from conftest import build_index, make_docx, make_pdf

from assistant.documents import DocumentError, Documents, safe_name
from assistant.store.lock import IndexLock
from assistant.web.service import Service

FICHE = """---
type: fiche_outil
titre: Le conseil citoyen
echelle: [quartier]
---
# Le conseil citoyen

## Étapes pour lancer

1. Informer les habitants du quartier prioritaire.
2. Tirer au sort une partie des membres du conseil citoyen.
"""


def pdf_bytes(tmp_path: Path, pages: list[str], name: str = "x.pdf") -> bytes:
    return make_pdf(tmp_path / "build" / name, pages).read_bytes()


def docx_bytes(tmp_path: Path, body: list[tuple[str, str]], meta: dict[str, str] | None = None) -> bytes:
    return make_docx(tmp_path / "build" / "x.docx", meta, body).read_bytes()


@pytest.mark.parametrize(("given", "expected"), [
    ("../../etc/passwd.md", "passwd.md"),
    ("..\\..\\Windows\\note.TXT", "note.txt"),
    ("Rapport d'activité Été 2024.PDF", "rapport-d-activite-ete-2024.pdf"),
    (".cache.md", "cache.md"),
    ("/abs/path/fiche.docx", "fiche.docx"),
])
def test_names_are_sanitised(given, expected):
    assert safe_name(given) == expected


@pytest.mark.parametrize("given", ["programme.exe", "archive.zip", "sans-extension", "....pdf", "photo.png"])
def test_unaccepted_names_are_refused(given):
    with pytest.raises(DocumentError):
        safe_name(given)


def test_uploads_never_leave_the_corpus_and_forged_files_are_refused(tmp_path, settings_for):
    settings = settings_for(max_file_mb=0.05)
    settings.corpus_dir.mkdir(parents=True)
    docs = Documents(settings)
    outside = tmp_path / "passwd.md"
    rel = docs.save_upload("../../passwd.md", b"# Titre\n\nUn texte.\n", folder="rapports")
    assert rel == "rapports/passwd.md" and not outside.exists()
    for folder in ("../dehors", "/etc", "rapports/../../dehors"):
        with pytest.raises(DocumentError, match="Dossier invalide"):
            docs.save_upload("a.md", b"texte", folder=folder)
    assert not (tmp_path / "dehors").exists()
    cases = {
        "gros.md": (b"mot " * 20000, 413, "trop volumineux"),
        "faux.pdf": (b"MZ\x90\x00 un programme Windows", 415, "n'est pas un PDF"),
        "casse.pdf": (b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\n%%EO", 400, "endommagé"),
        "faux.docx": (b"PK\x03\x04" + b"\x00" * 100, 400, "Word"),
        "ancien.docx": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, 415, "ancien .doc"),
        "image.txt": (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, 415, "pas un fichier texte"),
        "vide.md": (b"", 400, "vide"),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "pas un document Word")
    cases["zip.docx"] = (buffer.getvalue(), 415, "pas un document Word")
    for name, (raw, status, words) in cases.items():
        with pytest.raises(DocumentError, match=words) as err:
            docs.save_upload(name, raw, folder="rapports")
        assert err.value.status == status, name
        assert not (settings.corpus_dir / "rapports" / name).exists()
    assert sorted(p.name for p in (settings.corpus_dir / "rapports").iterdir()) == ["passwd.md"]
    # replace only when asked
    with pytest.raises(DocumentError, match="existe déjà") as err:
        docs.save_upload("passwd.md", b"# Autre\n\nAutre texte.\n", folder="rapports")
    assert err.value.status == 409 and "Un texte." in (settings.corpus_dir / "rapports/passwd.md").read_text()
    docs.save_upload("passwd.md", b"# Autre\n\nAutre texte.\n", folder="rapports", replace=True)
    assert "Autre texte." in (settings.corpus_dir / "rapports/passwd.md").read_text()


def test_delete_and_metadata_refuse_paths_outside_the_corpus(tmp_path, settings_for):
    settings = settings_for()
    (settings.corpus_dir / "rapports").mkdir(parents=True)
    (tmp_path / "secret.txt").write_text("secret", encoding="utf-8")
    (settings.corpus_dir / "README.md").write_text("# Mode d'emploi", encoding="utf-8")
    docs = Documents(settings)
    for source in ("../secret.txt", "/etc/passwd", "README.md", "rapports/absent.pdf", "rapports"):
        with pytest.raises(DocumentError) as err:
            docs.delete(source)
        assert err.value.status == 404
        with pytest.raises(DocumentError):
            docs.set_metadata(source, {"departement": "Creuse"})
    assert (tmp_path / "secret.txt").exists()


def test_documents_tab_flow_with_background_ingest(tmp_path):
    settings, index = build_index(tmp_path, {"fiches-outils/conseil-citoyen.md": FICHE},
                                  chroma_collection="documents_test", staff_password="secret")
    service = Service(settings, index=index)
    docs = {d.source: d for d in service.documents.list()}
    assert docs["fiches-outils/conseil-citoyen.md"].status == "indexed"
    assert docs["fiches-outils/conseil-citoyen.md"].editable is False  # front matter: edit the file
    word = docx_bytes(tmp_path, [("Heading 1", "Le lavoir de Bourg-Neuf"),
                                 ("Normal", "Les habitants ont restauré le lavoir avec la commune en 2024.")])
    pdf = pdf_bytes(tmp_path, ["Bilan des ateliers\n\nLa maison des jeunes ouvre un atelier vélo le mercredi.",
                               "Deuxième page : le bilan financier de l'atelier vélo."])
    lock = IndexLock(settings.index_dir)
    lock.acquire()  # another ingest is running: the job waits, the app keeps answering
    try:
        results = service.upload([("Lavoir.docx", word), ("bilan ateliers.pdf", pdf), ("casse.pdf", b"%PDF-1.4 rien")],
                                 folder="rapports")
        assert [r["ok"] for r in results] == [True, True, False] and "endommagé" in results[2]["message"]
        pending = {d.source: d.status for d in service.documents.list()}
        assert pending["rapports/lavoir.docx"] == "pending" and pending["rapports/bilan-ateliers.pdf"] == "pending"
        assert service.ingest_job.running()
        result, _ = service.ask("Comment lancer un conseil citoyen ?")
        assert result.status == "answered" and result.citations[0].source == "fiches-outils/conseil-citoyen.md"
    finally:
        lock.release()
    assert service.ingest_job.wait(60)
    state = service.ingest_job.state()
    assert state["error"] is None and state["report"]["added"] == ["rapports/bilan-ateliers.pdf", "rapports/lavoir.docx"]
    docs = {d.source: d for d in service.documents.list()}
    pdf_info = docs["rapports/bilan-ateliers.pdf"]
    assert pdf_info.status == "indexed" and pdf_info.pages == 2 and pdf_info.passages >= 2 and pdf_info.format == "pdf"
    assert docs["rapports/lavoir.docx"].status == "indexed" and docs["rapports/lavoir.docx"].title == "Le lavoir de Bourg-Neuf"
    preview = service.documents.passages("rapports/bilan-ateliers.pdf")
    assert [p["page"] for p in preview] == [1, 2] and "atelier vélo" in preview[0]["text"]
    result, _ = service.ask("Quel jour ouvre l'atelier vélo de la maison des jeunes ?")
    assert result.citations and result.citations[0].source == "rapports/bilan-ateliers.pdf"
    # metadata through the sidecar, then the filters find the document
    values = service.set_document_metadata("rapports/bilan-ateliers.pdf",
                                           {"echelle": ["commune"], "departement": "Creuse", "type": "rapport",
                                            "themes": "jeunesse, mobilité"})
    assert values["themes"] == ["jeunesse", "mobilité"]
    assert (settings.corpus_dir / "rapports/bilan-ateliers.pdf.meta.yaml").exists()
    with pytest.raises(DocumentError, match="Échelle inconnue"):
        service.set_document_metadata("rapports/bilan-ateliers.pdf", {"echelle": ["planete"]})
    assert service.ingest_job.wait(60)
    info = {d.source: d for d in service.documents.list()}["rapports/bilan-ateliers.pdf"]
    assert info.status == "indexed" and info.departement == "Creuse" and info.metadata_source == "sidecar"
    result, _ = service.ask("atelier vélo", filters={"departement": "Creuse", "echelle": "commune"})
    assert result.citations and {c.source for c in result.citations} == {"rapports/bilan-ateliers.pdf"}
    # a file that fails at indexing is listed with its French reason; the others stay indexed
    service.upload([("vide-de-texte.md", b"---\ntitre: Rien\n---\n")], folder="rapports")
    assert service.ingest_job.wait(60)
    docs = {d.source: d for d in service.documents.list()}
    assert docs["rapports/vide-de-texte.md"].status == "failed" and "aucun texte" in docs["rapports/vide-de-texte.md"].reason
    assert docs["rapports/lavoir.docx"].status == "indexed"
    # delete: the file, its sidecar and its passages go
    service.delete_document("rapports/bilan-ateliers.pdf")
    assert not (settings.corpus_dir / "rapports/bilan-ateliers.pdf.meta.yaml").exists()
    assert service.ingest_job.wait(60)
    assert "rapports/bilan-ateliers.pdf" not in {d.source for d in service.documents.list()}
    assert all(m["source"] != "rapports/bilan-ateliers.pdf" for m in service.index.metadata.values())
    result, _ = service.ask("Quel jour ouvre l'atelier vélo de la maison des jeunes ?")
    assert all(c.source != "rapports/bilan-ateliers.pdf" for c in result.citations)


def test_rest_endpoints_check_the_password_and_refuse_cross_site(tmp_path):
    from fastapi.testclient import TestClient

    from assistant.web.server import create_app

    settings, index = build_index(tmp_path, {"fiches-outils/conseil-citoyen.md": FICHE},
                                  chroma_collection="documents_rest", staff_password="secret",
                                  rate_limit_per_minute=0, allowed_origins="http://127.0.0.1:8123")
    app = create_app(settings, index=index, with_ui=False)
    service = app.state.service
    auth = {"Authorization": "Basic " + __import__("base64").b64encode(b"equipe:secret").decode()}
    pdf = pdf_bytes(tmp_path, ["Le marché de producteurs du samedi réunit douze fermes du canton."])
    with TestClient(app) as client:
        assert client.get("/staff/documents").status_code == 401
        assert client.post("/staff/documents", files=[("files", ("m.pdf", pdf, "application/pdf"))]).status_code == 401
        listed = client.get("/staff/documents", headers=auth).json()
        assert [(d["source"], d["status"], d["reason"]) for d in listed] == [("fiches-outils/conseil-citoyen.md", "indexed", None)]
        # cross-site: another site's page posting with the staff's browser credentials is refused
        for headers in ({"Origin": "https://pirate.example"}, {"Sec-Fetch-Site": "cross-site"}):
            r = client.post("/staff/documents", headers={**auth, **headers},
                            files=[("files", ("m.pdf", pdf, "application/pdf"))])
            assert r.status_code == 403 and "autre site" in r.json()["detail"]
            assert client.delete("/staff/documents/fiches-outils/conseil-citoyen.md", headers={**auth, **headers}).status_code == 403
            assert client.put("/staff/documents/fiches-outils/conseil-citoyen.md/metadata", json={},
                              headers={**auth, **headers}).status_code == 403
        assert not (settings.corpus_dir / "depots").exists()
        # same origin (the staff tab itself), several files, one forged
        r = client.post("/staff/documents", headers={**auth, "Origin": "http://testserver"},
                        data={"folder": "rapports"},
                        files=[("files", ("../../Marché.pdf", pdf, "application/pdf")),
                               ("files", ("faux.pdf", b"GIF89a pas un pdf", "application/pdf"))])
        assert r.status_code == 200
        results = r.json()["results"]
        assert results[0]["ok"] and results[0]["source"] == "rapports/marche.pdf"
        assert not results[1]["ok"] and "n'est pas un PDF" in results[1]["message"]
        assert service.ingest_job.wait(60)
        docs = {d["source"]: d for d in client.get("/staff/documents", headers=auth).json()}
        assert docs["rapports/marche.pdf"]["status"] == "indexed" and docs["rapports/marche.pdf"]["pages"] == 1
        r = client.post("/staff/documents", headers=auth, data={"folder": "rapports"},
                        files=[("files", ("marche.pdf", pdf, "application/pdf"))])
        assert r.status_code == 409 and "existe déjà" in r.json()["results"][0]["message"]
        assert client.post("/staff/documents", headers=auth, data={"folder": "rapports", "replace": "1"},
                           files=[("files", ("marche.pdf", pdf, "application/pdf"))]).status_code == 200
        assert service.ingest_job.wait(60)
        preview = client.get("/staff/documents/rapports/marche.pdf/passages", headers=auth).json()
        assert preview[0]["page"] == 1 and "douze fermes" in preview[0]["text"]
        r = client.put("/staff/documents/rapports/marche.pdf/metadata", headers=auth,
                       json={"echelle": ["intercommunalite"], "departement": "Landes"})
        assert r.status_code == 200 and r.json()["metadata"] == {"departement": "Landes", "echelle": ["intercommunalite"]}
        assert client.put("/staff/documents/../secret.txt/metadata", headers=auth, json={}).status_code == 404
        assert client.put("/staff/documents/fiches-outils/conseil-citoyen.md/metadata", headers=auth,
                          json={"departement": "Landes"}).status_code == 409
        assert service.ingest_job.wait(60)
        body = {"question": "marché de producteurs", "filters": {"departement": "Landes", "echelle": "intercommunalite"}}
        cited = client.post("/api/ask", json=body).json()["citations"]
        assert cited and cited[0]["source"] == "rapports/marche.pdf"
        assert client.delete("/staff/documents/rapports/marche.pdf", headers=auth).status_code == 200
        assert client.delete("/staff/documents/rapports/marche.pdf", headers=auth).status_code == 404
        assert service.ingest_job.wait(60)
        assert client.post("/api/ask", json=body).json()["citations"] == []
        assert client.get("/staff/ingest", headers=auth).json()["report"]["removed"] == ["rapports/marche.pdf"]


def test_answers_during_an_ingest_come_from_the_previous_state(tmp_path):
    from assistant.ingest import ingest

    other = FICHE.replace("Le conseil citoyen", "Le budget participatif").replace(
        "Tirer au sort une partie des membres du conseil citoyen", "Voter les projets du budget participatif en ligne")
    settings, index = build_index(tmp_path, {"fiches-outils/conseil-citoyen.md": FICHE,
                                             "fiches-outils/budget-participatif.md": other},
                                  chroma_collection="documents_snapshot")
    service = Service(settings, index=index)
    service.ask("Comment voter les projets du budget participatif ?")  # a serving index: calibration loaded
    service.index.manifest.pin()  # what Service.reindex does before its ingest
    fiche = settings.corpus_dir / "fiches-outils/conseil-citoyen.md"
    fiche.write_text(FICHE.replace("Tirer au sort une partie des membres", "Désigner par élection les membres"),
                     encoding="utf-8")
    report = ingest(settings.corpus_dir, settings.index_dir, settings, progress=False)  # another connection
    assert report.changed == ["fiches-outils/conseil-citoyen.md"]
    # an unchanged file is answered as before; nothing of the new text is served before the swap (the
    # old passages of the changed file lost their vectors: only BM25 finds them until the swap)
    result, _ = service.ask("Comment voter les projets du budget participatif en ligne ?")
    assert any("Voter les projets" in c.text for c in result.citations), result.status
    result, _ = service.ask("Comment tirer au sort les membres du conseil citoyen ?")
    assert not any("élection" in c.text for c in result.citations)
    service.reindex()  # the swap: the new state is served
    result, _ = service.ask("Comment désigner par élection les membres du conseil citoyen ?")
    assert any("élection" in c.text for c in result.citations)
    assert not any("Tirer au sort" in c.text for c in result.citations)
