"""Web app figures: cold start to the first ``/health`` 200, idle RSS, ``/api/ask`` latency
(p50 / p95) and errors under 1, 10 and 50 concurrent clients, the widget path's time to the first
streamed token (``POST /api/ask/stream``, warm, 1 client) and the catalogue's response time
(``GET /catalogue``, with and without a filter). Everything on 127.0.0.1.

    .venv/bin/python benchmarks/serve.py                 # sample corpus index (built if missing)
    .venv/bin/python benchmarks/serve.py --rounds 5      # requests per client and level

The server runs as a subprocess (``assistant serve``) with the default settings (real embedding
model), except the per-client rate limit, disabled here because every simulated client comes from
127.0.0.1. Questions come from evals/gold/dev.yaml (answerable and not), in a fixed order.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
PY = ROOT / ".venv" / "bin" / "python"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run_level(url: str, questions: list[str], clients: int, rounds: int) -> dict[str, float]:
    def client(n: int) -> tuple[list[float], int]:
        latencies, errors = [], 0
        with httpx.Client(base_url=url, timeout=120) as http:
            for r in range(rounds):
                question = questions[(n * rounds + r) % len(questions)]
                t0 = time.perf_counter()
                try:
                    resp = http.post("/api/ask", json={"question": question, "history": [], "filters": {}})
                    ok = resp.status_code == 200 and resp.json()["status"] in ("answered", "no_answer")
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - t0)
                errors += 0 if ok else 1
        return latencies, errors

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(pool.map(client, range(clients)))
    wall = time.perf_counter() - t0
    latencies = [x for lat, _ in results for x in lat]
    return {"clients": clients, "requests": len(latencies), "errors": sum(e for _, e in results),
            "p50_ms": 1000 * statistics.median(latencies), "p95_ms": 1000 * percentile(latencies, 0.95),
            "rps": len(latencies) / wall}


def first_token(url: str, questions: list[str], n: int) -> dict[str, float]:
    """Median time to the first « token » event and to the final « answer » event (1 client)."""
    firsts, totals = [], []
    with httpx.Client(base_url=url, timeout=120) as http:
        for i in range(n):
            body = {"question": questions[i % len(questions)], "history": [], "filters": {}, "channel": "widget"}
            t0 = time.perf_counter()
            first = None
            with http.stream("POST", "/api/ask/stream", json=body) as resp:
                for line in resp.iter_lines():
                    if first is None and line.startswith("event: token"):
                        first = time.perf_counter() - t0
            totals.append(time.perf_counter() - t0)
            firsts.append(first if first is not None else totals[-1])
    return {"first_ms": 1000 * statistics.median(firsts), "first_p95_ms": 1000 * percentile(firsts, 0.95),
            "total_ms": 1000 * statistics.median(totals)}


def catalogue_times(url: str, n: int) -> dict[str, float]:
    out = {}
    with httpx.Client(base_url=url, timeout=60) as http:
        for name, params in (("catalogue", {}), ("catalogue_filtre", {"type": "fiche_experience",
                                                                       "departement": "Gironde"})):
            times = []
            for _ in range(n):
                t0 = time.perf_counter()
                http.get("/catalogue", params=params).raise_for_status()
                times.append(time.perf_counter() - t0)
            out[name] = 1000 * statistics.median(times)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", default=str(ROOT / "index"))
    parser.add_argument("--rounds", type=int, default=4, help="requêtes par client et par niveau")
    parser.add_argument("--levels", default="1,10,50")
    parser.add_argument("--stream", type=int, default=20, help="questions du widget (premier jeton)")
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False",
           "GRADIO_ANALYTICS_ENABLED": "False", "ASSISTANT_RATE_LIMIT_PER_MINUTE": "0",
           "ASSISTANT_INDEX_DIR": args.index}
    if not (Path(args.index) / "manifest.sqlite").exists():
        print("Index absent : construction (assistant ingest)…", flush=True)
        subprocess.run([str(PY), "-m", "assistant.cli", "ingest", "--quiet", "--index", args.index], env=env,
                       check=True, cwd=ROOT)
    entries = yaml.safe_load((ROOT / "evals/gold/dev.yaml").read_text(encoding="utf-8"))
    questions = [e["question"] for e in entries if not e.get("history")]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(PY), "-m", "assistant.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        cold = None
        while time.perf_counter() - t0 < 300:
            if proc.poll() is not None:
                print(f"Le serveur s'est arrêté (code {proc.returncode}).")
                return 1
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    cold = time.perf_counter() - t0
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        if cold is None:
            print("Pas de /health 200 en 300 s.")
            return 1
        time.sleep(2)
        idle = rss_mb(proc.pid)
        print(f"cold start to first /health 200: {cold:.2f} s (model loaded and warmed up)")
        print(f"idle RSS: {idle:.0f} MB")
        httpx.post(url + "/api/ask", json={"question": questions[0]}, timeout=120)  # first real question
        print(f"{'clients':>7} {'requests':>8} {'errors':>6} {'p50 ms':>8} {'p95 ms':>8} {'req/s':>6}")
        for level in (int(x) for x in args.levels.split(",")):
            r = run_level(url, questions, level, args.rounds)
            print(f"{r['clients']:>7} {r['requests']:>8} {r['errors']:>6} {r['p50_ms']:>8.0f} {r['p95_ms']:>8.0f} "
                  f"{r['rps']:>6.1f}", flush=True)
        print(f"RSS after load: {rss_mb(proc.pid):.0f} MB")
        if args.stream:
            t = first_token(url, questions, args.stream)
            print(f"widget stream, 1 client, {args.stream} questions: first token p50 {t['first_ms']:.0f} ms, "
                  f"p95 {t['first_p95_ms']:.0f} ms; whole answer p50 {t['total_ms']:.0f} ms (target first token < 300 ms)")
            c = catalogue_times(url, 20)
            print(f"GET /catalogue p50 {c['catalogue']:.1f} ms; filtered (type + département) p50 "
                  f"{c['catalogue_filtre']:.1f} ms (20 requests each)")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
