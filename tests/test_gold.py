"""The gold question sets evals/gold/{dev,test}.yaml: well formed, grounded in the corpus, up to date.

Key facts are checked against the text the loaders extract (PDF and Word included), ignoring case,
accents and (non-breaking) whitespace. A failing key fact or filter means the entry in evals/parts/
must be fixed, then ``.venv/bin/python scripts/build_gold.py`` re-run.
"""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from assistant.evals.metrics import fact_in, norm
from assistant.loaders import load_file

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
GOLD = ROOT / "evals" / "gold"
SPLITS = ("dev", "test")
KINDS = {"definition", "procedure", "cadre_legal", "experience", "court", "faute", "sigle", "paraphrase",
         "deux_documents", "hors_champ", "lacune", "injection", "suivi", "filtre"}
REQUIRED = ("id", "question", "kind", "gold_sources", "key_facts", "expected_status", "split")
FILTER_KEYS = {"doc_type", "echelle", "departement", "theme"}


@pytest.fixture(scope="module")
def gold() -> dict[str, list[dict[str, Any]]]:
    sets = {}
    for split in SPLITS:
        data = yaml.safe_load((GOLD / f"{split}.yaml").read_text(encoding="utf-8"))
        assert isinstance(data, list), f"{split}.yaml doit être une liste"
        sets[split] = data
    return sets


@pytest.fixture(scope="module")
def entries(gold) -> list[dict[str, Any]]:
    return [e for split in SPLITS for e in gold[split]]


@pytest.fixture(scope="module")
def sources() -> dict[str, tuple[str, dict[str, Any]]]:
    """Lazy cache: gold source -> (normalised extracted text, metadata of its first document)."""
    return {}


def load_source(cache: dict[str, tuple[str, dict[str, Any]]], source: str) -> tuple[str, dict[str, Any]]:
    if source not in cache:
        result = load_file(CORPUS / source, CORPUS)
        cache[source] = (norm("\n".join(d.text for d in result.documents)), result.documents[0].metadata)
    return cache[source]


def test_ids_unique_and_fields(gold, entries):
    ids = Counter(e.get("id") for e in entries)
    assert not [i for i, n in ids.items() if n > 1], "ids en double"
    for split in SPLITS:
        for e in gold[split]:
            assert all(f in e for f in REQUIRED), f"{e.get('id')} : champs manquants"
            assert e["split"] == split, e["id"]
            assert isinstance(e["question"], str) and e["question"].strip(), e["id"]
            assert e["kind"] in KINDS, e["id"]
            assert e["expected_status"] in {"answered", "no_answer"}, e["id"]
            assert isinstance(e["gold_sources"], list) and isinstance(e["key_facts"], list), e["id"]


def test_no_answer_entries_have_no_sources(entries):
    for e in entries:
        if e["expected_status"] == "no_answer":
            assert e["gold_sources"] == [] and e["key_facts"] == [], e["id"]
        else:
            assert 1 <= len(e["gold_sources"]) <= 2 and 1 <= len(e["key_facts"]) <= 3, e["id"]


def test_gold_sources_exist(entries):
    missing = [(e["id"], s) for e in entries for s in e["gold_sources"] if not (CORPUS / s).is_file()]
    assert not missing, missing


def test_key_facts_are_in_gold_sources(entries, sources):
    absent = []
    for e in entries:
        if not e["gold_sources"]:
            continue
        text = "\n".join(load_source(sources, s)[0] for s in e["gold_sources"])
        absent += [(e["id"], fact) for fact in e["key_facts"] if not fact_in(fact, text)]
    assert not absent, f"key_facts absents (en mots entiers) de leurs sources : {absent}"


def test_two_document_questions_need_both(entries, sources):
    for e in (e for e in entries if e["kind"] == "deux_documents"):
        assert len(e["gold_sources"]) == 2, e["id"]
        texts = [load_source(sources, s)[0] for s in e["gold_sources"]]
        for i in (0, 1):
            assert any(fact_in(f, texts[i]) and not fact_in(f, texts[1 - i]) for f in e["key_facts"]), e["id"]


def test_common_facts_are_marked_key_facts(entries):
    for e in entries:
        assert set(e.get("common_facts") or []) <= set(e["key_facts"]), e["id"]


def test_filter_entries_match_their_sources(entries, sources):
    wrong = []
    for e in entries:
        filters = e.get("filters") or {}
        assert set(filters) <= FILTER_KEYS, e["id"]
        for source in e["gold_sources"]:
            meta = load_source(sources, source)[1]
            for key, value in filters.items():
                ok = {
                    "doc_type": meta["doc_type"] == value,
                    "echelle": value in meta["echelle"],
                    "departement": meta.get("departement") == value,
                    "theme": value in meta["themes"],
                }[key]
                if not ok:
                    wrong.append((e["id"], source, key, value))
    assert not wrong, wrong


def test_counts(entries):
    def count(kind: str | None = None, **cond: Any) -> int:
        return sum(1 for e in entries if (kind is None or e["kind"] == kind)
                   and all(e.get(k) == v for k, v in cond.items()))

    assert count(expected_status="answered") >= 100
    assert count("hors_champ") >= 20
    assert count("lacune") >= 20  # in-domain questions the corpus cannot answer
    assert count("paraphrase") >= 10 and count("deux_documents") >= 6
    assert count("injection") >= 5
    assert sum(1 for e in entries if e["kind"] == "suivi" and e.get("history")) >= 10
    assert sum(1 for e in entries if e["kind"] == "filtre" and e.get("filters")) >= 10
    assert all(e.get("history") for e in entries if e["kind"] == "suivi")
    assert all(e.get("filters") for e in entries if e["kind"] == "filtre")


def test_every_kind_in_both_sets(gold):
    for split in SPLITS:
        kinds = {e["kind"] for e in gold[split]}
        assert kinds == KINDS, f"{split} : kinds manquants {sorted(KINDS - kinds)}"


def _load_build_gold() -> ModuleType:
    path = ROOT / "scripts" / "build_gold.py"
    spec = importlib.util.spec_from_file_location("_script_build_gold", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_generated_files_are_up_to_date():
    build_gold = _load_build_gold()
    built = build_gold.build(ROOT / "evals" / "parts", CORPUS)
    hint = "lancez .venv/bin/python scripts/build_gold.py"
    for split in SPLITS:
        assert (GOLD / f"{split}.yaml").read_text(encoding="utf-8") == built[split], f"{split}.yaml : {hint}"
    readme = (ROOT / "evals" / "README.md").read_text(encoding="utf-8")
    assert built["table"] in readme, f"tableau des comptes de evals/README.md : {hint}"


def test_build_gold_rejects_common_facts_and_bare_substrings(tmp_path):
    """A fact found in more than MAX_FACT_FILES files is rejected unless marked in common_facts; a fact
    only found inside a longer word (« un tiers » in « un tiers-lieu ») is absent."""
    build_gold = _load_build_gold()
    corpus = tmp_path / "corpus"
    for i in range(build_gold.MAX_FACT_FILES + 1):
        (corpus / "fiches-outils").mkdir(parents=True, exist_ok=True)
        (corpus / "fiches-outils" / f"f{i}.md").write_text(
            f"# Fiche {i}\n\nLe conseil citoyen réunit les habitants. Un tiers-lieu numéro {i} ouvre.\n", encoding="utf-8")
    entry = {"id": "x-1", "question": "Q ?", "kind": "definition", "gold_sources": ["fiches-outils/f0.md"],
             "expected_status": "answered"}
    problems = build_gold.validate([{**entry, "key_facts": ["conseil citoyen", "un tiers", "numéro 0"]}], corpus)
    assert any("« conseil citoyen » trop courant" in p for p in problems)
    assert any("« un tiers » absent (en mots entiers)" in p for p in problems)
    assert not any("numéro 0" in p for p in problems)
    marked = {**entry, "key_facts": ["conseil citoyen"], "common_facts": ["conseil citoyen"]}
    assert not [p for p in build_gold.validate([marked], corpus) if "x-1" in p]
