"""The embedding runtimes side by side, in one run: passages/s, query time, fidelity.

    .venv/bin/python benchmarks/embed.py                  # 256 passages of the index, 3 rounds
    .venv/bin/python benchmarks/embed.py --passages 648 --rounds 5 --threads 2

Texts: the ``embed_text`` of the passages of the built index (``assistant ingest`` first), so the
lengths are those of the real corpus. Each round times every runtime in turn (torch fp32 through
sentence-transformers, ONNX fp32, ONNX int8), so that a busy machine slows them alike; the figures
are medians over rounds, the ratios are against torch in the same run. Also printed: the median
time to embed one question, and the cosine between each runtime's vectors and torch's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from assistant.embedders import get_embedder  # noqa: E402
from assistant.settings import load_settings  # noqa: E402
from assistant.store.manifest import Manifest  # noqa: E402

RUNTIMES = ("torch", "onnx", "onnx-int8")
QUESTIONS = ["Comment lancer un conseil citoyen ?", "C'est quoi un PETR ?", "Qui finance un tiers-lieu ?",
             "Combien de membres dans un conseil de développement ?", "Comment associer les habitants à un PCAET ?"]


def passages(n: int) -> list[str]:
    settings = load_settings()
    manifest = Manifest(settings.index_dir / "manifest.sqlite")
    chunks = manifest.get_chunks(sorted(manifest.chunk_ids()))
    texts = [c.embed_text for c in chunks.values()]
    manifest.close()
    if not texts:
        sys.exit("Index vide : lancez d'abord .venv/bin/assistant ingest")
    return texts[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="fils de calcul (0 = automatique)")
    args = parser.parse_args()
    texts = passages(args.passages)
    embedders = {r: get_embedder(load_settings(embedding_runtime=r, torch_threads=args.threads)) for r in RUNTIMES}
    for e in embedders.values():  # warm-up
        e.embed_batch(texts[:8], "passage")
    times: dict[str, list[float]] = {r: [] for r in RUNTIMES}
    queries: dict[str, list[float]] = {r: [] for r in RUNTIMES}
    vectors: dict[str, np.ndarray] = {}
    for _ in range(args.rounds):
        for runtime, embedder in embedders.items():
            start = time.perf_counter()
            vectors[runtime] = embedder.embed_batch(texts, "passage")
            times[runtime].append(time.perf_counter() - start)
            for q in QUESTIONS:
                start = time.perf_counter()
                embedder.embed_batch([q], "query")
                queries[runtime].append(time.perf_counter() - start)
    base = statistics.median(times["torch"])
    base_q = statistics.median(queries["torch"])
    print(f"{len(texts)} passages, {args.rounds} tours, fils : {args.threads or 'auto'}, {os.cpu_count()} cœurs")
    print(f"{'exécution':<10} {'passages/s':>10} {'× torch':>8} {'question ms':>12} {'× torch':>8} {'cos min':>8} {'cos méd':>8}")
    for runtime in RUNTIMES:
        t = statistics.median(times[runtime])
        q = statistics.median(queries[runtime])
        cos = (vectors[runtime] * vectors["torch"]).sum(axis=1)
        print(f"{runtime:<10} {len(texts) / t:>10.1f} {base / t:>8.2f} {q * 1000:>12.1f} {q / base_q:>8.2f} "
              f"{cos.min():>8.4f} {float(np.median(cos)):>8.4f}")


if __name__ == "__main__":
    main()
