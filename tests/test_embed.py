"""The bundled model, offline: sentence-transformers for builds, rag.minilm for questions."""

from __future__ import annotations

import numpy as np

from rag.embed import DEFAULT_MODEL, SentenceEmbedder, default_model_path
from rag.minilm import MiniLM

TEXTS = [
    "prior anti-PD-1 treatment",
    "what platelet count does the Fudan trial require?",
    "ECOG 0-1",
    "Histologically confirmed esophageal squamous cell carcinoma " * 40,  # past 256 tokens
]


def test_model_ships_in_site_packages() -> None:
    folder = default_model_path()
    assert "site-packages" in str(folder)
    assert (folder / "model.safetensors").stat().st_size > 80_000_000


def test_query_encoder_gives_sentence_transformers_vectors(embedder: SentenceEmbedder) -> None:
    reference = embedder.model.encode(TEXTS, normalize_embeddings=True)
    lean = MiniLM(default_model_path()).encode(TEXTS)
    assert lean.shape == (4, 384) and lean.dtype == np.float32
    assert np.allclose(np.linalg.norm(lean, axis=1), 1.0, atol=1e-5)
    assert np.all(np.sum(lean * reference, axis=1) > 0.9999)


def test_questions_skip_sentence_transformers() -> None:
    fresh = SentenceEmbedder(DEFAULT_MODEL)
    vector = fresh.encode(["which trials accept ECOG 2?"])
    assert vector.shape == (1, 384)
    assert fresh._model is None  # sentence-transformers was not loaded for one question
