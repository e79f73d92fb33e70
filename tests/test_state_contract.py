"""One contract for the state store (assistant/store/state.py), run on SQLite (embedded) and on a
real PostgreSQL started by the test (tests/conftest.py ``postgres``): manifest and generations,
pinned snapshots, BM25 from the stored terms, served answers and feedback, eval jobs, the ingest
lock (also against a SIGKILLed holder), schema versions and migrations."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from assistant.errors import AssistantError
from assistant.store.db import migrate, schema_version
from assistant.store.feedback import MIGRATIONS as FEEDBACK_MIGRATIONS
from assistant.store.lock import IngestBusy
from assistant.store.manifest import FileRecord
from assistant.store.state import PostgresState, SqliteState, StateStore, open_state
from assistant.types import Answer, Chunk, Citation


@pytest.fixture(params=["sqlite", "postgresql"])
def state(request, tmp_path) -> StateStore:
    if request.param == "sqlite":
        return SqliteState(tmp_path / "index")
    url = request.getfixturevalue("postgres").new_database()
    return PostgresState(url, "contrat", retry_s=3)


def chunk(cid: str, path: str, text: str, ordinal: int = 0) -> Chunk:
    return Chunk(cid, text, text, {"source": path, "ordinal": ordinal, "doc_type": "fiche_outil"})


def commit(manifest, path: str, texts: list[str]) -> list[str]:
    from assistant.store.lexical import analyse

    chunks = [chunk(f"{path}#{i}", path, t, i) for i, t in enumerate(texts)]
    vectors = [np.full(4, i + 1, dtype=np.float32).tobytes() for i in range(len(chunks))]
    record = FileRecord(path, "h-" + path, 10, 1_700_000_000_123_456_789, "ok", None, len(chunks))
    manifest.commit_files([(record, chunks, [analyse(t) for t in texts], vectors)])
    return [c.id for c in chunks]


def test_manifest_generations_and_lexical(state):
    assert not state.exists() or state.kind == "postgresql"
    manifest = state.manifest()
    try:
        assert state.exists() and manifest.generation == 0
        ids = commit(manifest, "a.md", ["Le conseil citoyen réunit les habitants.", "Le budget participatif."])
        commit(manifest, "b.md", ["Le plan climat concerne les EPCI."])
        assert manifest.generation == 2 and manifest.count_chunks() == 3
        assert manifest.files()["a.md"].mtime_ns == 1_700_000_000_123_456_789  # 64-bit
        assert manifest.chunk_ids("a.md") == set(ids)
        got = manifest.get_chunks(ids + ["absent"])
        assert set(got) == set(ids) and got[ids[0]].metadata["source"] == "a.md"
        all_ids, metas, vectors = manifest.vectors()
        assert len(all_ids) == 3 and vectors.shape == (3, 4) and vectors.dtype == np.float32
        lexical = state.lexical(manifest)
        assert lexical.generation == 2
        assert [i for i, _ in lexical.search(["conseil", "citoyen"], k=3)] == [ids[0]]
        assert lexical.words["habitants"] == 1
        # published: what replicas serve; it moves only when an ingest says so
        assert state.published_generation() == 2  # an index older than the key: its generation
        manifest.publish()
        commit(manifest, "c.md", ["Une marche exploratoire."])
        assert manifest.generation == 3 and state.published_generation() == 2
        manifest.publish()
        assert state.published_generation() == 3
        manifest.remove_files(["c.md"])
        assert manifest.count_chunks() == 3 and "c.md" not in manifest.files()
        with pytest.raises(RuntimeError):  # a failed transaction leaves nothing
            with manifest.transaction():
                manifest.db.execute("DELETE FROM chunks")
                raise RuntimeError("boom")
        assert manifest.count_chunks() == 3
    finally:
        manifest.close()


def test_pinned_snapshot_keeps_one_generation(state):
    writer = state.manifest()
    commit(writer, "a.md", ["Le conseil citoyen réunit les habitants."])
    reader = state.manifest()
    try:
        reader.pin()
        before = reader.generation
        commit(writer, "a.md", ["Tout autre texte, sur le budget participatif."])
        commit(writer, "b.md", ["Le plan climat."])
        assert reader.generation == before and reader.count_chunks() == 1
        assert reader.get_chunks(["a.md#0"])["a.md#0"].text.startswith("Le conseil citoyen")
        reader.set("refusal_calibration", "{}")  # a write while pinned goes through a side connection
        assert writer.get("refusal_calibration") == "{}"
        reader.unpin()
        assert reader.generation == writer.generation and reader.count_chunks() == 2
    finally:
        reader.close()
        writer.close()


def answer(question: str, status: str = "answered") -> Answer:
    return Answer(question=question, standalone_question=question, answer="Réponse.", status=status,
                  citations=[Citation(1, "a.md", "A", "fiche_outil", None, None, "…", 0.5, False)])


def test_answers_feedback_and_eval_jobs(state):
    store = state.feedback()
    try:
        first = store.record_answer(answer("Comment lancer un conseil citoyen ?"), "api", {}, {"llm": "none"})
        store.record_answer(answer("Quel budget pour la lune ?", "no_answer"), "widget", {}, {})
        store.record_answer(answer("quel BUDGET pour la lune", "no_answer"), "widget", {}, {})
        assert store.add_feedback(first, rating="up", comment="Très clair")
        assert store.add_feedback(first, comment="Complété")  # completes, keeps the rating
        assert not store.add_feedback("inconnu", rating="down")
        rows = store.feedback_rows()
        assert len(rows) == 1 and rows[0]["rating"] == "up" and rows[0]["comment"] == "Complété"
        assert rows[0]["answer_id"] == first and rows[0]["question"].startswith("Comment")
        assert store.counts() == {"answers": 3, "up": 1, "down": 0}
        assert store.gaps() == [{"question": "Quel budget pour la lune ?", "count": 2, "last": store.gaps()[0]["last"]}]
        assert "Très clair" not in store.export_csv() and "Complété" in store.export_csv()
        assert [r["status"] for r in store.answer_rows()].count("no_answer") == 2
        assert store.purge_older_than(1, now=datetime.now(UTC) + timedelta(days=2)) == 3
        assert store.counts() == {"answers": 0, "up": 0, "down": 0}
    finally:
        store.close()
    jobs = state.eval_jobs()
    jobs.record("j1", "evals/gold/dev.yaml", "/tmp/r", {"running": True, "done": 3, "total": 10})
    assert jobs.running()["done"] == 3
    jobs.record("j1", "evals/gold/dev.yaml", "/tmp/r", {"running": False, "done": 10, "total": 10})
    assert jobs.running() is None and jobs.last()[0]["done"] == 10
    assert jobs.running(now=datetime.now(UTC)) is None


def test_ingest_lock_is_exclusive_and_survives_sigkill(state, tmp_path):
    manifest = state.manifest()  # the tables exist (who holds the lock is written in meta)
    manifest.close()
    first, second = state.ingest_lock(), state.ingest_lock()
    first.acquire(wait=False)
    try:
        assert second.locked()
        with pytest.raises(IngestBusy) as busy:
            second.acquire(wait=False)
        assert "déjà en cours" in str(busy.value) and str(os.getpid()) in str(busy.value)
        with pytest.raises(IngestBusy):
            second.acquire(wait=True, timeout=0.5)
    finally:
        first.release()
    assert not second.locked()
    # a holder killed by SIGKILL never leaves the lock stuck
    code = ("import sys, time; from pathlib import Path; from assistant.store.state import *; "
            f"s = {'SqliteState(Path(sys.argv[1]))' if state.kind == 'sqlite' else 'PostgresState(sys.argv[1], sys.argv[2])'}; "
            "lock = s.ingest_lock(); lock.acquire(); print('pris', flush=True); time.sleep(60)")
    arg = str(state.index_dir) if state.kind == "sqlite" else state.url
    proc = subprocess.Popen([sys.executable, "-c", code, arg, getattr(state, "collection", "")],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "pris"
        assert second.locked()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        second.acquire(wait=True, timeout=10)
        second.release()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_schema_versions_and_migration(state, tmp_path):
    store = state.feedback()
    db = store._db
    try:
        assert schema_version(db, "feedback") == len(FEEDBACK_MIGRATIONS) == 2
        # a database left at version 1 (no eval_jobs table) is migrated by the next opening
        db.execute("DROP TABLE eval_jobs")
        db.execute("UPDATE schema_version SET version=1 WHERE component='feedback'")
        assert migrate(db, "feedback", FEEDBACK_MIGRATIONS) == 2
        db.execute("SELECT COUNT(*) FROM eval_jobs").fetchone()
        # a database newer than this code is refused with a French message
        db.execute("UPDATE schema_version SET version=9 WHERE component='feedback'")
        with pytest.raises(AssistantError) as info:
            migrate(db, "feedback", FEEDBACK_MIGRATIONS)
        assert "plus récent" in str(info.value) and "mettez l'assistant à jour" in str(info.value)
    finally:
        store.close()


def test_ingest_and_search_on_postgres_keep_nothing_on_disk(postgres, settings_for, tmp_path):
    """An ingest with ASSISTANT_DATABASE_URL writes no SQLite nor pickle in the index folder; a
    second ingest with nothing new does no work; the index opens from the database alone."""
    from conftest import write_md

    from assistant.ingest import ingest
    from assistant.retrieve import open_index

    url = postgres.new_database()
    s = settings_for(database_url=url)
    write_md(s.corpus_dir / "fiches-outils/a.md", "# Conseil citoyen\n\nLe conseil citoyen réunit habitants et associations.\n")
    write_md(s.corpus_dir / "fiches-outils/b.md", "# PCAET\n\nLe plan climat-air-énergie territorial concerne les EPCI.\n")
    report = ingest(s.corpus_dir, s.index_dir, s, progress=False)
    assert report.usable and len(report.added) == 2
    assert not list(s.index_dir.glob("*.sqlite")) and not list(s.index_dir.glob("*.pkl"))
    state = open_state(s)
    assert state.kind == "postgresql" and state.published_generation() >= 1
    again = ingest(s.corpus_dir, s.index_dir, s, progress=False)
    assert again.chunks_embedded == 0 and len(again.unchanged) == 2
    index = open_index(s, pin=True)
    try:
        hits = index.search("plan climat air énergie", k=1, mode="lexical")
        assert hits[0].chunk.metadata["source"] == "fiches-outils/b.md"
        assert index.published == state.published_generation()
    finally:
        index.manifest.close()


def test_unreachable_database_is_a_clear_french_error(settings_for):
    from conftest import free_port

    from assistant.store.db import StoreUnavailable

    s = settings_for(database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/absente", db_retry_s=0.5)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as info:
        open_state(s).exists()
    assert "Base de données injoignable" in str(info.value) and "ASSISTANT_DATABASE_URL" in str(info.value)
    assert time.monotonic() - started < 10
    assert Path(s.index_dir).exists() is False


def test_feedback_while_postgres_is_down_is_refused_in_french_then_stored(postgres, settings_for):
    """PostgreSQL stopped for longer than ASSISTANT_DB_RETRY_S: the question and the feedback get a
    French 503 (nothing acknowledged, nothing lost); once it is back, the same feedback is stored
    and the app never needed a restart."""
    from conftest import write_md
    from fastapi.testclient import TestClient

    from assistant.ingest import ingest
    from assistant.web.server import create_app

    s = settings_for(database_url=postgres.new_database(), db_retry_s=1, refresh_s=0, rate_limit_per_minute=0)
    write_md(s.corpus_dir / "fiches-outils/a.md", "# Conseil citoyen\n\nLe conseil citoyen réunit habitants et associations.\n")
    assert ingest(s.corpus_dir, s.index_dir, s, progress=False).usable
    with TestClient(create_app(s, with_ui=False)) as client:
        r = client.post("/api/ask", json={"question": "Comment lancer un conseil citoyen ?"})
        assert r.status_code == 200
        answer_id = r.headers["x-answer-id"]
        postgres.stop()
        try:
            down = client.post("/api/feedback", json={"answer_id": answer_id, "rating": "up"})
            assert down.status_code == 503 and down.headers["retry-after"] == "5"
            assert "momentanément indisponible" in down.json()["detail"]
            assert "votre avis n'a pas été enregistré" in down.json()["detail"]
            ask = client.post("/api/ask", json={"question": "Comment lancer un conseil citoyen ?"})
            assert ask.status_code == 503 and "la réponse n'a pas pu être enregistrée" in ask.json()["detail"]
        finally:
            postgres.start()
        again = client.post("/api/feedback", json={"answer_id": answer_id, "rating": "up"})
        assert again.status_code == 200, again.text
        store = open_state(s).feedback()
        try:
            assert [r["answer_id"] for r in store.feedback_rows()] == [answer_id]
        finally:
            store.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_served_index_keeps_its_generation_until_an_ingest_publishes(backend, request, settings_for):
    """The web app's index is pinned to the published generation it opened: an ingest run elsewhere
    (here in the same process, as the CLI or another replica would) changes nothing it serves until
    it publishes; ``refresh`` (what the refresher thread calls) then swaps, without a restart."""
    from conftest import write_md

    from assistant.ingest import ingest
    from assistant.web.service import Service

    url = request.getfixturevalue("postgres").new_database() if backend == "postgresql" else ""
    s = settings_for(database_url=url, refresh_s=0)
    write_md(s.corpus_dir / "a.md", "# Conseil citoyen\n\nLe conseil citoyen réunit habitants et associations.\n")
    ingest(s.corpus_dir, s.index_dir, s, progress=False)
    service = Service(s)
    before = len(service.index.metadata)
    assert not service.refresh()
    write_md(s.corpus_dir / "b.md", "# Marche exploratoire\n\nUne marche exploratoire parcourt le quartier.\n")
    state = open_state(s)
    manifest = state.manifest()
    try:  # a commit that is not published yet (an ingest still running, or killed)
        commit(manifest, "z.md", ["Un passage d'une ingestion en cours."])
        assert state.published_generation() < manifest.generation
        assert not service.refresh() and len(service.index.metadata) == before
        assert service.index.manifest.count_chunks() == before  # the pinned snapshot
    finally:
        manifest.close()
    ingest(s.corpus_dir, s.index_dir, s, progress=False)
    assert service.refresh()
    sources = {m["source"] for m in service.index.metadata.values()}
    assert sources == {"a.md", "b.md"} and service.index.published == state.published_generation()
    hits = service.index.search("marche exploratoire", k=1, mode="lexical")
    assert hits[0].chunk.metadata["source"] == "b.md"
