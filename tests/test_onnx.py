"""The ONNX runtimes of the embedding model against sentence-transformers on torch (integration).

The ONNX files are the ones ``assistant models`` exported at set-up time; the reference is the
same local model run by sentence-transformers (fp32). Texts: passages of the sample corpus of every
type and questions, so that short and long inputs (sorted into batches by length) are covered."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from assistant.embedders import get_embedder
from assistant.embedders.onnx_runtime import OnnxEmbedder
from assistant.settings import load_settings

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ["Comment lancer un conseil citoyen ?", "c'est quoi un PETR ?", "EPCI", "Qui finance un tiers-lieu "
             "dans une commune rurale et combien de temps faut-il pour le monter avec les habitants ?"]


def corpus_texts(n: int = 48) -> list[str]:
    texts: list[str] = []
    for path in sorted((ROOT / "corpus").rglob("*.md")):
        paragraphs = [p for p in path.read_text(encoding="utf-8").split("\n\n") if len(p) > 60]
        texts += paragraphs[:2]
    texts.append(" ".join(texts[:12]))  # one text longer than the model's 512 tokens: truncated alike
    return texts[:n] + texts[-1:]


@pytest.fixture(scope="module")
def reference():
    return get_embedder(load_settings(embedding_runtime="torch"))


@pytest.mark.parametrize("runtime", ["onnx-int8", "onnx"])
def test_onnx_vectors_match_the_reference(reference, runtime):
    embedder = get_embedder(load_settings(embedding_runtime=runtime))
    assert isinstance(embedder, OnnxEmbedder) and embedder.dim == reference.dim
    texts = corpus_texts()
    for kind, batch in (("passage", texts), ("query", QUESTIONS)):
        ours, ref = embedder.embed_batch(batch, kind), reference.embed_batch(batch, kind)
        cosines = (ours * ref).sum(axis=1)
        # int8 is approximate: 0.99 on this sample, 0.987 at worst on the 648 passages of the index (README)
        assert cosines.min() >= (0.985 if runtime == "onnx-int8" else 0.9999), (kind, cosines.min())
        assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-4)
    # one text alone or in a batch of others: the same vector, padding aside; int8 quantises the
    # activations with one scale per batch, so its batch-mates move it a little
    alone = embedder.embed_batch(texts[3:4], "passage")[0]
    assert float(alone @ embedder.embed_batch(texts, "passage")[3]) > (0.99 if runtime == "onnx-int8" else 0.9999)


def test_fits_agrees_with_the_reference(reference):
    embedder = get_embedder(load_settings())
    for text in ("court", "mot " * 400, "mot " * 600, corpus_texts()[-1]):
        assert embedder.fits(text) == reference.fits(text)


def test_default_runtime_is_onnx_fp32():
    assert load_settings().embedding_runtime == "onnx"
    embedder = get_embedder(load_settings())
    assert isinstance(embedder, OnnxEmbedder) and embedder.session.get_modelmeta() is not None


def test_query_path_imports_neither_torch_nor_gradio(tmp_path):
    """A question from the CLI, default runtime: no torch, sentence-transformers, transformers,
    scikit-learn, gradio or langchain loaded (start-up pays only for what it uses)."""
    code = (
        "import sys\n"
        "from assistant.settings import load_settings\n"
        "from assistant.embedders import get_embedder\n"
        "e = get_embedder(load_settings())\n"
        "e.embed_batch(['comment lancer un conseil citoyen ?'], 'query')\n"
        "import assistant.answer, assistant.cli\n"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'transformers', 'sklearn', 'gradio', 'langchain',"
        " 'langchain_core') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "", f"importés sans besoin : {out.stdout.strip()}"
