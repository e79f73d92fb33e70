"""Two replicas for real on 127.0.0.1: a PostgreSQL started by the tests (initdb/pg_ctl), a
``chroma run`` server, two ``assistant serve`` processes (each with its own empty index folder) and
Debian's nginx running deploy/nginx.conf (only its ports replaced). Fake embedder (named so), real
everything else. Faults: a replica SIGKILLed under load, PostgreSQL restarted while feedback is
sent, an ingest SIGKILLed while the replicas serve. The figures (100 clients, two replicas against
one in the same run) are printed and written to ``replicas-figures.json`` in the test's folder."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, free_port, missing

sys.path.insert(0, str(ROOT / "benchmarks"))
from load import run_load  # noqa: E402
from synthetic import write_corpus  # noqa: E402

pytestmark = [pytest.mark.faults, pytest.mark.integration]
BIN = Path(sys.executable).parent
CLIENTS = 100


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if not found:
        missing("nginx")
    return str(found)


def wait_http(url: str, proc: subprocess.Popen, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"{url} : le processus s'est arrêté ({proc.returncode}) : {out[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} ne répond pas après {seconds} s")


class Cluster:
    def __init__(self, root: Path, postgres) -> None:
        self.root, self.postgres = root, postgres
        self.db_url = postgres.new_database()
        self.corpus = root / "corpus"
        write_corpus(self.corpus, 40)
        self.chroma_port = free_port()
        self.chroma = subprocess.Popen(
            [str(BIN / "chroma"), "run", "--path", str(root / "chroma"), "--host", "127.0.0.1",
             "--port", str(self.chroma_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "ANONYMIZED_TELEMETRY": "False"})
        self.ports = [free_port(), free_port()]
        self.replicas: list[subprocess.Popen | None] = [None, None]
        self.nginx: subprocess.Popen | None = None
        self.nginx_port = free_port()

    def env(self, name: str) -> dict[str, str]:
        return {**os.environ, "ASSISTANT_DATABASE_URL": self.db_url,
                "ASSISTANT_CHROMA_URL": f"http://127.0.0.1:{self.chroma_port}",
                "ASSISTANT_CHROMA_COLLECTION": "replicas", "ASSISTANT_CORPUS_DIR": str(self.corpus),
                "ASSISTANT_INDEX_DIR": str(self.root / name), "ASSISTANT_EMBEDDING_MODEL": "fake",
                "ASSISTANT_RATE_LIMIT_PER_MINUTE": "0", "ASSISTANT_MAX_CONNECTIONS": "400",
                "ASSISTANT_FORWARDED_ALLOW_IPS": "127.0.0.1", "ASSISTANT_REFRESH_S": "0.5",
                "ASSISTANT_DB_RETRY_S": "15", "GRADIO_ANALYTICS_ENABLED": "False",
                "ANONYMIZED_TELEMETRY": "False", "HF_HUB_OFFLINE": "1"}

    def ingest(self, name: str = "ingest") -> subprocess.Popen:
        return subprocess.Popen([str(BIN / "assistant"), "ingest", "--quiet", "--json"], env=self.env(name),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=self.root)

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.ports[i]}"

    @property
    def proxy(self) -> str:
        return f"http://127.0.0.1:{self.nginx_port}"

    def start_replica(self, i: int) -> None:
        proc = subprocess.Popen([str(BIN / "assistant"), "serve", "--port", str(self.ports[i])],
                                env=self.env(f"replica-{i}"), cwd=self.root, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        self.replicas[i] = proc
        wait_http(self.url(i) + "/health", proc)

    def kill_replica(self, i: int) -> None:
        proc = self.replicas[i]
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)

    def start_nginx(self) -> None:
        prefix = self.root / "nginx"
        (prefix / "tmp").mkdir(parents=True, exist_ok=True)
        conf = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
        conf = conf.replace("127.0.0.1:8080", f"127.0.0.1:{self.nginx_port}")
        conf = conf.replace("127.0.0.1:7861", f"127.0.0.1:{self.ports[0]}")
        conf = conf.replace("127.0.0.1:7862", f"127.0.0.1:{self.ports[1]}")
        (prefix / "nginx.conf").write_text(conf, encoding="utf-8")
        self.nginx = subprocess.Popen([nginx_binary(), "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
                                       "-e", str(prefix / "error.log"), "-g", "daemon off;"],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wait_http(self.proxy + "/health", self.nginx, 30)

    def health(self, i: int) -> dict:
        return httpx.get(self.url(i) + "/health", timeout=5).json()

    def sql(self, query: str, *params: object) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.db_url, autocommit=True) as conn:
            return conn.execute(query, params or None).fetchall()

    def meta(self, key: str) -> str | None:
        rows = self.sql("SELECT value FROM meta WHERE key=%s", key)
        return rows[0][0] if rows else None

    def close(self) -> None:
        for proc in [*self.replicas, self.nginx, self.chroma]:
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()


@pytest.fixture(scope="module")
def cluster(postgres, tmp_path_factory):
    nginx_binary()
    c = Cluster(tmp_path_factory.mktemp("replicas"), postgres)
    try:
        wait_http(f"http://127.0.0.1:{c.chroma_port}/api/v2/heartbeat", c.chroma, 60)
        proc = c.ingest()
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        for i in (0, 1):
            c.start_replica(i)
        c.start_nginx()
        yield c
    finally:
        c.close()


def wait_until(check, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


def test_replicas_share_the_state_and_follow_a_new_generation(cluster):
    before = cluster.health(0)["passages"]
    assert before > 0 and cluster.health(1)["passages"] == before
    assert not list((cluster.root / "replica-0").glob("*.sqlite")), "the state is in PostgreSQL"
    # an answer served through nginx takes feedback on the other replica (shared store)
    r = httpx.post(cluster.proxy + "/api/ask", json={"question": "Comment lancer un conseil citoyen ?"}, timeout=30)
    assert r.status_code == 200
    answer_id = r.headers["x-answer-id"]
    for i in (0, 1):
        f = httpx.post(cluster.url(i) + "/api/feedback", json={"answer_id": answer_id, "rating": "up"}, timeout=30)
        assert f.status_code == 200, f.text
    assert cluster.sql("SELECT rating FROM feedback WHERE answer_id=%s", answer_id) == [("up",)]
    # an ingest elsewhere publishes a new generation: both replicas switch, without a restart
    (cluster.corpus / "fiches-outils").mkdir(exist_ok=True)
    (cluster.corpus / "fiches-outils" / "marche-exploratoire.md").write_text(
        "# Marche exploratoire\n\nUne marche exploratoire réunit des habitantes qui parcourent le quartier "
        "et notent ce qui gêne leurs déplacements, avec les services de la ville.\n", encoding="utf-8")
    proc = cluster.ingest()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    after = json.loads(out)["chunks"]
    assert after > before
    assert wait_until(lambda: all(cluster.health(i)["passages"] == after for i in (0, 1)), 15)
    hit = httpx.post(cluster.proxy + "/api/ask", json={"question": "Qu'est-ce qu'une marche exploratoire ?"},
                     timeout=30).json()
    assert any(c["source"].endswith("marche-exploratoire.md") for c in hit["citations"])
    for proc in cluster.replicas:
        assert proc.poll() is None


def test_100_clients_on_two_replicas_against_one(cluster):
    """The target's figures, measured in one run: 0 errors, p95, requests/s through nginx on two
    replicas against one replica alone (same machine: on 2 cores the CPU is the ceiling)."""
    run_load(cluster.url(0), 10, requests=2)  # warm both paths
    run_load(cluster.proxy, 10, requests=2)
    one = run_load(cluster.url(0), CLIENTS, requests=4)
    two = run_load(cluster.proxy, CLIENTS, requests=4)
    figures = {"one_replica": one.summary(), "two_replicas_nginx": two.summary(),
               "ratio": round(two.rps / one.rps, 2) if one.rps else None, "cpus": os.cpu_count(),
               "load_average": os.getloadavg()}
    print("\nFIGURES " + json.dumps(figures, ensure_ascii=False))
    (cluster.root / "replicas-figures.json").write_text(json.dumps(figures, indent=1), encoding="utf-8")
    assert one.errors == 0, one.statuses
    assert two.errors == 0, two.statuses
    assert one.ok == two.ok == CLIENTS * 4


def test_a_replica_killed_under_load_costs_only_its_requests_in_flight(cluster):
    killed_at: list[float] = []
    t0 = time.monotonic()

    def kill() -> None:
        time.sleep(3)
        killed_at.append(time.monotonic() - t0)
        cluster.kill_replica(1)

    killer = threading.Thread(target=kill)
    killer.start()
    result = run_load(cluster.proxy, 40, duration=9)
    killer.join()
    errors = [(s, e, st) for s, e, st in result.events if st != 200]
    print(f"\nKILL errors={len(errors)} ok={result.ok} statuses={dict(result.statuses)}")
    # only requests already in flight on the dead replica fail: started before the kill, ended just after
    assert len(errors) <= 40, errors
    assert all(s <= killed_at[0] + 0.5 for s, _, _ in errors), errors
    late = [st for s, _, st in result.events if s > killed_at[0] + 1.0]
    assert late and all(st == 200 for st in late), "after the kill, the other replica serves everything"
    assert cluster.replicas[0].poll() is None
    cluster.start_replica(1)  # back for the next tests
    assert wait_until(lambda: cluster.health(1)["passages"] == cluster.health(0)["passages"])


def test_postgres_restart_loses_no_answer_and_no_feedback(cluster):
    """Questions and feedback sent while PostgreSQL restarts: each one is stored, or refused with
    a French 503; none is acknowledged and lost. Service comes back by itself."""
    acked_answers: list[str] = []
    acked_feedback: list[str] = []
    refused: list[str] = []
    other: list[tuple] = []
    stop = time.monotonic() + 10
    t_restart: list[float] = []

    def client(i: int) -> None:
        with httpx.Client(base_url=cluster.proxy if i % 2 else cluster.url(i % 2), timeout=60) as http:
            n = 0
            while time.monotonic() < stop:
                n += 1
                r = http.post("/api/ask", json={"question": f"Comment lancer un conseil citoyen ? ({i}-{n})"})
                if r.status_code == 503:
                    refused.append(r.json()["detail"])
                    continue
                if r.status_code != 200:
                    other.append(("ask", r.status_code, r.text))
                    continue
                answer_id = r.headers["x-answer-id"]
                acked_answers.append(answer_id)
                f = http.post("/api/feedback", json={"answer_id": answer_id, "rating": "down", "comment": f"c{i}-{n}"})
                if f.status_code == 200:
                    acked_feedback.append(answer_id)
                elif f.status_code == 503:
                    refused.append(f.json()["detail"])
                else:
                    other.append(("feedback", f.status_code, f.text))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    time.sleep(2)
    t_restart.append(time.monotonic())
    cluster.postgres.restart()
    t_restart.append(time.monotonic())
    for t in threads:
        t.join()
    print(f"\nPG-RESTART answers={len(acked_answers)} feedback={len(acked_feedback)} refused={len(refused)} "
          f"restart={t_restart[1] - t_restart[0]:.1f}s")
    assert not other, other[:3]
    assert all("momentanément indisponible" in m and "Réessayez" in m for m in refused)
    stored_answers = {r[0] for r in cluster.sql("SELECT id FROM answers")}
    stored_feedback = {r[0] for r in cluster.sql("SELECT answer_id FROM feedback WHERE rating='down'")}
    assert set(acked_answers) <= stored_answers, "every answer served is stored"
    assert set(acked_feedback) <= stored_feedback, "every feedback acknowledged is stored"
    assert len(acked_feedback) > 20
    # back without any restart of the replicas
    for i in (0, 1):
        r = httpx.post(cluster.url(i) + "/api/ask", json={"question": "Qu'est-ce qu'un budget participatif ?"},
                       timeout=30)
        assert r.status_code == 200 and cluster.replicas[i].poll() is None


def test_ingest_sigkilled_while_replicas_serve(cluster):
    """An ingest killed midway publishes nothing: both replicas keep serving the previous
    generation; the next ingest completes and both switch to it."""
    published = int(cluster.meta("published"))
    passages = cluster.health(0)["passages"]
    write_corpus(cluster.corpus / "lot", 300, seed=11)
    proc = cluster.ingest()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if int(cluster.meta("generation")) > published:  # at least one group of files committed
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the ingest ended before it could be killed: " + proc.communicate()[1]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert cluster.meta("in_progress") == "1" and int(cluster.meta("published")) == published
    served = run_load(cluster.proxy, 10, requests=3)
    assert served.errors == 0, served.statuses
    time.sleep(1.5)  # three refresh periods: nothing to switch to
    assert cluster.health(0)["passages"] == passages and cluster.health(1)["passages"] == passages
    proc = cluster.ingest()
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    total = json.loads(out)["chunks"]
    assert total > passages and int(cluster.meta("published")) > published and cluster.meta("in_progress") == "0"
    assert wait_until(lambda: all(cluster.health(i)["passages"] == total for i in (0, 1)), 20)
