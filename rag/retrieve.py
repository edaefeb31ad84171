"""Question -> ranked hits: dense and BM25 fused by reciprocal rank, filtered and diversified.

Two shapes of answer need two searches:
- `search`: the best chunks for a question, at most `per_trial` from one trial;
- `search_trials`: every trial that passes the filters with its best chunks, for
  "which trials ..." questions that must check the whole corpus, not the top five.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from rag import normalize
from rag.embed import Embedder, Vectors
from rag.errors import RagError
from rag.lexical import expand
from rag.store import Index
from rag.types import Hit, Trial

Method = Literal["hybrid", "dense", "lexical"]

RRF_K = 60  # the constant of reciprocal rank fusion (Cormack et al. 2009)
CANDIDATES = 200  # chunks each retriever contributes to the fusion
PER_TRIAL = 3

FILTER_KEYS = ("status", "phase", "type", "sex", "age", "condition", "intervention", "trial")


class FilterError(RagError):
    """A --filter that cannot be applied."""


@dataclass(frozen=True, slots=True)
class Filters:
    status: frozenset[str] | None = None
    phase: frozenset[str] | None = None
    study_type: frozenset[str] | None = None
    sex: str | None = None
    age: float | None = None
    condition: str | None = None
    intervention: str | None = None
    trial_ids: frozenset[str] | None = None

    def check(self, trial: Trial) -> tuple[bool, tuple[str, ...]]:
        """Does the trial pass, and what unstated fields were counted as fitting."""
        notes: list[str] = []
        if self.trial_ids is not None and not {trial.id, trial.nct_id} & self.trial_ids:
            return False, ()
        if self.status is not None and trial.status not in self.status:
            return False, ()
        if self.phase is not None:
            phases = set((trial.phase or "").split("/"))
            if not phases & self.phase:
                return False, ()
        if self.study_type is not None and trial.study_type not in self.study_type:
            return False, ()
        if self.sex is not None:
            if trial.sex is None:
                notes.append("sex not stated")
            elif trial.sex not in {self.sex, "ALL"}:
                return False, ()
        if self.age is not None:
            low, high = trial.min_age_years, trial.max_age_years
            if (low is not None and self.age < low) or (high is not None and self.age > high):
                return False, ()
            if low is None and high is None:
                notes.append("no age limits stated")
            elif low is None:
                notes.append("no minimum age stated")
            elif high is None:
                notes.append("no maximum age stated")
        for term, values in (
            (self.condition, (trial.conditions or ()) + _about(trial)),
            (self.intervention, (trial.interventions or ()) + _about(trial)),
        ):
            if term is not None and not any(term in v.casefold() for v in values):
                return False, ()
        return True, tuple(notes)

    @property
    def active(self) -> bool:
        return any(getattr(self, name) is not None for name in self.__slots__)


def _about(trial: Trial) -> tuple[str, ...]:
    return tuple(v for v in (trial.title, trial.official_title, trial.brief_summary) if v)


def parse_filters(items: Sequence[str]) -> Filters:
    """["status=recruiting", "age=78", "phase=2"] -> Filters; a clear error for anything else."""
    values: dict[str, object] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key, raw = key.strip().lower(), raw.strip()
        if not sep or not raw:
            raise FilterError(f"Filter {item!r} is not KEY=VALUE, e.g. --filter status=recruiting")
        if key not in FILTER_KEYS:
            raise FilterError(f"Unknown filter {key!r}; use one of: {', '.join(FILTER_KEYS)}")
        parts = [p.strip() for p in raw.split(",") if p.strip()]
        if key == "status":
            values["status"] = frozenset(s for p in parts if (s := normalize.status(p)))
        elif key == "phase":
            values["phase"] = frozenset(_phase(p, item) for p in parts)
        elif key == "type":
            values["study_type"] = frozenset(t for p in parts if (t := normalize.study_type(p)))
        elif key == "sex":
            sex = normalize.sex(raw)
            if sex is None:
                raise FilterError(f"Filter {item!r}: use sex=female, sex=male or sex=all")
            values["sex"] = sex
        elif key == "age":
            try:
                values["age"] = float(raw)
            except ValueError:
                raise FilterError(
                    f"Filter {item!r}: give an age in years, e.g. --filter age=78"
                ) from None
        elif key == "trial":
            values["trial_ids"] = frozenset(
                p.upper() if p.upper().startswith("NCT") else p for p in parts
            )
        else:
            values[key] = raw.casefold()
    return Filters(**values)  # type: ignore[arg-type]


def _phase(value: str, item: str) -> str:
    text = value if re.search(r"phase|^n/?a$", value, re.I) else f"Phase {value}"
    phase = normalize.phase(text)
    if phase is None or "/" in phase:
        raise FilterError(f"Filter {item!r}: use a phase such as phase=2, phase=PHASE3 or phase=NA")
    return phase


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
        order = [int(i) for i in np.argsort(-fused, kind="stable") if fused[i] > 0]
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
        fused, dense_rank, lexical_rank = self._fuse(query, allowed, method, len(allowed))
        results: list[TrialHits] = []
        for trial_id, rows in self.index.trial_chunks.items():
            if not allowed[rows[0]]:
                continue
            best = sorted(rows, key=lambda i: -fused[i])[:per_trial]
            why = notes.get(trial_id, ())
            hits = tuple(
                replace(self._hit(i, fused, dense_rank, lexical_rank), notes=why) for i in best
            )
            results.append(TrialHits(self.index.trials[trial_id], hits, why))
        results.sort(key=lambda r: -r.hits[0].score if r.hits else 0.0)
        return results

    def _allowed(self, filters: Filters | None) -> tuple[np.ndarray, dict[str, tuple[str, ...]]]:
        n = len(self.index.chunks)
        if filters is None or not filters.active:
            return np.ones(n, dtype=bool), {}
        allowed = np.zeros(n, dtype=bool)
        notes: dict[str, tuple[str, ...]] = {}
        for trial_id, rows in self.index.trial_chunks.items():
            ok, why = filters.check(self.index.trials[trial_id])
            if ok:
                allowed[rows] = True
                if why:
                    notes[trial_id] = why
        return allowed, notes

    def _fuse(
        self, query: str, allowed: np.ndarray, method: Method, candidates: int
    ) -> tuple[Vectors, dict[int, int], dict[int, int]]:
        """Fused RRF score of every chunk (0 where neither retriever ranked it)."""
        n = len(self.index.chunks)
        fused = np.zeros(n, dtype=np.float32)
        dense_rank: dict[int, int] = {}
        lexical_rank: dict[int, int] = {}
        if method in ("hybrid", "dense"):
            vector = self.embedder.encode([query])[0]
            scores = self.index.dense_scores(vector, min(n, max(candidates, CANDIDATES)))
            dense_rank = _ranks(np.where(allowed, scores, -np.inf), candidates)
        if method in ("hybrid", "lexical"):
            scores = self.index.lexical_scores(expand(query))
            lexical_rank = _ranks(np.where(allowed & (scores > 0), scores, -np.inf), candidates)
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


def _ranks(scores: Vectors, limit: int) -> dict[int, int]:
    """1-based ranks of the top `limit` finite scores."""
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
