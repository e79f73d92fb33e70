"""One contract that every vector store must pass: in-memory, embedded Chroma, Chroma server."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from assistant.store.vector import ChromaStore, MemoryStore, open_vector_store

CHROMA = Path(sys.executable).parent / "chroma"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    """A real ``chroma run`` on 127.0.0.1, stopped after the module."""
    port = free_port()
    data = tmp_path_factory.mktemp("chroma-server")
    proc = subprocess.Popen([str(CHROMA), "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("le serveur Chroma n'a pas démarré")
    yield url
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(params=["memory", "chroma-embedded", "chroma-server"])
def store(request, settings_for, tmp_path):
    if request.param == "memory":
        return MemoryStore()
    if request.param == "chroma-embedded":
        return open_vector_store(settings_for(), tmp_path / "idx")
    url = request.getfixturevalue("chroma_server")
    s = ChromaStore.from_settings(settings_for(chroma_url=url, chroma_collection=f"c{time.time_ns()}"), tmp_path / "idx")
    return s


def unit(*xs: float) -> np.ndarray:
    v = np.array(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_store_contract(store):
    vectors = np.stack([unit(1, 0, 0), unit(0, 1, 0), unit(1, 1, 0)])
    store.add(["a", "b", "c"], vectors, [{"doc_type": "fiche_outil", "themes": ["x", "y"]},
                                         {"doc_type": "rapport", "page": 2}, {"doc_type": "rapport", "section": None}])
    assert store.count() == 3 and store.ids() == {"a", "b", "c"}
    got = store.query(unit(1, 0.1, 0), k=2)
    assert [i for i, _ in got] == ["a", "c"] and got[0][1] > got[1][1] > 0.5
    assert [i for i, _ in store.query(unit(1, 0, 0), k=5, where={"doc_type": "rapport"})] == ["c", "b"]
    store.add(["a"], np.stack([unit(0, 0, 1)]), [{"doc_type": "fiche_outil"}])  # upsert
    assert store.count() == 3 and store.query(unit(0, 0, 1), k=1)[0][0] == "a"
    store.delete(["b", "zzz"])
    assert store.ids() == {"a", "c"}
    store.reset()
    assert store.count() == 0 and store.query(unit(1, 0, 0), k=3) == []


@pytest.mark.integration
def test_ingest_and_query_through_chroma_server(chroma_server, settings_for, tmp_path):
    from conftest import write_md

    from assistant.ingest import ingest
    from assistant.retrieve import open_index

    s = settings_for(chroma_url=chroma_server, chroma_collection="serveur_test")
    write_md(s.corpus_dir / "fiches-outils/a.md", "# Conseil citoyen\n\nLe conseil citoyen réunit habitants et associations.\n")
    write_md(s.corpus_dir / "fiches-outils/b.md", "# PCAET\n\nLe plan climat-air-énergie territorial concerne les EPCI.\n")
    r = ingest(s.corpus_dir, s.index_dir, s, progress=False)
    assert r.usable and len(r.added) == 2
    assert not (s.index_dir / "chroma").exists(), "server mode must not write an embedded Chroma"
    index = open_index(s)
    assert index.store.count() == r.chunks_total
    hits = index.search("plan climat air énergie", k=1, mode="dense")
    assert hits[0].chunk.metadata["source"] == "fiches-outils/b.md"


def test_unreachable_server_is_a_clear_french_error(settings_for, tmp_path):
    from assistant.errors import IndexStateError

    with pytest.raises(IndexStateError) as info:
        ChromaStore.from_settings(settings_for(chroma_url=f"http://127.0.0.1:{free_port()}"), tmp_path)
    assert "Serveur Chroma injoignable" in str(info.value) and "ASSISTANT_CHROMA_URL" in str(info.value)
