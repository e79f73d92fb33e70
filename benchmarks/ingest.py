"""Ingestion benchmark on a synthetic French corpus. Prints the figures quoted in the README.

    .venv/bin/python benchmarks/ingest.py              # 1,000 files, default model
    .venv/bin/python benchmarks/ingest.py --files 200 --model fake

Figures:
- bare embedding throughput (chunks/s): the model alone on every chunk's embed_text;
- full build (chunks/s) through ``assistant ingest`` (load, chunk, embed, Chroma, manifest, BM25),
  and the index overhead = 1 - full / bare;
- no-change re-run and one-file change: wall time of the ``assistant ingest`` command (a new
  process each time, Python start-up and, for the change, the model load included).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic import write_corpus  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ASSISTANT = Path(sys.executable).parent / "assistant"


def timed_cli(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([str(ASSISTANT), *args], check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--model", default=os.environ.get("ASSISTANT_EMBEDDING_MODEL", "multilingual-e5-small-q4"))
    args = parser.parse_args()
    os.environ.update(HF_HUB_OFFLINE="1", ANONYMIZED_TELEMETRY="False", ASSISTANT_EMBEDDING_MODEL=args.model,
                      ASSISTANT_CHROMA_COLLECTION="bench")
    from assistant.chunking import chunk_document
    from assistant.embedders import get_embedder
    from assistant.loaders import load_file
    from assistant.settings import load_settings

    with tempfile.TemporaryDirectory() as tmp:
        corpus, index = Path(tmp) / "corpus", Path(tmp) / "index"
        paths = write_corpus(corpus, args.files)
        settings = load_settings(corpus_dir=corpus, index_dir=index)
        embedder = get_embedder(settings)
        texts = [c.embed_text for p in paths for d in load_file(p, corpus).documents
                 for c in chunk_document(d, settings.chunk_tokens, settings.chunk_overlap_tokens, fits=embedder.fits)]
        start = time.perf_counter()
        for i in range(0, len(texts), 128):
            embedder.embed_batch(texts[i : i + 128], kind="passage")
        bare = len(texts) / (time.perf_counter() - start)

        env = dict(os.environ)
        full_s = timed_cli(["ingest", "--corpus", str(corpus), "--index", str(index), "--quiet"], env)
        noop_s = timed_cli(["ingest", "--corpus", str(corpus), "--index", str(index), "--quiet"], env)
        target = paths[len(paths) // 2]
        target.write_text(target.read_text(encoding="utf-8") + "\nUn paragraphe modifié pour le test.\n", encoding="utf-8")
        change_s = timed_cli(["ingest", "--corpus", str(corpus), "--index", str(index), "--quiet"], env)
        # the same change again, in a warm process (model already loaded, as in a running server)
        from assistant.ingest import ingest

        warm_embedder = get_embedder(settings)
        target.write_text(target.read_text(encoding="utf-8") + "\nUne seconde modification.\n", encoding="utf-8")
        start = time.perf_counter()
        ingest(corpus, index, settings, progress=False, embedder=warm_embedder)
        warm_s = time.perf_counter() - start
        full = len(texts) / full_s
        print(f"modèle : {args.model} ; fichiers : {args.files} ; passages : {len(texts)} ; cœurs : {os.cpu_count()}")
        print(f"débit d'embedding seul       : {bare:8.1f} passages/s")
        print(f"construction complète (CLI)  : {full:8.1f} passages/s ({full_s:.1f} s, démarrage compris)")
        print(f"surcoût de l'index           : {100 * (1 - full / bare):8.1f} %  (objectif < 25 %)")
        print(f"relance sans changement      : {noop_s:8.2f} s  (objectif < 2 s)")
        print(f"un fichier modifié (CLI)     : {change_s:8.2f} s  (objectif < 3 s ; démarrage de Python et du modèle compris)")
        print(f"un fichier modifié (chaud)   : {warm_s:8.2f} s  (modèle déjà chargé, appel ingest() en processus)")


if __name__ == "__main__":
    main()
