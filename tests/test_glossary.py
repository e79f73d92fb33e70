from __future__ import annotations

from conftest import ROOT, write_md

from assistant.glossary import load_glossary, parse_glossary


def test_parse_entries():
    text = "# G\n\n## QPV — Quartier prioritaire de la politique de la ville\n\nDéfinition.\n\n## Pas une entrée\n"
    assert parse_glossary(text) == {"QPV": "Quartier prioritaire de la politique de la ville"}


def test_only_files_marked_as_glossary(tmp_path):
    write_md(tmp_path / "glossaire/g.md", "---\nglossaire: true\n---\n## EPCI — Établissement public de coopération intercommunale\n")
    write_md(tmp_path / "fiches-outils/f.md", "## ABC — pas un glossaire\n")
    assert load_glossary(tmp_path) == {"EPCI": "Établissement public de coopération intercommunale"}


def test_sample_corpus_glossary_expands_the_field_acronyms():
    terms = load_glossary(ROOT / "corpus")
    for sigle in ("QPV", "EPCI", "PETR", "CESER", "ESS", "PTCE", "TZCLD", "PCAET", "PAT", "CNDP", "ANCT"):
        assert sigle in terms
    assert terms["PETR"].lower().startswith("pôle d'équilibre territorial et rural")
