"""Incremental ingestion on a real embedded Chroma, with the fake embedder (named as such)."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import make_pdf, write_md

from assistant.ingest import ingest
from assistant.retrieve import open_index
from assistant.store.vector import open_vector_store

FICHE = """---
type: fiche_outil
titre: {title}
---
# {title}

## En bref

{body}

## Étapes pour lancer

1. Réunir les acteurs du territoire.
2. Fixer un calendrier et un budget.
"""


def corpus_with(settings, n: int = 3) -> Path:
    root = settings.corpus_dir
    for i in range(n):
        write_md(root / f"fiches-outils/fiche-{i}.md",
                 FICHE.format(title=f"Fiche numéro {i}", body=f"Le sujet {i} traite de concertation numéro {i}."))
    return root


def state(settings):
    index = open_index(settings)
    manifest_ids = index.manifest.chunk_ids()
    store_ids = open_vector_store(settings, settings.index_dir).ids()
    return index, manifest_ids, store_ids


def test_first_build_then_no_change(settings_for):
    s = settings_for()
    corpus_with(s)
    r1 = ingest(s.corpus_dir, s.index_dir, s, progress=False)
    assert len(r1.added) == 3 and r1.chunks_total > 0 and r1.usable and not r1.failed
    r2 = ingest(s.corpus_dir, s.index_dir, s, progress=False)
    assert (r2.added, r2.changed, r2.removed, len(r2.unchanged), r2.chunks_embedded) == ([], [], [], 3, 0)
    _, manifest_ids, store_ids = state(s)
    assert manifest_ids == store_ids and len(manifest_ids) == r1.chunks_total


def test_change_add_delete_only_touch_what_changed(settings_for):
    s = settings_for()
    root = corpus_with(s)
    ingest(s.corpus_dir, s.index_dir, s, progress=False)
    _, before, _ = state(s)
    write_md(root / "fiches-outils/fiche-1.md", FICHE.format(title="Fiche numéro 1", body="Un texte entièrement nouveau sur la médiation."))
    write_md(root / "fiches-experiences/nouvelle.md", "# Une expérience\n\nUn conseil de développement en Creuse.\n")
    (root / "fiches-outils/fiche-2.md").unlink()
    r = ingest(s.corpus_dir, s.index_dir, s, progress=False)
    assert r.changed == ["fiches-outils/fiche-1.md"] and r.added == ["fiches-experiences/nouvelle.md"]
    assert r.removed == ["fiches-outils/fiche-2.md"] and r.unchanged == ["fiches-outils/fiche-0.md"]
    index, manifest_ids, store_ids = state(s)
    assert manifest_ids == store_ids
    sources = {c.metadata["source"] for c in index.manifest.get_chunks(sorted(manifest_ids)).values()}
    assert sources == {"fiches-outils/fiche-0.md", "fiches-outils/fiche-1.md", "fiches-experiences/nouvelle.md"}
    kept = {i for i in before if i in manifest_ids}
    assert kept, "chunks of the unchanged file keep their ids"
    hits = index.search("médiation entièrement nouveau", k=1)
    assert hits[0].chunk.metadata["source"] == "fiches-outils/fiche-1.md"


def test_touch_without_content_change_is_not_reembedded(settings_for):
    s = settings_for()
    root = corpus_with(s, 1)
    ingest(s.corpus_dir, s.index_dir, s, progress=False)
    f = root / "fiches-outils/fiche-0.md"
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 5_000_000_000))
    r = ingest(s.corpus_dir, s.index_dir, s, progress=False)
    assert r.chunks_embedded == 0 and r.unchanged == ["fiches-outils/fiche-0.md"]


def test_model_change_triggers_announced_full_rebuild(settings_for, monkeypatch):
    s = settings_for()
    corpus_with(s, 2)
    ingest(s.corpus_dir, s.index_dir, s, progress=False)
    s2 = settings_for(chunk_tokens=100)
    r = ingest(s2.corpus_dir, s2.index_dir, s2, progress=False)
    assert r.rebuilt and "taille des passages 220 → 100" in r.rebuilt
    assert len(r.added) == 2 and "Reconstruction complète" in r.summary()
    _, manifest_ids, store_ids = state(s2)
    assert manifest_ids == store_ids


def test_embedding_model_change_is_named(settings_for):
    from assistant.embedders import FakeEmbedder

    s = settings_for()
    corpus_with(s, 1)
    ingest(s.corpus_dir, s.index_dir, s, progress=False)
    s2 = settings_for(embedding_model="all-MiniLM-L6-v2")
    r = ingest(s2.corpus_dir, s2.index_dir, s2, progress=False, embedder=FakeEmbedder(dim=128))
    assert r.rebuilt and "modèle d'embedding fake → all-MiniLM-L6-v2" in r.rebuilt
    assert r.chunks_total > 0


def test_bad_files_are_listed_and_the_rest_is_indexed(settings_for):
    s = settings_for(max_file_mb=0.01)
    root = corpus_with(s, 2)
    (root / "rapports").mkdir()
    (root / "rapports/vide.md").write_bytes(b"")
    (root / "rapports/faux.pdf").write_text("pas un pdf", encoding="utf-8")
    make_pdf(root / "rapports/protege.pdf", ["Secret."], password="x")
    make_pdf(root / "rapports/scan.pdf", [""])
    (root / "rapports/latin.txt").write_bytes("Délégués élus à l'écoute.".encode("cp1252"))
    write_md(root / "rapports/gros.md", "mot " * 5000)
    (root / "rapports/tableur.xlsx").write_bytes(b"PK")
    r = ingest(s.corpus_dir, s.index_dir, s, progress=False)
    failed = dict(r.failed)
    assert set(failed) == {"rapports/vide.md", "rapports/faux.pdf", "rapports/protege.pdf", "rapports/scan.pdf", "rapports/gros.md"}
    assert "OCR" in failed["rapports/scan.pdf"] and "mot de passe" in failed["rapports/protege.pdf"]
    assert [p for p, _ in r.skipped] == ["rapports/tableur.xlsx"]
    assert "rapports/latin.txt" in r.added and any("cp1252" in w for w in r.warnings)
    assert len(r.added) == 3 and r.usable
    text = r.summary()
    assert "rapports/scan.pdf" in text and "en échec" in text
    # a later run still reports them, without re-reading
    r2 = ingest(s.corpus_dir, s.index_dir, s, progress=False)
    assert len(r2.failed) == 5 and r2.chunks_embedded == 0


def test_nothing_usable_is_reported(settings_for):
    s = settings_for()
    s.corpus_dir.mkdir(parents=True)
    (s.corpus_dir / "vide.md").write_bytes(b"")
    r = ingest(s.corpus_dir, s.index_dir, s, progress=False)
    assert not r.usable and "pas utilisable" in r.summary()
