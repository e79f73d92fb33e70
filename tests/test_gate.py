"""The gate fails, never skips: missing baseline, another set or configuration, a None metric, a
tolerance wider than one question or a missing tolerances file are failures with a French message.
Reports are built from the tiny index of tests/test_evals.py (fake embedder, named so)."""

from __future__ import annotations

import copy

import pytest
import yaml
from test_evals import good_report, tiny  # noqa: F401 - module fixtures reused

from assistant.cli import main
from assistant.evals.gate import LLM_ONLY, gate, gated_metrics, load_tolerances, tolerance_of
from assistant.evals.report import write_report


def test_missing_baseline_fails(good_report):  # noqa: F811
    problems = gate(good_report, None)
    assert len(problems) == 1 and "pas de référence" in problems[0] and "commit à part" in problems[0]


def test_changed_set_without_new_baseline_fails(good_report):  # noqa: F811
    other = copy.deepcopy(good_report)
    other["meta"]["set_sha1"] = "0" * 40
    problems = gate(good_report, other)
    assert len(problems) == 1 and "n'est pas celui de la référence" in problems[0]


def test_other_configuration_fails(good_report):  # noqa: F811
    other = copy.deepcopy(good_report)
    other["meta"]["config"] = "bm25"
    assert "configuration" in gate(good_report, other)[0]


@pytest.mark.parametrize("key", ["hit@1", "answer_coverage", "cited_facts", "suggestion_relevance"])
def test_none_metric_fails(good_report, key):  # noqa: F811
    run = copy.deepcopy(good_report)
    run["overall"][key] = None
    assert any(p.endswith("refaites la référence.") and "pas de valeur dans ce passage" in p for p in gate(run, good_report))
    assert any("pas de valeur dans la référence" in p for p in gate(good_report, run))


def test_citation_metrics_are_gated_only_for_an_llm_run(good_report):  # noqa: F811
    assert not set(LLM_ONLY) & set(gated_metrics(good_report))
    worse = copy.deepcopy(good_report)
    worse["overall"]["citation_precision"] = 0.2
    assert gate(worse, good_report) == []  # extractive composer: 1.0 by construction, reported only
    llm_base, llm_run = copy.deepcopy(good_report), copy.deepcopy(worse)
    llm_base["meta"]["config"] = llm_run["meta"]["config"] = "llm"
    assert [p.split(" :")[0] for p in gate(llm_run, llm_base)] == ["précision des citations"]


def test_tolerances_file_is_at_most_one_question(tmp_path, good_report):  # noqa: F811
    tolerances = load_tolerances()
    assert all(0 < v <= 1 for v in tolerances.values())
    assert tolerance_of("refusal_recall", good_report, tolerances) == pytest.approx(
        1 / good_report["overall"]["expected_refusals"])
    wide = tmp_path / "tolerances.yaml"
    wide.write_text(yaml.safe_dump({"tolerances": {**tolerances, "hit@3": 2}}), encoding="utf-8")
    with pytest.raises(ValueError, match="entre 0 et 1"):
        load_tolerances(wide)
    missing = tmp_path / "partial.yaml"
    missing.write_text(yaml.safe_dump({"tolerances": {"hit@3": 1}}), encoding="utf-8")
    with pytest.raises(ValueError, match="manquante"):
        load_tolerances(missing)
    with pytest.raises(ValueError, match="introuvable"):
        load_tolerances(tmp_path / "absent.yaml")


def test_cli_fails_without_baseline_and_with_a_changed_set(tiny, good_report, monkeypatch, tmp_path, capsys):  # noqa: F811
    monkeypatch.setenv("ASSISTANT_EMBEDDING_MODEL", "fake")
    monkeypatch.setenv("ASSISTANT_CHROMA_COLLECTION", "evals_test")
    args = ["eval", "--set", str(tiny["gold"]), "--index", str(tiny["settings"].index_dir), "--quiet"]
    assert main([*args, "--out", str(tmp_path / "a"), "--baseline", str(tmp_path / "none.json")]) == 1
    assert "pas de référence" in capsys.readouterr().out
    stale = copy.deepcopy(good_report)
    stale["meta"]["set_sha1"] = "f" * 40
    write_report(stale, tmp_path / "stale")
    assert main([*args, "--out", str(tmp_path / "b"), "--baseline", str(tmp_path / "stale" / "report.json")]) == 1
    assert "le jeu a changé sans nouvelle référence" in capsys.readouterr().out
    assert main([*args, "--out", str(tmp_path / "c"), "--no-gate"]) == 0
