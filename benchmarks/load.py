"""A small load generator: C concurrent clients (asyncio + httpx, one connection each) sending
``POST /api/ask`` for a duration or a number of requests; prints requests/s, p50/p95 latency and
the errors by status. Used by tests/test_replicas.py and by benchmarks/workers.py.

    .venv/bin/python benchmarks/load.py http://127.0.0.1:7860 --clients 100 --requests 5

The simulated clients all come from 127.0.0.1: run the server with ASSISTANT_RATE_LIMIT_PER_MINUTE=0
and ASSISTANT_MAX_CONNECTIONS above the number of clients. On a 2-core machine the load generator
shares the CPU with the servers it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

QUESTIONS = [
    "Comment lancer un conseil citoyen dans un quartier ?",
    "Quel budget prévoir pour une concertation préalable ?",
    "Comment mobiliser les jeunes dans un budget participatif ?",
    "Qu'est-ce qu'un projet alimentaire territorial ?",
    "Comment animer un diagnostic partagé ?",
    "Quels acteurs associer à un plan climat ?",
]


@dataclass
class LoadResult:
    """What one load run measured; ``events`` = (start, end, status) of every request (monotonic s)."""

    clients: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[Any] = field(default_factory=Counter)
    events: list[tuple[float, float, Any]] = field(default_factory=list)
    answer_ids: list[str] = field(default_factory=list)

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s != 200)

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> dict[str, Any]:
        return {"clients": self.clients, "requests": len(self.events), "ok": self.ok, "errors": self.errors,
                "statuses": {str(k): v for k, v in self.statuses.items()}, "seconds": round(self.seconds, 2),
                "rps": round(self.rps, 1), "p50_ms": round(1000 * self.pct(0.5)),
                "p95_ms": round(1000 * self.pct(0.95)),
                "mean_ms": round(1000 * statistics.fmean(self.latencies)) if self.latencies else None}


async def _client(i: int, url: str, result: LoadResult, stop: float | None, count: int | None,
                  t0: float) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        n = 0
        while (count is None or n < count) and (stop is None or time.monotonic() < stop):
            question = QUESTIONS[(i + n) % len(QUESTIONS)]
            start = time.monotonic()
            try:
                response = await client.post("/api/ask", json={"question": question})
                status: Any = response.status_code
                if status == 200:
                    result.answer_ids.append(response.headers.get("x-answer-id", ""))
            except httpx.HTTPError as exc:
                status = exc.__class__.__name__
            end = time.monotonic()
            result.events.append((start - t0, end - t0, status))
            result.statuses[status] += 1
            if status == 200:
                result.latencies.append(end - start)
            n += 1


async def _run(url: str, clients: int, requests: int | None, duration: float | None) -> LoadResult:
    result = LoadResult(clients)
    t0 = time.monotonic()
    stop = t0 + duration if duration else None
    await asyncio.gather(*(_client(i, url, result, stop, requests, t0) for i in range(clients)))
    result.seconds = time.monotonic() - t0
    return result


def run_load(url: str, clients: int, requests: int | None = None, duration: float | None = None) -> LoadResult:
    """``clients`` concurrent clients, each sending ``requests`` questions (or for ``duration`` s)."""
    return asyncio.run(_run(url, clients, requests, duration))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--requests", type=int, default=5, help="per client")
    args = parser.parse_args()
    print(json.dumps(run_load(args.url, args.clients, args.requests).summary(), ensure_ascii=False))


if __name__ == "__main__":
    main()
