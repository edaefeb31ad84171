"""Question -> ranked hits: dense and BM25 fused by reciprocal rank, filtered and diversified.

Two shapes of answer need two searches:
- `search`: the best chunks for a question, at most `per_trial` from one trial;
- `search_trials`: every trial that passes the filters with its best chunks, for
  "which trials ..." questions that must check the whole corpus, not the top five.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

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


@dataclass(frozen=True)
class TrialRanking:
    """Every trial that passed, best first, with its best chunks as positions into the arrays
    of every chunk ranked (`rows` of the index; fused score; dense and lexical rank, 0 for
    none). Hits are made only for the trials asked for: a "which trials" question over
    thousands writes a hundred."""

    index: Index
    trial_ids: list[str]
    best: list[npt.NDArray[np.int64]]
    rows: Rows
    fused: Vectors
    dense: npt.NDArray[np.int64]
    lexical: npt.NDArray[np.int64]
    notes: dict[str, tuple[str, ...]]
    passing: list[str]  # every trial the filters let through, in the index's order

    def __len__(self) -> int:
        return len(self.trial_ids)

    def best_rows(self, i: int) -> list[int]:
        """The i-th trial's best chunks, best first, as rows of the index."""
        return [int(r) for r in self.rows[self.best[i]]]

    def trial_hits(self, i: int) -> TrialHits:
        trial_id = self.trial_ids[i]
        why = self.notes.get(trial_id, ())
        hits = tuple(
            Hit(
                chunk=self.index.chunks[int(self.rows[p])],
                score=float(self.fused[p]),
                dense_rank=int(self.dense[p]) or None,
                lexical_rank=int(self.lexical[p]) or None,
                notes=why,
            )
            for p in self.best[i]
        )
        return TrialHits(self.index.trials[trial_id], hits, why)


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
        among: Collection[str] | None = None,
    ) -> list[TrialHits]:
        """Every trial that passes the filters (of those `among`, when given), each with its
        best chunks, best trial first."""
        ranking = self.rank_trials(
            query, filters=filters, per_trial=per_trial, method=method, among=among
        )
        return [ranking.trial_hits(i) for i in range(len(ranking))]

    def rank_trials(
        self,
        query: str,
        *,
        filters: Filters | None = None,
        per_trial: int = 2,
        method: Method = "hybrid",
        among: Collection[str] | None = None,
    ) -> TrialRanking:
        """search_trials before any Hit is made. Every chunk of the trials the filters let
        through is ranked by each retriever (exactly, whatever the index) in numpy, with no
        work per chunk in Python; `among` keeps some of them after ranking, so that a trial's
        best chunks are the same whichever others are kept."""
        allowed, notes = self._allowed(filters)
        index = self.index
        rows = np.arange(len(index.chunks)) if allowed is None else np.flatnonzero(allowed)
        dense = lexical = np.zeros(len(rows), dtype=np.int64)
        if len(rows) and method in ("hybrid", "dense"):
            vector = self.embedder.encode([query])[0]
            dense = _ranks(index.dense_scores(vector, rows))
        if len(rows) and method in ("hybrid", "lexical"):
            scores = index.lexical_scores(expand(query))[rows]
            lexical = _ranks(np.where(scores > 0, scores, -np.inf))
        passing = index.trials_of(rows)
        if among is not None:
            kept_rows = self._allowed(None, among)[0]
            keep = np.ones(len(rows), dtype=bool) if kept_rows is None else kept_rows[rows]
            rows, dense, lexical = rows[keep], dense[keep], lexical[keep]
        fused = _rrf(dense) + _rrf(lexical)
        owner = index.owners[rows]
        # by trial, best chunk first, the record's order among equals
        order = np.lexsort((rows, -fused, owner))
        owner = owner[order]
        starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]]) if len(rows) else rows
        place = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
        kept = order[place < per_trial]
        cuts = np.flatnonzero(np.diff(index.owners[rows[kept]])) + 1
        groups = np.split(kept, cuts) if len(kept) else []
        best = fused[kept[np.r_[0, cuts]]] if len(kept) else fused[:0]
        ranked = np.argsort(-best, kind="stable")  # equals keep the index's order
        return TrialRanking(
            index,
            [index.chunks[int(rows[groups[g][0]])].trial_id for g in ranked],
            [groups[g] for g in ranked],
            rows,
            fused,
            dense,
            lexical,
            notes,
            passing,
        )

    def _allowed(
        self, filters: Filters | None, among: Collection[str] | None = None
    ) -> tuple[Mask | None, dict[str, tuple[str, ...]]]:
        """The chunks of the trials the filters let through, of those `among` when given
        (None: every chunk), and why."""
        active = filters is not None and filters.active
        if not active and among is None:
            return None, {}
        index = self.index
        ids = index.trial_order if among is None else [t for t in among if t in index.trials]
        passing = np.zeros(len(index.trial_order), dtype=bool)
        notes: dict[str, tuple[str, ...]] = {}
        for trial_id in ids:
            if filters is not None and active:
                ok, why = filters.check(index.trials[trial_id])
                if not ok:
                    continue
                if why:
                    notes[trial_id] = why
            passing[index.places[trial_id]] = True
        return passing[index.owners], notes

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


def _ranks(scores: Vectors) -> npt.NDArray[np.int64]:
    """The 1-based rank of each finite score, best first (0 where the score is not finite)."""
    order = np.argsort(-scores, kind="stable")
    ranks = np.zeros(len(scores), dtype=np.int64)
    ranks[order] = np.arange(1, len(scores) + 1)
    ranks[~np.isfinite(scores)] = 0
    return ranks


def _rrf(ranks: npt.NDArray[np.int64]) -> Vectors:
    """Reciprocal rank fusion's share of each rank (0 for no rank)."""
    return np.where(ranks > 0, 1.0 / (RRF_K + ranks), 0.0).astype(np.float32)


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
