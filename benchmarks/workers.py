"""``assistant serve --workers N``: requests/s and p50/p95 of ``POST /api/ask`` under C concurrent
clients, for each N, in one run (same machine, same moment), on the sample corpus's index with
the real embedding model. Prints one JSON line per N and the ratio to N=1, with ``uptime``.

    .venv/bin/python benchmarks/workers.py                       # N = 1, 2 ; 50 clients x 4 questions
    .venv/bin/python benchmarks/workers.py --workers 1,2,3 --clients 100

The per-client rate limit is off (every simulated client is 127.0.0.1). The load generator
(benchmarks/load.py) runs on the same cores as the servers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import run_load  # noqa: E402
from serve import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PY = ROOT / ".venv" / "bin" / "python"


def measure(workers: int, clients: int, requests: int, env: dict[str, str]) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([str(PY), "-m", "assistant.cli", "serve", "--port", str(port), "--workers", str(workers)],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        run_load(url, max(clients // 5, workers * 4), requests=2)  # every worker warm
        result = run_load(url, clients, requests=requests).summary()
        return {"workers": workers, **result}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=4, help="questions par client")
    parser.add_argument("--index", default=str(ROOT / "index"))
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False",
           "GRADIO_ANALYTICS_ENABLED": "False", "ASSISTANT_RATE_LIMIT_PER_MINUTE": "0",
           "ASSISTANT_MAX_CONNECTIONS": str(args.clients * 3), "ASSISTANT_INDEX_DIR": args.index}
    if not (Path(args.index) / "manifest.sqlite").exists():
        subprocess.run([str(PY), "-m", "assistant.cli", "ingest", "--quiet", "--index", args.index], env=env,
                       check=True, cwd=ROOT)
    rows = [measure(int(n), args.clients, args.requests, env) for n in args.workers.split(",")]
    for row in rows:
        row["ratio_to_first"] = round(row["rps"] / rows[0]["rps"], 2) if rows[0]["rps"] else None
        print(json.dumps(row, ensure_ascii=False))
    print("cpus", os.cpu_count(), "uptime", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
