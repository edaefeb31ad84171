"""all-MiniLM-L6-v2 for short query batches, from its own files: torch, tokenizers, safetensors.

Importing sentence-transformers (and with it transformers) takes about 4.5 s on these
machines; torch alone about 1 s. A question needs one embedding, so `rag ask` runs the same
6-layer BERT with mean pooling here, from the same weights, and gets the same vectors
(tests/test_embed.py holds them to sentence-transformers' output). Index builds keep using
sentence-transformers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer

from rag.embed import Vectors


class MiniLM:
    """A BERT encoder with mean pooling and unit-length output, on the CPU."""

    def __init__(self, folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        settings = json.loads((folder / "sentence_bert_config.json").read_text())
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config["layer_norm_eps"])
        self.weights = load_file(str(folder / "model.safetensors"))
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=int(settings["max_seq_length"]))
        self.tokenizer.enable_padding(pad_id=int(config.get("pad_token_id", 0)))
        self.dim = int(config["hidden_size"])

    def encode(self, texts: Sequence[str]) -> Vectors:
        batch = self.tokenizer.encode_batch(list(texts))
        ids = torch.tensor([e.ids for e in batch], dtype=torch.long)
        mask = torch.tensor([e.attention_mask for e in batch], dtype=torch.float32)
        types = torch.tensor([e.type_ids for e in batch], dtype=torch.long)
        with torch.inference_mode():
            hidden = self._forward(ids, types, mask)
            summed = (hidden * mask.unsqueeze(-1)).sum(dim=1)
            pooled = summed / mask.sum(dim=1, keepdim=True).clamp(min=1e-9)
            unit = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return np.asarray(unit.numpy(), dtype=np.float32)

    def _w(self, name: str) -> torch.Tensor:
        return self.weights[name]

    def _norm(self, x: torch.Tensor, prefix: str) -> torch.Tensor:
        return torch.nn.functional.layer_norm(
            x, (self.dim,), self._w(f"{prefix}.weight"), self._w(f"{prefix}.bias"), self.eps
        )

    def _linear(self, x: torch.Tensor, prefix: str) -> torch.Tensor:
        return torch.nn.functional.linear(x, self._w(f"{prefix}.weight"), self._w(f"{prefix}.bias"))

    def _forward(self, ids: torch.Tensor, types: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1]).unsqueeze(0)
        x = (
            self._w("embeddings.word_embeddings.weight")[ids]
            + self._w("embeddings.position_embeddings.weight")[positions]
            + self._w("embeddings.token_type_embeddings.weight")[types]
        )
        x = self._norm(x, "embeddings.LayerNorm")
        batch, length, _ = x.shape
        head = self.dim // self.heads
        blocked = (1.0 - mask)[:, None, None, :] * torch.finfo(torch.float32).min
        for i in range(self.layers):
            p = f"encoder.layer.{i}"

            def split(t: torch.Tensor) -> torch.Tensor:
                return t.view(batch, length, self.heads, head).transpose(1, 2)

            q = split(self._linear(x, f"{p}.attention.self.query"))
            k = split(self._linear(x, f"{p}.attention.self.key"))
            v = split(self._linear(x, f"{p}.attention.self.value"))
            scores = q @ k.transpose(-1, -2) / math.sqrt(head) + blocked
            context = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(batch, length, self.dim)
            x = self._norm(
                x + self._linear(context, f"{p}.attention.output.dense"),
                f"{p}.attention.output.LayerNorm",
            )
            inner = torch.nn.functional.gelu(self._linear(x, f"{p}.intermediate.dense"))
            x = self._norm(x + self._linear(inner, f"{p}.output.dense"), f"{p}.output.LayerNorm")
        return x
