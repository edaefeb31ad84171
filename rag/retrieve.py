"""Question -> ranked hits: dense and BM25 fused by reciprocal rank, filtered and diversified.

Two shapes of answer need two searches:
- `search`: the best chunks for a question, at most `per_trial` from one trial;
- `search_trials`: every trial that passes the filters with its best chunks, for
  "which trials ..." questions that must check the whole corpus, not the top five.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from rag.embed import Embedder, Vectors
from rag.filters import Filters
from rag.lexical import expand
from rag.store import Index, Mask, Rows
from rag.types import Hit, Trial

Method = Literal["hybrid", "dense", "lexical"]

RRF_K = 60  # the constant of reciprocal rank fusion (Cormack et al. 2009)
CANDIDATES = 200  # chunks each retriever contributes to the fusion
PER_TRIAL = 3


@dataclass(frozen=True, slots=True)
class TrialHits:
    """One trial that passed the filters, with its best chunks for the question."""

    trial: Trial
    hits: tuple[Hit, ...]
    notes: tuple[str, ...] = ()


class Retriever:
    """Searches one loaded index with one embedder."""

    def __init__(self, index: Index, embedder: Embedder) -> None:
        self.index = index
        self.embedder = embedder

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        filters: Filters | None = None,
        per_trial: int = PER_TRIAL,
        method: Method = "hybrid",
    ) -> list[Hit]:
        """The best k chunks, at most per_trial from one trial."""
        allowed, notes = self._allowed(filters)
        fused, dense_rank, lexical_rank = self._fuse(query, allowed, method, CANDIDATES)
        ranked = np.flatnonzero(fused)  # the few hundred chunks either retriever ranked
        order = [int(i) for i in ranked[np.argsort(-fused[ranked], kind="stable")]]
        hits: list[Hit] = []
        taken: dict[str, int] = {}
        for i in order:
            chunk = self.index.chunks[i]
            if taken.get(chunk.trial_id, 0) >= per_trial:
                continue
            taken[chunk.trial_id] = taken.get(chunk.trial_id, 0) + 1
            hit = self._hit(i, fused, dense_rank, lexical_rank)
            hits.append(replace(hit, notes=notes.get(chunk.trial_id, ())))
            if len(hits) >= k:
                break
        return hits

    def search_trials(
        self,
        query: str,
        *,
        filters: Filters | None = None,
        per_trial: int = 2,
        method: Method = "hybrid",
    ) -> list[TrialHits]:
        """Every trial that passes the filters, each with its best chunks, best trial first."""
        allowed, notes = self._allowed(filters)
        everything = len(self.index.chunks)
        fused, dense_rank, lexical_rank = self._fuse(query, allowed, method, everything)
        results: list[TrialHits] = []
        for trial_id, rows in self.index.trial_chunks.items():
            if allowed is not None and not allowed[rows[0]]:
                continue
            best = sorted(rows, key=lambda i: -fused[i])[:per_trial]
            why = notes.get(trial_id, ())
            hits = tuple(
                replace(self._hit(i, fused, dense_rank, lexical_rank), notes=why) for i in best
            )
            results.append(TrialHits(self.index.trials[trial_id], hits, why))
        results.sort(key=lambda r: -r.hits[0].score if r.hits else 0.0)
        return results

    def _allowed(self, filters: Filters | None) -> tuple[Mask | None, dict[str, tuple[str, ...]]]:
        """The chunks of the trials the filters let through (None: every chunk), and why."""
        if filters is None or not filters.active:
            return None, {}
        allowed = np.zeros(len(self.index.chunks), dtype=bool)
        notes: dict[str, tuple[str, ...]] = {}
        for trial_id, rows in self.index.trial_chunks.items():
            ok, why = filters.check(self.index.trials[trial_id])
            if ok:
                allowed[rows] = True
                if why:
                    notes[trial_id] = why
        return allowed, notes

    def _fuse(
        self, query: str, allowed: Mask | None, method: Method, candidates: int
    ) -> tuple[Vectors, dict[int, int], dict[int, int]]:
        """Fused RRF score of every chunk (0 where neither retriever ranked it)."""
        n = len(self.index.chunks)
        fused = np.zeros(n, dtype=np.float32)
        dense_rank: dict[int, int] = {}
        lexical_rank: dict[int, int] = {}
        if method in ("hybrid", "dense"):
            vector = self.embedder.encode([query])[0]
            wanted = min(n, max(candidates, CANDIDATES))
            rows, scores = self.index.dense_top(vector, wanted, allowed)
            if len(rows) == n:
                dense_rank = _ranks_of_all(_masked(scores, allowed), candidates)
            else:
                dense_rank = _ranks_of_some(rows, scores, allowed, candidates)
        if method in ("hybrid", "lexical"):
            scores = self.index.lexical_scores(expand(query))
            scores = _masked(np.where(scores > 0, scores, -np.inf), allowed)
            lexical_rank = _ranks_of_all(scores, candidates)
        for ranks in (dense_rank, lexical_rank):
            for i, rank in ranks.items():
                fused[i] += 1.0 / (RRF_K + rank)
        return fused, dense_rank, lexical_rank

    def _hit(
        self, i: int, fused: Vectors, dense_rank: dict[int, int], lexical_rank: dict[int, int]
    ) -> Hit:
        return Hit(
            chunk=self.index.chunks[i],
            score=float(fused[i]),
            dense_rank=dense_rank.get(i),
            lexical_rank=lexical_rank.get(i),
        )


def _masked(scores: Vectors, allowed: Mask | None) -> Vectors:
    return scores if allowed is None else np.where(allowed, scores, -np.inf)


def _ranks_of_some(rows: Rows, scores: Vectors, allowed: Mask | None, limit: int) -> dict[int, int]:
    """1-based ranks of the `limit` best of some chunks' scores that the filter allows."""
    if allowed is not None:
        keep = allowed[rows]
        rows, scores = rows[keep], scores[keep]
    order = np.argsort(-scores, kind="stable")[:limit]
    return {int(i): rank for rank, i in enumerate(rows[order], start=1)}


def _ranks_of_all(scores: Vectors, limit: int) -> dict[int, int]:
    """1-based ranks of the top `limit` finite scores of every chunk."""
    finite = np.isfinite(scores)
    count = int(finite.sum())
    if count == 0:
        return {}
    limit = min(limit, count)
    if limit < len(scores):
        top = np.argpartition(-scores, limit - 1)[:limit]
    else:
        top = np.arange(len(scores))
    top = top[np.isfinite(scores[top])]
    top = top[np.argsort(-scores[top], kind="stable")]
    return {int(i): rank for rank, i in enumerate(top, start=1)}
