"""Retrieval scores shared by the tests, the benchmarks and the eval runner."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def recall_at(found: Sequence[str], gold: Iterable[str], k: int) -> float:
    """Share of the gold ids in the first k found, out of as many as k can hold."""
    wanted = set(gold)
    if not wanted:
        return 0.0
    return len(wanted & set(found[:k])) / min(len(wanted), k)


def reciprocal_rank(found: Sequence[str], gold: Iterable[str]) -> float:
    """1 / rank of the first gold id found; 0 when none is."""
    wanted = set(gold)
    for rank, item in enumerate(found, start=1):
        if item in wanted:
            return 1.0 / rank
    return 0.0


@dataclass(frozen=True, slots=True)
class RetrievalScore:
    queries: int
    recall_at_k: float
    mrr: float


def score(runs: Sequence[tuple[Sequence[str], Iterable[str]]], k: int) -> RetrievalScore:
    """Mean recall@k and MRR over (found ids, gold ids) pairs."""
    pairs = [(found, list(gold)) for found, gold in runs]
    if not pairs:
        return RetrievalScore(0, 0.0, 0.0)
    recall = sum(recall_at(f, g, k) for f, g in pairs) / len(pairs)
    mrr = sum(reciprocal_rank(f, g) for f, g in pairs) / len(pairs)
    return RetrievalScore(len(pairs), recall, mrr)
