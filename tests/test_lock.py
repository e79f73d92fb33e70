"""One ingest at a time: two real ``assistant ingest`` processes on one index are serialised (the
passages are computed once), ``--no-wait`` says in French that one is running and names its pid,
and a SIGKILLed holder never leaves the lock stuck. Fake embedder (named so), real Chroma."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from synthetic import write_corpus  # noqa: E402

from assistant.ingest import ingest  # noqa: E402
from assistant.store.lock import IndexLock, IngestBusy  # noqa: E402

ASSISTANT = Path(sys.executable).parent / "assistant"
ENV = dict(os.environ, ASSISTANT_EMBEDDING_MODEL="fake", ASSISTANT_CHROMA_COLLECTION="lock_test")


def start_ingest(corpus: Path, index: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([str(ASSISTANT), "ingest", "--corpus", str(corpus), "--index", str(index),
                             "--quiet", "--json", *extra], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.mark.integration
def test_two_concurrent_ingests_compute_the_passages_once(tmp_path):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write_corpus(corpus, 120)
    first = start_ingest(corpus, index)
    second = start_ingest(corpus, index)
    outs = [p.communicate(timeout=300) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outs
    reports = [json.loads(out) for out, _ in outs]
    total = reports[0]["chunks"]
    assert total > 300 and reports[1]["chunks"] == total
    # one of them did all the work, the other waited and found everything up to date
    assert sorted(r["chunks_embedded"] for r in reports) == [0, total]
    assert sorted(len(r["added"]) for r in reports) == [0, 120]
    waited = [err for _, err in outs if "déjà en cours" in err]
    assert len(waited) == 1 and "attente" in waited[0]


def test_no_wait_names_the_running_ingest(tmp_path, settings_for):
    settings = settings_for()
    (settings.corpus_dir / "a.md").parent.mkdir(parents=True)
    (settings.corpus_dir / "a.md").write_text("# Titre\n\nUn texte sur le conseil citoyen.\n", encoding="utf-8")
    lock = IndexLock(settings.index_dir)
    lock.acquire()
    try:
        proc = start_ingest(settings.corpus_dir, settings.index_dir, "--no-wait")
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 3
        assert "Une indexation est déjà en cours" in err and f"processus {os.getpid()}" in err
        with pytest.raises(IngestBusy):
            ingest(settings.corpus_dir, settings.index_dir, settings, progress=False, wait=False)
        t0 = time.monotonic()
        with pytest.raises(IngestBusy):
            ingest(settings.corpus_dir, settings.index_dir, settings, progress=False, timeout=0.5)
        assert time.monotonic() - t0 >= 0.5
    finally:
        lock.release()
    assert not lock.locked()
    report = ingest(settings.corpus_dir, settings.index_dir, settings, progress=False, wait=False)
    assert report.usable


def test_a_killed_holder_never_leaves_the_lock_stuck(tmp_path):
    index = tmp_path / "index"
    code = ("import sys, time; from pathlib import Path; from assistant.store.lock import IndexLock; "
            f"IndexLock(Path({str(index)!r})).acquire(); print('pris', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "pris"
        lock = IndexLock(index)
        assert lock.locked() and lock.holder()["pid"] == proc.pid
        with pytest.raises(IngestBusy, match=f"processus {proc.pid}"):
            lock.acquire(wait=False)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not lock.locked()
    lock.acquire(wait=False)  # free at once: the kernel released the dead process's flock
    assert lock.holder()["pid"] == os.getpid()
    lock.release()
