"""The baseline cannot be moved by the change it judges: from the cut-off commit below on, no commit
may change ``evals/baseline/`` together with the code (``assistant/``), the corpus (``corpus/``) or
the questions (``evals/gold/``). The baseline is regenerated in a commit of its own whose message
says why (evals/README.md, « Mettre à jour la référence »). Merge commits are not checked (their
parents are)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CUTOFF = "81b3980da001af5a7ae4609952d50de9567274b4"  # main when the rule was introduced (issue 14)
JUDGED = ("assistant/", "corpus/", "evals/gold/")


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True).stdout


def offending(files: list[str]) -> list[str]:
    """The judged files of a commit that also changes the baseline (empty when the commit is fine)."""
    if not any(f.startswith("evals/baseline/") for f in files):
        return []
    return [f for f in files if f.startswith(JUDGED)]


def test_rule_on_file_lists():
    assert offending(["evals/baseline/report.json", "README.md"]) == []
    assert offending(["assistant/compose.py", "tests/test_answer.py"]) == []
    assert offending(["evals/baseline/report.json", "evals/gold/test.yaml"]) == ["evals/gold/test.yaml"]


def test_no_commit_moves_the_baseline_with_what_it_judges():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("pas de dépôt git (archive des sources) : la règle se vérifie dans le dépôt")
    known = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{CUTOFF}^{{commit}}"], capture_output=True)
    assert known.returncode == 0, (f"commit de départ {CUTOFF[:10]} introuvable : historique git incomplet ; "
                                   "récupérez tout l'historique (git fetch --unshallow) avant les tests.")
    bad = []
    for commit in git("rev-list", "--no-merges", f"{CUTOFF}..HEAD").split():
        files = git("diff-tree", "--no-commit-id", "--name-only", "-r", commit).split("\n")
        if offending([f for f in files if f]):
            bad.append(f"{commit[:10]} {git('log', '-1', '--format=%s', commit).strip()[:70]}")
    assert not bad, ("Ces commits changent evals/baseline/ en même temps que assistant/, corpus/ ou evals/gold/ : "
                     + " ; ".join(bad) + ". Refaites la référence dans un commit à part (evals/README.md).")
