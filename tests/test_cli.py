"""The CLI contracts of DESIGN.md, through the real console script in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import write_md

ASSISTANT = Path(sys.executable).parent / "assistant"


def run(args, tmp_path, stdin=None, **env):
    full_env = dict(os.environ, ASSISTANT_EMBEDDING_MODEL="fake", ASSISTANT_CHROMA_COLLECTION="cli_test", **env)
    return subprocess.run([str(ASSISTANT), *args], input=stdin, capture_output=True, text=True, env=full_env,
                          cwd=tmp_path, timeout=300)


def test_ingest_then_ask_json_lines(tmp_path):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write_md(corpus / "fiches-outils/cc.md", "---\ntype: fiche_outil\ntitre: Le conseil citoyen\n---\n# Le conseil citoyen\n\n## Cadre légal\n\nLes conseils citoyens sont créés par la loi du 21 février 2014 dans chaque quartier prioritaire.\n")
    write_md(corpus / "fiches-experiences/x.md", "---\ntitre: Une expérience\nstatut: exemple fictif\n---\nExemple fictif. Un conseil citoyen co-animé avec le centre social du quartier.\n")
    (corpus / "notes.xlsx").write_bytes(b"PK")
    r = run(["ingest", "--corpus", str(corpus), "--index", str(index), "--json"], tmp_path)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert len(summary["added"]) == 2 and summary["skipped"][0]["source"] == "notes.xlsx" and summary["chunks"] >= 2

    r = run(["ask", "--index", str(index), "--json"], tmp_path,
            stdin="quelle loi crée les conseils citoyens ?\nrecette du gâteau basque\n")
    r2 = run(["ask", "--index", str(index), "conseil citoyen co-animé avec le centre social"], tmp_path)
    assert r2.returncode == 0 and "exemple fictif" in r2.stdout and "fiches-experiences/x.md" in r2.stdout
    # the sources are listed once, under « Pour aller plus loin »
    assert "Pour aller plus loin" in r2.stdout and "Sources" not in r2.stdout
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(lines) == 2
    first, second = lines
    assert set(first) >= {"question", "standalone_question", "status", "answer", "citations", "experiences", "timings_ms"}
    assert first["status"] == "answered" and "[1]" in first["answer"]
    c = first["citations"][0]
    assert set(c) == {"n", "source", "title", "doc_type", "page", "section", "text", "score", "illustrative", "ocr"}
    assert c["source"] == "fiches-outils/cc.md" and c["section"] == "Cadre légal" and c["page"] is None
    assert "21 février 2014" in c["text"] and c["illustrative"] is False
    assert second["status"] == "no_answer" and second["citations"] == []
    assert set(first["timings_ms"]) == {"retrieve", "generate", "total"}


def test_ingest_exit_code_nonzero_when_nothing_usable(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "vide.md").write_bytes(b"")
    r = run(["ingest", "--corpus", str(corpus), "--index", str(tmp_path / "index")], tmp_path)
    assert r.returncode == 1 and "vide.md" in r.stdout and "pas utilisable" in r.stdout


def test_bad_setting_is_named_in_french(tmp_path):
    r = run(["ingest", "--corpus", str(tmp_path)], tmp_path, ASSISTANT_CHUNK_TOKENS="beaucoup")
    assert r.returncode == 2
    assert "ASSISTANT_CHUNK_TOKENS" in r.stderr and "beaucoup" in r.stderr and "Traceback" not in r.stderr


def test_missing_index_says_what_to_run(tmp_path):
    r = run(["ask", "--index", str(tmp_path / "nulle-part"), "bonjour"], tmp_path)
    assert r.returncode == 2 and "assistant ingest" in r.stderr
