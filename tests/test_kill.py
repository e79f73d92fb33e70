"""Crash safety, for real: ``assistant ingest`` is SIGKILLed mid-run, repeatedly, in a subprocess.

After each kill the index must open and answer from a consistent state (every chunk the manifest
lists has its vector; nothing outside the manifest is returned), and a final run must complete the
work and end with exactly the index a clean build gives. Uses the fake embedder (named so) to keep
the test fast; the store is the real embedded Chroma.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from synthetic import write_corpus  # noqa: E402

from assistant.retrieve import open_index  # noqa: E402
from assistant.store.vector import open_vector_store  # noqa: E402

ASSISTANT = Path(sys.executable).parent / "assistant"


def run_ingest(corpus: Path, index: Path, kill_after: float | None) -> int | None:
    env = dict(os.environ, ASSISTANT_EMBEDDING_MODEL="fake", ASSISTANT_CHROMA_COLLECTION="kill_test")
    proc = subprocess.Popen([str(ASSISTANT), "ingest", "--corpus", str(corpus), "--index", str(index), "--quiet"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if kill_after is None:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()
        return 0
    time.sleep(kill_after)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return None  # killed mid-run
    return proc.returncode


def check_consistent(settings) -> tuple[set[str], set[str]]:
    index = open_index(settings)
    manifest_ids = index.manifest.chunk_ids()
    store_ids = open_vector_store(settings, settings.index_dir).ids()
    assert manifest_ids <= store_ids, "every chunk listed in the manifest has its vector"
    if manifest_ids:
        hits = index.search("conseil citoyen budget habitants", k=10)
        assert hits and all(h.chunk.id in manifest_ids for h in hits)
    index.manifest.close()
    return manifest_ids, store_ids


@pytest.mark.integration
def test_sigkill_at_any_moment_leaves_a_consistent_index(tmp_path, settings_for):
    corpus = tmp_path / "corpus"
    write_corpus(corpus, 400)
    settings = settings_for(corpus_dir=corpus, index_dir=tmp_path / "index", chroma_collection="kill_test")
    kills = 0
    delay = 1.5  # python + chroma start-up; the work itself comes after
    for _ in range(12):
        code = run_ingest(corpus, settings.index_dir, delay)
        if code is None:
            kills += 1
            if (settings.index_dir / "manifest.sqlite").exists():
                check_consistent(settings)
        delay += 0.7
        if code == 0:
            break
    assert kills >= 2, "the ingest must have been killed mid-run at least twice"
    # change the corpus between a kill and the recovery: one file edited, one removed
    (corpus / "fiches-experiences/synthetique-0001.md").unlink()
    f = corpus / "fiches-experiences/synthetique-0002.md"
    f.write_text(f.read_text(encoding="utf-8") + "\nUn paragraphe ajouté après la panne.\n", encoding="utf-8")
    run_ingest(corpus, settings.index_dir, None)
    manifest_ids, store_ids = check_consistent(settings)
    assert manifest_ids == store_ids, "the run after the kills removed the orphan vectors"
    # same result as a clean build
    clean = settings_for(corpus_dir=corpus, index_dir=tmp_path / "clean", chroma_collection="kill_test")
    run_ingest(corpus, clean.index_dir, None)
    clean_ids, _ = check_consistent(clean)
    assert manifest_ids == clean_ids and len(manifest_ids) > 1000
