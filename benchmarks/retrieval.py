"""Retrieval quality on a gold set: hit@1 / hit@3 of gold sources for BM25, dense and hybrid.

    .venv/bin/python benchmarks/retrieval.py --set evals/gold/dev.yaml --index index
    ASSISTANT_EMBEDDING_MODEL=all-MiniLM-L6-v2 .venv/bin/python benchmarks/retrieval.py --index /tmp/idx-minilm

Only answerable questions count; for two-turn questions the previous question is prepended.
The index must have been built with the same ASSISTANT_EMBEDDING_MODEL.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import yaml


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--set", default="evals/gold/dev.yaml")
    parser.add_argument("--index", default="index")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from assistant.retrieve import open_index
    from assistant.settings import load_settings

    settings = load_settings(index_dir=Path(args.index))
    index = open_index(settings)
    entries = [e for e in yaml.safe_load(Path(args.set).read_text(encoding="utf-8"))
               if e.get("expected_status") == "answered" and e.get("gold_sources")]
    index.search("échauffement", k=1)  # load the model once
    print(f"jeu : {args.set} ({len(entries)} questions) ; modèle : {settings.embedding_model}")
    for mode in ("lexical", "dense", "hybrid"):
        h1 = h3 = 0
        times = []
        for e in entries:
            q = " ".join([*e.get("history", []), e["question"]])
            t = time.perf_counter()
            hits = index.search(q, k=10, mode=mode)
            times.append((time.perf_counter() - t) * 1000)
            sources = []
            for h in hits:
                if h.chunk.metadata["source"] not in sources:
                    sources.append(h.chunk.metadata["source"])
            gold = set(e["gold_sources"])
            h1 += bool(gold & set(sources[:1]))
            h3 += bool(gold & set(sources[:3]))
        n = len(entries)
        print(f"{mode:8s} hit@1 {h1 / n:.2f}  hit@3 {h3 / n:.2f}  latence médiane {statistics.median(times):.0f} ms")


if __name__ == "__main__":
    main()
