"""The embedding model on ONNX Runtime (``ASSISTANT_EMBEDDING_RUNTIME=onnx``, the default, or ``onnx-int8``).

The same local sentence-transformers folder (BERT encoder + mean pooling + L2 normalisation) is
exported once, offline, to ONNX at set-up time (``assistant models``, which ``scripts/setup.sh``
runs): ``model.onnx`` in fp32 and ``model-int8.onnx`` dynamically quantised to int8 (weights of
the matrix products in int8, activations quantised on the fly). At run time only ``onnxruntime``,
``tokenizers`` and numpy are imported: no torch, no sentence-transformers, no transformers.

Measured on this 2-core machine (README, « Le modèle d'embedding » ; ``benchmarks/embed.py``): the
fp32 graph gives the same vectors as sentence-transformers on torch (cosine 1.0000) about 2.8 times
faster; the int8 one is faster still but approximate (cosine 0.987 at worst), which moved the
refusals of the test set, so it is a setting, not the default (``tests/test_onnx.py``).

Usage::

    export(model_dir, onnx_dir)                     # set-up time (needs torch + onnx)
    embedder = OnnxEmbedder("multilingual-e5-small-q4", onnx_dir, prompts, quantized=True)
    embedder.embed_batch(["passage …"], kind="passage")
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Literal

import numpy as np

Kind = Literal["query", "passage"]
FP32, INT8 = "model.onnx", "model-int8.onnx"
EXPORT_VERSION = "2"  # 2: int8 per channel
BATCH = 32  # texts per run, sorted by length first (little padding); measured in benchmarks/embed.py


def onnx_ready(onnx_dir: Path) -> bool:
    info = onnx_dir / "export.json"
    if not ((onnx_dir / FP32).exists() and (onnx_dir / INT8).exists() and info.exists()):
        return False
    try:
        return json.loads(info.read_text(encoding="utf-8")).get("version") == EXPORT_VERSION
    except (OSError, ValueError):
        return False


def mean_pooling(model_dir: Path) -> bool:
    """Does the sentence-transformers folder pool by the mean of the tokens (what we reproduce)?"""
    config = model_dir / "1_Pooling" / "config.json"
    if not config.exists():
        return False
    values = json.loads(config.read_text(encoding="utf-8"))
    if "pooling_mode" in values:  # sentence-transformers 6: « "pooling_mode": "mean" »
        return values["pooling_mode"] == "mean"
    others = ("pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens")
    return bool(values.get("pooling_mode_mean_tokens")) and not any(values.get(k) for k in others)


def export(model_dir: Path, onnx_dir: Path) -> Path:
    """Export the encoder of ``model_dir`` to ``onnx_dir`` (fp32 and int8). Needs torch and onnx."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel

    tmp = onnx_dir.with_name(onnx_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    encoder = AutoModel.from_pretrained(str(model_dir), local_files_only=True)
    encoder.eval()

    class Encoder(torch.nn.Module):  # keyword arguments: the encoder's positional order varies by version
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    token_type_ids: torch.Tensor) -> torch.Tensor:
            return self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                token_type_ids=token_type_ids).last_hidden_state

    model = Encoder().eval()
    sample = {"input_ids": torch.ones((2, 8), dtype=torch.long), "attention_mask": torch.ones((2, 8), dtype=torch.long),
              "token_type_ids": torch.zeros((2, 8), dtype=torch.long)}
    with torch.no_grad():
        torch.onnx.export(model, (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"]),
                          str(tmp / FP32), input_names=list(sample), output_names=["last_hidden_state"],
                          dynamic_axes={**{k: {0: "batch", 1: "tokens"} for k in sample},
                                        "last_hidden_state": {0: "batch", 1: "tokens"}},
                          opset_version=17, dynamo=False)
    # per channel: every row of a weight matrix has its own scale (cosine with fp32 ≥ 0.99; per tensor: 0.98)
    quantize_dynamic(str(tmp / FP32), str(tmp / INT8), weight_type=QuantType.QInt8, per_channel=True)
    shutil.copyfile(model_dir / "tokenizer.json", tmp / "tokenizer.json")
    max_tokens = 512
    st_config = model_dir / "sentence_bert_config.json"
    if st_config.exists():
        max_tokens = int(json.loads(st_config.read_text(encoding="utf-8")).get("max_seq_length", 512))
    (tmp / "export.json").write_text(json.dumps({"version": EXPORT_VERSION, "max_tokens": max_tokens,
                                                 "source": str(model_dir)}), encoding="utf-8")
    shutil.rmtree(onnx_dir, ignore_errors=True)
    tmp.rename(onnx_dir)
    return onnx_dir


class OnnxEmbedder:
    """A mean-pooled BERT encoder run by ONNX Runtime (int8 or fp32)."""

    def __init__(self, name: str, onnx_dir: Path, prompts: dict[str, str] | None, quantized: bool = True,
                 threads: int = 0) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        info = json.loads((onnx_dir / "export.json").read_text(encoding="utf-8"))
        self.name = name
        self.max_tokens = int(info.get("max_tokens", 512))
        self.prompts = prompts or {}
        self.tokenizer = Tokenizer.from_file(str(onnx_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_tokens)
        self.tokenizer.no_padding()
        self._counter = Tokenizer.from_file(str(onnx_dir / "tokenizer.json"))  # no truncation: for fits()
        self._counter.no_truncation()
        self._counter.no_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or min(2, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(onnx_dir / (INT8 if quantized else FP32)), options,
                                            providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.dim = int(self.embed_batch(["dimension"], "query").shape[1])

    def _prefix(self, kind: Kind) -> str:
        return self.prompts.get(kind, self.prompts.get("document", "") if kind == "passage" else "")

    def embed_batch(self, texts: list[str], kind: Kind) -> np.ndarray:
        if not texts:
            return np.zeros((0, getattr(self, "dim", 0)), dtype=np.float32)
        prefix = self._prefix(kind)
        encodings = self.tokenizer.encode_batch([prefix + t for t in texts])
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out: list[np.ndarray | None] = [None] * len(texts)
        for start in range(0, len(order), BATCH):
            chunk = order[start:start + BATCH]
            width = max(len(encodings[i].ids) for i in chunk)
            ids = np.zeros((len(chunk), width), dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.int64)
            for row, i in enumerate(chunk):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            feed = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self.inputs:
                feed["token_type_ids"] = np.zeros_like(ids)
            hidden = self.session.run(["last_hidden_state"], feed)[0]
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            for row, i in enumerate(chunk):
                out[i] = pooled[row]
        return np.stack(out).astype(np.float32)  # type: ignore[arg-type]

    def fits(self, text: str) -> bool:
        return len(self._counter.encode(self._prefix("passage") + text).ids) <= self.max_tokens
