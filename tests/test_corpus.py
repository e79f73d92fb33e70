"""The sample corpus itself: every file loads cleanly, the required contents are there, STATS.md is current.

Fast (no model): only the loaders and the chunker are used.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from assistant.errors import LoadError
from assistant.loaders import LoadResult, is_candidate, load_file

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
DEPARTEMENTS = {
    "Charente", "Charente-Maritime", "Corrèze", "Creuse", "Dordogne", "Gironde", "Landes",
    "Lot-et-Garonne", "Pyrénées-Atlantiques", "Deux-Sèvres", "Vienne", "Haute-Vienne",
}
ECHELLES = {"quartier", "commune", "intercommunalite", "pays_petr", "departement", "region"}
GLOSSARY_ENTRY = re.compile(r"^## (\S+) — (.+)$", re.M)
REQUIRED_SIGLES = {"QPV", "EPCI", "PETR", "CESER", "ESS", "PTCE", "TZCLD", "PCAET", "PAT", "CNDP", "ANCT"}
HEADING_LINE = re.compile(r"^#{1,6} \S", re.M)


def candidate_files() -> list[Path]:
    return sorted(p for p in CORPUS.rglob("*") if p.is_file() and is_candidate(p, CORPUS))


@pytest.fixture(scope="module")
def loaded() -> dict[str, LoadResult]:
    """Every candidate file, loaded once; a LoadError fails the tests that use it."""
    results: dict[str, LoadResult] = {}
    errors: list[str] = []
    for path in candidate_files():
        try:
            results[path.relative_to(CORPUS).as_posix()] = load_file(path, CORPUS)
        except LoadError as exc:
            errors.append(str(exc))
    assert not errors, "fichiers du corpus illisibles :\n" + "\n".join(errors)
    return results


def of_type(loaded: dict[str, LoadResult], doc_type: str) -> dict[str, LoadResult]:
    return {src: r for src, r in loaded.items() if r.documents[0].metadata["doc_type"] == doc_type}


def full_text(result: LoadResult) -> str:
    return "\n".join(doc.text for doc in result.documents)


def test_every_candidate_file_loads_without_warning(loaded):
    assert len(loaded) == len(candidate_files()) > 0
    warnings = [w for r in loaded.values() for w in r.warnings]
    assert not warnings, "\n".join(warnings)
    assert all(r.documents for r in loaded.values())
    assert "README.md" not in loaded and "STATS.md" not in loaded


def test_minimum_counts(loaded):
    assert len(of_type(loaded, "fiche_outil")) >= 25
    assert len(of_type(loaded, "fiche_experience")) >= 20
    assert len(of_type(loaded, "entretien")) >= 6
    pdf_reports = {s: r for s, r in of_type(loaded, "rapport").items() if s.endswith(".pdf")}
    assert len(pdf_reports) >= 3
    for source, result in pdf_reports.items():
        pages = {doc.metadata["page"] for doc in result.documents}
        assert len(pages) >= 4, f"{source} : {len(pages)} page(s)"
        assert HEADING_LINE.search(full_text(result)), f"{source} : aucun titre reconnu"
    assert len([s for s in loaded if s.endswith(".docx")]) >= 3


@pytest.mark.parametrize("doc_type", ["fiche_experience", "entretien", "rapport"])
def test_illustrative_documents_are_marked_fictif(loaded, doc_type):
    files = of_type(loaded, doc_type)
    assert files
    for source, result in files.items():
        assert all(doc.metadata["illustrative"] is True for doc in result.documents), source
        assert "fictif" in full_text(result).lower(), f"{source} : le texte ne dit pas « fictif »"


def test_fiches_outils_are_not_illustrative(loaded):
    for source, result in of_type(loaded, "fiche_outil").items():
        assert all(doc.metadata["illustrative"] is False for doc in result.documents), source


def test_fiches_experiences_cover_all_departements_and_echelles(loaded):
    metas = [r.documents[0].metadata for r in of_type(loaded, "fiche_experience").values()]
    departements = {m.get("departement") for m in metas}
    assert DEPARTEMENTS <= departements, f"départements manquants : {sorted(DEPARTEMENTS - departements)}"
    echelles = {e for m in metas for e in m["echelle"]}
    assert ECHELLES <= echelles, f"échelles manquantes : {sorted(ECHELLES - echelles)}"


def test_glossary_entries():
    text = (CORPUS / "glossaire" / "glossaire.md").read_text(encoding="utf-8")
    pairs = GLOSSARY_ENTRY.findall(text)
    assert len(pairs) >= 30
    sigles = {sigle for sigle, _ in pairs}
    assert len(sigles) == len(pairs), "sigle en double dans le glossaire"
    assert all(expansion.strip() for _, expansion in pairs)
    assert REQUIRED_SIGLES <= sigles, f"sigles manquants : {sorted(REQUIRED_SIGLES - sigles)}"


def _load_script(name: str) -> ModuleType:
    path = ROOT / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_script_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_stats_file_is_up_to_date(tmp_path: Path):
    corpus_stats = _load_script("corpus_stats")
    out = tmp_path / "STATS.md"
    corpus_stats.write_stats(CORPUS, out)
    committed = (CORPUS / "STATS.md").read_text(encoding="utf-8")
    assert out.read_text(encoding="utf-8") == committed, (
        "corpus/STATS.md n'est plus à jour : lancez .venv/bin/python scripts/corpus_stats.py"
    )
