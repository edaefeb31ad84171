"""Hybrid search at 100k and 1M chunks and corpus-wide answers over 25,000 trials (not a test).

Issue 13's scale targets, measured in one process on index/shared (2,522 trials, 60,651 chunks),
read only. Prints tables for the issue note.

Goal 2, retrieval at scale: the corpus grown to each size by perturbed copies of its real
vectors (copy c > 0 of chunk i is normalize(v_i + noise), the noise scaled so the cosine to v_i
is about 0.9; the measured mean is printed), its chunks copied under new trial ids, BM25
rebuilt with bm25s over the copies' tokens. For exact FAISS (a flat index: one matrix-vector
product a query) and HNSW (as store.make_faiss_index(approximate=True) makes it): warm p50/p95
of Retriever.search(k=10) (targets: p50 < 20 ms at 100k, < 60 ms at 1M); the median time of
each step of a search (what it calls wrapped in timers); one search_trials (what a "which
trials" question runs); HNSW recall@10 of ids against exact search over the same vectors
(target >= 0.95) at the efSearch and k of rag's dense search (k 200, efSearch store.ef_search)
and at other efSearch values; build times and memory.

Goal 3, corpus-wide eligibility questions ("which trials ...") through Assistant.ask with the
extractive backend at 1x (2,522 trials) and with the index copied --trials-copies times under
new ids (25,220 trials): p50/p95 (target at 25k: p50 < 1 s), the same with rag's lru caches
cleared before each question, and a cProfile of one question at the larger size.

Timings are wall-clock medians on a shared 2-core machine; numpy's BLAS runs on one thread (as
in the rag command line), FAISS builds use its OpenMP threads.

    .venv/bin/python bench/scale.py [--sizes 100000,1000000] [--trials-copies 10]
        [--queries 200] [--skip-search] [--skip-answer]
"""

from __future__ import annotations

import os

# As rag.cli: numpy's BLAS on one thread, set before numpy is first imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import cProfile
import io
import json
import math
import platform
import pstats
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import faiss
import numpy as np

import rag
from rag import facts, filters, lexical, retrieve, store, understand, verdicts
from rag.answer import Assistant
from rag.embed import SentenceEmbedder, Vectors
from rag.facts import Typed
from rag.lexical import tokenize
from rag.llm.base import get_backend
from rag.retrieve import CANDIDATES, Retriever
from rag.types import Chunk, Criterion, Derived, Trial

ROOT = Path(__file__).resolve().parents[1]
INDEX_NAME = "shared"
SCRATCH = Path("/tmp/scale")
COSINE = 0.9  # wanted cosine between a perturbed copy and its source vector
SEED = 13
PLAIN_EF = 128  # the efSearch rag used before it grew with the corpus, for comparison
EF_SWEEP = (128, 200, 400, 800, 1600)  # efSearch values whose recall and latency are printed
HNSW_BATCH = 50_000  # vectors per HNSW add, so a build past --hnsw-limit stops between batches
TARGETS_MS = {100_000: 20.0, 1_000_000: 60.0}
TARGET_RECALL = 0.95
TARGET_ANSWER_S = 1.0
# Corpus-wide eligibility questions in a user's words, and one to warm up with.
QUESTIONS = (
    "which trials exclude people with hepatitis B?",
    "which trials accept patients with brain metastases?",
    "which studies require ECOG 0 or 1?",
    "which trials allow prior chemotherapy?",
    "are there trials that take people over 75?",
    "which trials exclude patients with HIV?",
    "which trials exclude pregnant women?",
    "which trials exclude people with interstitial lung disease?",
    "which trials accept patients who had prior immunotherapy?",
    "how many trials exclude people with autoimmune disease?",
)
WARM_UP = "which trials exclude people with active tuberculosis?"
_TRIAL_ID = re.compile(r"NCT\d{8}|T-[0-9a-f]{10}")
# Steps of one Retriever.search, timed by wrapping what it calls (whatever rag/ does inside):
# the embedder's encode; the dense search (Index.dense_top) and
# the rag.retrieve._ranks of its result; rag.retrieve.expand with Index.lexical_scores and
# the _ranks of theirs; and the rest of search (fusion, ordering, the per-trial cap).
STEPS = ("encode", "dense", "dense ranks", "lexical", "lexical ranks", "rest")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="100000,1000000", help="corpus sizes in chunks, comma-separated"
    )
    parser.add_argument(
        "--trials-copies", type=int, default=10, help="copies of the index for the answer part"
    )
    parser.add_argument("--queries", type=int, default=200, help="timed searches per setting")
    parser.add_argument("--skip-search", action="store_true", help="skip goal 2 (search)")
    parser.add_argument("--skip-answer", action="store_true", help="skip goal 3 (answers)")
    parser.add_argument(
        "--hnsw-limit",
        type=float,
        default=1200.0,
        help="seconds an HNSW build may take before it is abandoned (between batches)",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    SCRATCH.mkdir(parents=True, exist_ok=True)
    print("# bench/scale.py")
    print(
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}; {os.cpu_count()} cores, load average "
        f"{_load()} at start; python {platform.python_version()}, numpy {np.__version__}, "
        f"faiss {faiss.__version__} ({faiss.omp_get_max_threads()} OpenMP threads), "
        f"OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}"
    )
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}; rag at {_revision()}")
    started = time.perf_counter()
    index = store.load(INDEX_NAME, ROOT / "index")
    loaded = time.perf_counter() - started
    embedder = SentenceEmbedder(index.model)
    embedder.encode(["warm up"])  # rag.minilm, as `rag ask` encodes a question
    print(
        f"index/{INDEX_NAME}: {len(index.trials)} trials, {len(index.chunks)} chunks, "
        f"faiss {index.manifest['faiss']}, loaded in {loaded:.1f} s; {_memory()}"
    )
    started = time.perf_counter()
    tokens = [tokenize(c.embed_text) for c in index.chunks]
    print(f"tokenized {len(tokens)} chunk texts once in {time.perf_counter() - started:.1f} s")

    if not args.skip_search:
        search_part(index, embedder, tokens, sizes, args.queries, args.hnsw_limit)
    if not args.skip_answer:
        answer_part(index, embedder, tokens, args.trials_copies)
    print(f"\nload average at end: {_load()}; peak memory {_peak_mb():.0f} MB")


# --- goal 2: search ---------------------------------------------------------------------------


@dataclass
class Setting:
    """One (size, faiss kind) measured."""

    size: int
    kind: str
    p50: float = math.nan
    p95: float = math.nan
    steps: dict[str, float] | None = None
    recall: float = math.nan  # HNSW top 10 (ef and k as rag's dense search) against exact
    recall_plain: float = math.nan  # HNSW top 10 with efSearch PLAIN_EF and k = 10
    ef: int = 0  # the efSearch rag's dense search sets at this size
    overlap: float = math.nan  # hybrid top-10 chunk ids shared with hybrid over exact
    trials_ms: float = math.nan  # one Retriever.search_trials (every chunk scored)
    sweep: dict[int, tuple[float, float]] | None = None  # efSearch -> (recall@10, median ms)
    build_s: float = math.nan
    note: str = ""


def search_part(
    index: store.Index,
    embedder: SentenceEmbedder,
    tokens: list[list[str]],
    sizes: Sequence[int],
    n_queries: int,
    hnsw_limit: float,
) -> None:
    queries = _queries()
    timed = [queries[i % len(queries)] for i in range(n_queries)]
    vectors = np.vstack([embedder.encode([q]) for q in queries])  # one at a time, as rag asks
    print(
        f"\n## Goal 2: hybrid search, k=10, {len(timed)} timed searches per setting "
        f"({len(queries)} queries of eval/retrieval.jsonl cycled, 5 warm-up searches first)"
    )
    results: list[Setting] = []
    for size in sizes:
        results.extend(_search_size(index, embedder, tokens, size, timed, vectors, hnsw_limit))
    print("\n### Summary: Retriever.search warm latency (ms) and HNSW recall@10 against exact")
    print(
        "| chunks | faiss | p50 | p95 | target p50 | build s | recall@10 (rag's efSearch, k 200) "
        f"| recall@10 (ef {PLAIN_EF}, k 10) | hybrid top-10 overlap with exact | "
        "one search_trials (ms) |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        target = TARGETS_MS.get(r.size)
        mark = "" if target is None else (" ✓" if r.p50 < target else " ✗")
        recall = "" if math.isnan(r.recall) else f"{r.recall:.3f} (ef {r.ef})"
        plain = "" if math.isnan(r.recall_plain) else f"{r.recall_plain:.3f}"
        overlap = "" if math.isnan(r.overlap) else f"{r.overlap:.3f}"
        full = f"{r.trials_ms:.0f}"
        print(
            f"| {r.size:,} | {r.kind} | {r.p50:.1f}{mark} | {r.p95:.1f} | "
            f"{'' if target is None else f'< {target:.0f}'} | {r.build_s:.1f} | {recall} | "
            f"{plain} | {overlap} | {full} |{(' ' + r.note) if r.note else ''}"
        )
    print(f"(recall target >= {TARGET_RECALL})")
    print(
        f"\n### Summary: HNSW recall@10 against exact and one faiss search (k {CANDIDATES}) "
        "by efSearch"
    )
    print("| chunks | " + " | ".join(f"ef {ef}" for ef in EF_SWEEP) + " |")
    print("|---:|" + "---|" * len(EF_SWEEP))
    for r in results:
        if r.sweep:
            cells = " | ".join(f"{a:.3f}, {ms:.1f} ms" for a, ms in r.sweep.values())
            print(f"| {r.size:,} | {cells} |")
    print("\n### Summary: median time of each step of one search (ms)")
    print("| chunks | faiss | " + " | ".join(STEPS) + " | sum |")
    print("|---:|---|" + "---:|" * (len(STEPS) + 1))
    for r in results:
        if r.steps:
            cells = " | ".join(f"{r.steps[s]:.2f}" for s in STEPS)
            print(f"| {r.size:,} | {r.kind} | {cells} | {sum(r.steps.values()):.1f} |")


def _search_size(
    index: store.Index,
    embedder: SentenceEmbedder,
    tokens: list[list[str]],
    size: int,
    timed: list[str],
    vectors: Vectors,
    hnsw_limit: float,
) -> list[Setting]:
    base = len(index.chunks)
    copies = math.ceil(size / base)
    print(f"\n### {size:,} chunks: the {base:,} real ones and {copies - 1} perturbed copies, cut")
    started = time.perf_counter()
    chunks, trials = _copied_chunks(index, copies, size)
    print(
        f"chunks and trials copied under new ids: {len(chunks):,} chunks, {len(trials):,} "
        f"trials, {time.perf_counter() - started:.1f} s"
    )
    started = time.perf_counter()
    flat = faiss.IndexFlatIP(index.faiss_index.d)
    cosine, spread = _add_perturbed(flat, index.vectors, size)
    flat_s = time.perf_counter() - started
    print(
        f"vectors: perturbed copies, cosine to their source {cosine:.3f} mean "
        f"(sd {spread:.3f}); flat index {flat_s:.1f} s, {flat.ntotal * flat.d * 4 / 1e6:.0f} MB"
    )
    folder = Path(tempfile.mkdtemp(prefix="bm25-", dir=SCRATCH))
    try:
        started = time.perf_counter()
        bm25 = _postings([tokens[i % base] for i in range(size)], folder)
        print(f"bm25s postings over the copies' tokens: {time.perf_counter() - started:.1f} s")
        exact = _index(index, chunks, trials, flat, "flat", bm25)
        print(f"memory after building: {_memory()}")
        out = [_measure(exact, embedder, timed, flat_s)]
        truth = flat.search(vectors, 10)[1]
        exact_hits = [_ids(Retriever(exact, embedder), q) for q in _unique(timed)]

        started = time.perf_counter()
        hnsw = _hnsw(exact.vectors, hnsw_limit)
        built = time.perf_counter() - started
        if hnsw is None:
            print(f"HNSW build abandoned after {built:.0f} s (over --hnsw-limit {hnsw_limit:.0f})")
            out.append(Setting(size, "hnsw", build_s=built, note="build abandoned"))
            return out
        print(
            f"HNSW (M {store.HNSW_M}, efConstruction {store.HNSW_EF_CONSTRUCTION}) built from "
            f"the same vectors in {built:.1f} s; {_memory()}"
        )
        approximate = _index(index, chunks, trials, hnsw, "hnsw", bm25)
        setting = _measure(approximate, embedder, timed, built)
        setting.ef = store.ef_search(size, CANDIDATES)
        setting.recall = _recall(hnsw, vectors, truth, setting.ef)
        setting.recall_plain = _recall(hnsw, vectors, truth, PLAIN_EF, k=10)
        found = [_ids(Retriever(approximate, embedder), q) for q in _unique(timed)]
        shared = [
            len(set(a) & set(b)) / max(len(a), 1) for a, b in zip(exact_hits, found, strict=True)
        ]
        setting.overlap = statistics.fmean(shared)
        out.append(setting)
        print(
            f"HNSW recall@10 against exact over {len(vectors)} queries: {setting.recall:.3f} "
            f"(efSearch {setting.ef}, k {CANDIDATES}, as rag searches), "
            f"{setting.recall_plain:.3f} (efSearch {PLAIN_EF}, k 10); hybrid top-10 "
            f"overlap with exact {setting.overlap:.3f}"
        )
        setting.sweep = {ef: _ef_point(hnsw, vectors, truth, ef) for ef in EF_SWEEP}
        print(
            f"HNSW efSearch sweep, k {CANDIDATES} (recall@10, median ms of one query's "
            "faiss search): "
            + ", ".join(f"ef {ef}: {r:.3f}, {ms:.2f} ms" for ef, (r, ms) in setting.sweep.items())
        )
        print(f"memory: {_memory()}")
        return out
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _measure(
    index: store.Index, embedder: SentenceEmbedder, timed: list[str], build: float
) -> Setting:
    retriever = Retriever(index, embedder)
    times = _latency(lambda q: retriever.search(q, k=10), timed)
    distinct = _unique(timed)
    rows = [_steps(retriever, q) for q in distinct]
    steps = {s: statistics.median(r[s] for r in rows) for s in STEPS}
    p50, p95 = _quantiles(times)
    started = time.perf_counter()
    retriever.search_trials(distinct[0], per_trial=4)  # what a "which trials" question runs
    trials_ms = (time.perf_counter() - started) * 1000
    kind = str(index.manifest["faiss"])
    print(
        f"{kind:<5} Retriever.search p50 {p50:.1f} ms, p95 {p95:.1f} ms; steps (median ms over "
        f"{len(distinct)} queries): "
        + ", ".join(f"{s} {steps[s]:.2f}" for s in STEPS)
        + f"; one search_trials {trials_ms:.0f} ms"
    )
    return Setting(len(index.chunks), kind, p50, p95, steps, build_s=build, trials_ms=trials_ms)


def _steps(retriever: Retriever, query: str) -> dict[str, float]:
    """One Retriever.search(query, k=10) with what it calls wrapped in timers: each step's
    wall time in ms. A ranking call (rag.retrieve's functions whose name starts with _ranks)
    counts to the side searched last before it, dense or lexical."""
    steps = dict.fromkeys(STEPS[:-1], 0.0)
    side = ["dense"]

    def timer(step: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if step in ("dense", "lexical"):
                side[0] = step
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                name = f"{side[0]} ranks" if step == "ranks" else step
                steps[name] += (time.perf_counter() - started) * 1000

        return timed

    index = retriever.index
    wrapped: list[tuple[object, str, str]] = [
        (retriever.embedder, "encode", "encode"),
        (index, "dense_top", "dense"),
        (index, "lexical_scores", "lexical"),
        (retrieve, "expand", "lexical"),
    ] + [(retrieve, name, "ranks") for name in vars(retrieve) if name.startswith("_ranks")]
    originals = [getattr(owner, name) for owner, name, _ in wrapped]
    for (owner, name, step), original in zip(wrapped, originals, strict=True):
        setattr(owner, name, timer(step, original))
    try:
        started = time.perf_counter()
        retriever.search(query, k=10)
        total = (time.perf_counter() - started) * 1000
    finally:
        for (owner, name, _), original in zip(wrapped, originals, strict=True):
            if owner is retrieve:
                setattr(owner, name, original)
            else:
                delattr(owner, name)  # the instance's attribute: the class's method again
    steps["rest"] = total - sum(steps.values())
    return steps


def _ids(retriever: Retriever, query: str) -> list[str]:
    return [h.chunk.id for h in retriever.search(query, k=10)]


def _recall(hnsw: Any, vectors: Vectors, truth: Any, ef: int, k: int = CANDIDATES) -> float:
    """Mean share of exact search's top-10 ids that HNSW's top 10 holds."""
    hnsw.hnsw.efSearch = ef
    found = hnsw.search(vectors, k)[1][:, :10]
    return statistics.fmean(
        len(set(a.tolist()) & set(b.tolist())) / 10 for a, b in zip(found, truth, strict=True)
    )


def _ef_point(hnsw: Any, vectors: Vectors, truth: Any, ef: int) -> tuple[float, float]:
    """Recall@10 at efSearch `ef` (k = CANDIDATES, as rag's dense search asks) and the median time
    of one query's search."""
    recall = _recall(hnsw, vectors, truth, ef)
    times = []
    for vector in vectors:
        started = time.perf_counter()
        hnsw.search(vector.reshape(1, -1), CANDIDATES)
        times.append((time.perf_counter() - started) * 1000)
    return recall, statistics.median(times)


def _hnsw(vectors: Vectors, limit: float) -> Any:
    """HNSW as store.make_faiss_index(approximate=True) makes it, added in batches; None when
    the build passes `limit` seconds."""
    index = faiss.IndexHNSWFlat(vectors.shape[1], store.HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = store.HNSW_EF_CONSTRUCTION
    started = time.perf_counter()
    for start in range(0, len(vectors), HNSW_BATCH):
        index.add(np.ascontiguousarray(vectors[start : start + HNSW_BATCH]))
        elapsed = time.perf_counter() - started
        if len(vectors) > HNSW_BATCH:
            print(
                f"  HNSW {index.ntotal:,}/{len(vectors):,} vectors, {elapsed:.0f} s",
                file=sys.stderr,
                flush=True,
            )
        if elapsed > limit and index.ntotal < len(vectors):
            return None
    return index


# --- building the bigger corpora --------------------------------------------------------------


def _new_id(trial_id: str, copy: int, number: int) -> str:
    """Copy `copy` (> 0) of the trial numbered `number`, under an id of the same shape: NCT9,
    the copy in 2 digits and the number in 5 (real NCT numbers start NCT0), or T- with the copy
    in 2 hex digits in place of the first two."""
    if trial_id.startswith("NCT"):
        new = f"NCT9{copy:02d}{number:05d}"
    elif trial_id.startswith("T-"):
        new = f"T-{copy:02x}{trial_id[4:]}"
    else:
        new = f"{trial_id}-{copy}"
    assert _TRIAL_ID.fullmatch(new) or not _TRIAL_ID.fullmatch(trial_id), (trial_id, new)
    return new


def _renamed(text: str, old: str, new: str) -> str:
    """An id that starts with the trial's id ("NCT01234567/inclusion/3"), under the new one."""
    return new + text[len(old) :] if text.startswith(old) else text


def _copied_chunks(
    index: store.Index, copies: int, size: int
) -> tuple[list[Chunk], dict[str, Trial]]:
    """`size` chunks: the index's, then copies of them under new trial ids, cut at `size`.
    Chunk texts are shared with the source; trials carry only their new id (what search
    reads)."""
    numbers = {tid: n for n, tid in enumerate(index.trials)}
    chunks = list(index.chunks[:size])
    trials = dict(index.trials)
    for copy in range(1, copies):
        ids = {tid: _new_id(tid, copy, numbers[tid]) for tid in index.trials}
        for chunk in index.chunks[: size - len(chunks)]:
            old, new = chunk.trial_id, ids[chunk.trial_id]
            chunks.append(
                replace(
                    chunk,
                    id=_renamed(chunk.id, old, new),
                    trial_id=new,
                    criterion_id=_renamed(chunk.criterion_id, old, new)
                    if chunk.criterion_id
                    else None,
                )
            )
        for old, trial in index.trials.items():
            new = ids[old]
            trials[new] = replace(
                trial, id=new, nct_id=new if trial.nct_id == old else trial.nct_id
            )
    assert len({c.id for c in chunks}) == len(chunks), "chunk ids repeat"
    return chunks, trials


def _copied_index(
    index: store.Index, tokens: list[list[str]], copies: int, folder: Path
) -> tuple[store.Index, float]:
    """The whole index `copies` times: every trial, criterion, derived field, chunk (texts
    too) and typed criterion under the copy's ids; vectors perturbed; BM25 rebuilt. With the
    mean cosine of a perturbed vector to its source."""
    numbers = {tid: n for n, tid in enumerate(index.trials)}
    chunks = list(index.chunks)
    trials = dict(index.trials)
    typed = {tid: index.typed(tid) for tid in index.trials}
    for copy in range(1, copies):
        ids = {tid: _new_id(tid, copy, numbers[tid]) for tid in index.trials}
        for chunk in index.chunks:
            chunks.append(_chunk_copy(chunk, chunk.trial_id, ids[chunk.trial_id]))
        for old, trial in index.trials.items():
            trials[ids[old]] = _trial_copy(trial, ids[old])
            typed[ids[old]] = tuple(_typed_copy(t, old, ids[old]) for t in typed[old])
    assert len(trials) == copies * len(index.trials), "trial ids repeat"
    assert len({c.id for c in chunks}) == len(chunks), "chunk ids repeat"
    flat = faiss.IndexFlatIP(index.faiss_index.d)
    cosine, _ = _add_perturbed(flat, index.vectors, len(chunks))
    bm25 = _postings([tokens[i % len(tokens)] for i in range(len(chunks))], folder)
    copied = _index(index, chunks, trials, flat, "flat", bm25)
    copied.facts = typed
    return copied, cosine


def _chunk_copy(chunk: Chunk, old: str, new: str) -> Chunk:
    return replace(
        chunk,
        id=_renamed(chunk.id, old, new),
        trial_id=new,
        criterion_id=_renamed(chunk.criterion_id, old, new) if chunk.criterion_id else None,
        text=chunk.text.replace(old, new),
        embed_text=chunk.embed_text.replace(old, new),
    )


def _trial_copy(trial: Trial, new: str) -> Trial:
    old = trial.id
    return replace(
        trial,
        id=new,
        nct_id=new if trial.nct_id == old else trial.nct_id,
        criteria=tuple(_criterion_copy(c, old, new) for c in trial.criteria),
        derived=tuple(_derived_copy(d, old, new) for d in trial.derived),
    )


def _criterion_copy(criterion: Criterion, old: str, new: str) -> Criterion:
    parent = criterion.parent
    return replace(
        criterion,
        id=_renamed(criterion.id, old, new),
        parent=_renamed(parent, old, new) if parent else None,
    )


def _derived_copy(derived: Derived, old: str, new: str) -> Derived:
    if derived.criterion_id is None:
        return derived
    return replace(derived, criterion_id=_renamed(derived.criterion_id, old, new))


def _typed_copy(typed: Typed, old: str, new: str) -> Typed:
    return replace(typed, criterion_id=_renamed(typed.criterion_id, old, new))


def _add_perturbed(target: Any, base: Vectors, size: int) -> tuple[float, float]:
    """Add `size` vectors to a FAISS index: `base`, then copies of it with Gaussian noise of
    a scale that puts a copy at cosine COSINE to its source (in d dimensions the cosine of
    v + noise to a unit v is about 1 / sqrt(1 + d sigma^2)), renormalized. The mean and the
    standard deviation of the measured cosines of the copies."""
    dim = base.shape[1]
    sigma = math.sqrt((1 / COSINE**2 - 1) / dim)
    rng = np.random.default_rng(SEED)
    cosines: list[Vectors] = []
    added = 0
    while added < size:
        block = base[: min(len(base), size - added)]
        if added:
            noisy = block + sigma * rng.standard_normal(block.shape, dtype=np.float32)
            noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
            cosines.append(np.einsum("ij,ij->i", noisy, block))
            block = noisy
        target.add(np.ascontiguousarray(block, dtype=np.float32))
        added += len(block)
    if not cosines:
        return math.nan, math.nan
    every = np.concatenate(cosines)
    return float(every.mean()), float(every.std())


def _postings(docs: list[list[str]], folder: Path) -> store.Postings:
    """BM25 as store.build makes it (bm25s over rag.lexical tokens), read as rag reads it."""
    import bm25s

    bm25 = bm25s.BM25()
    bm25.index(docs, show_progress=False)
    bm25.save(str(folder), show_progress=False)
    del bm25
    return store.Postings.read(folder)


def _index(
    source: store.Index,
    chunks: list[Chunk],
    trials: dict[str, Trial],
    faiss_index: Any,
    kind: str,
    bm25: store.Postings,
) -> store.Index:
    return store.Index(
        name=f"{source.name}-{len(chunks)}",
        path=source.path,  # read by nothing here; nothing is written
        manifest=source.manifest | {"faiss": kind, "chunks": len(chunks), "trials": len(trials)},
        chunks=store.ChunkTable.of(chunks),
        trials=store.TrialTable.of(trials.values()),
        faiss_index=faiss_index,
        bm25=bm25,
    )


# --- goal 3: answers --------------------------------------------------------------------------


@dataclass
class Run:
    """One question at one size."""

    question: str
    kind: str
    topic: str
    ask_ms: float
    understand_ms: float
    scope_ms: float
    read: int  # trials whose records could decide it (verdicts.scope): the only ones read
    search_ms: float
    cold_ms: float
    verdicts: Counter[str]


def answer_part(
    index: store.Index, embedder: SentenceEmbedder, tokens: list[list[str]], copies: int
) -> None:
    print(
        f"\n## Goal 3: corpus-wide eligibility questions, Assistant.ask, extractive backend, "
        f"{len(QUESTIONS)} questions at 1x and {copies}x"
    )
    backend = get_backend("extractive")
    runs: dict[int, list[Run]] = {}
    firsts: dict[int, float] = {}
    sizes: dict[int, tuple[int, int]] = {}
    runs[1], firsts[1] = _ask_all(Assistant(index, embedder, backend))
    sizes[1] = (len(index.trials), len(index.chunks))
    folder = Path(tempfile.mkdtemp(prefix="bm25-answer-", dir=SCRATCH))
    try:
        started = time.perf_counter()
        with store.lasting():  # as store.load makes a loaded index's records
            big, cosine = _copied_index(index, tokens, copies, folder)
        print(
            f"{copies}x index built in {time.perf_counter() - started:.1f} s: "
            f"{len(big.trials):,} trials, {len(big.chunks):,} chunks, faiss flat "
            f"(store.build would pick HNSW above {store.APPROXIMATE_ABOVE:,} chunks), vectors "
            f"perturbed (cosine to source {cosine:.3f}), typed criteria copied; {_memory()}"
        )
        assistant = Assistant(big, embedder, backend)
        runs[copies], firsts[copies] = _ask_all(assistant)
        sizes[copies] = (len(big.trials), len(big.chunks))
        profile = cProfile.Profile()
        profile.enable()
        assistant.ask(QUESTIONS[0])
        profile.disable()
        dump = SCRATCH / f"answer-{copies}x.prof"
        profile.dump_stats(dump)
        print(f"memory after the {copies}x questions: {_memory()}")

        print("\n### Per question (ms; 'cold' = rag's lru caches cleared before asking)")
        print(
            "| question | kind | topic | "
            + " | ".join(
                f"{c}x {what}"
                for c in runs
                for what in ("ask", "understand", "scope", "trials read", "search_trials", "cold")
            )
            + f" | ratio {copies}x/1x | {copies}x verdicts |"
        )
        print("|---|---|---|" + "---:|" * (6 * len(runs) + 1) + "---|")
        for i, question in enumerate(QUESTIONS):
            one, many = runs[1][i], runs[copies][i]
            cells = " | ".join(
                f"{r.ask_ms:.0f} | {r.understand_ms:.0f} | {r.scope_ms:.0f} | {r.read:,} | "
                f"{r.search_ms:.0f} | {r.cold_ms:.0f}"
                for r in (runs[c][i] for c in runs)
            )
            counts = ", ".join(f"{w} {n}" for w, n in many.verdicts.most_common())
            print(
                f"| {question} | {one.kind} | {one.topic} | {cells} | "
                f"{many.ask_ms / one.ask_ms:.1f} | {counts} |"
            )
        print(f"\n### Summary: Assistant.ask over {len(QUESTIONS)} questions (ms)")
        print(
            "| trials | chunks | first question (builds the Vocabulary) | p50 | p95 | max "
            "| understand p50 | scope p50 | search_trials p50 | cold p50 | cold p95 | target p50 |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for c, rows in runs.items():
            asked = [r.ask_ms for r in rows]
            cold = [r.cold_ms for r in rows]
            p50, p95 = _quantiles(asked)
            c50, c95 = _quantiles(cold)
            target = f"< {TARGET_ANSWER_S * 1000:.0f}" if c == copies else ""
            mark = (" ✓" if p50 < TARGET_ANSWER_S * 1000 else " ✗") if c == copies else ""
            print(
                f"| {sizes[c][0]:,} | {sizes[c][1]:,} | {firsts[c]:.0f} | {p50:.0f}{mark} | "
                f"{p95:.0f} | {max(asked):.0f} | "
                f"{statistics.median(r.understand_ms for r in rows):.0f} | "
                f"{statistics.median(r.scope_ms for r in rows):.0f} | "
                f"{statistics.median(r.search_ms for r in rows):.0f} | {c50:.0f} | {c95:.0f} | "
                f"{target} |"
            )
        p1 = statistics.median(r.ask_ms for r in runs[1])
        pn = statistics.median(r.ask_ms for r in runs[copies])
        print(f"p50 ratio {copies}x / 1x: {pn / p1:.1f}")
        print(f"\n### cProfile of one question at {copies}x: {QUESTIONS[0]!r} (all of it: {dump})")
        for order, count in (("cumulative", 25), ("tottime", 15)):
            stream = io.StringIO()
            stats = pstats.Stats(profile, stream=stream)
            stats.strip_dirs().sort_stats(order).print_stats(count)
            print(f"top {count} by {order}:")
            print(_trimmed(stream.getvalue()))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _ask_all(assistant: Assistant) -> tuple[list[Run], float]:
    """Each question asked once after the warm-up question (rag's lru caches hold what earlier
    questions filled them with), then its understand, its scope (verdicts.scope: the trials it
    reads) and the search_trials among them timed apart; then each asked again with the caches
    cleared first. With the time of the warm-up question, which builds the index's Vocabulary
    and the index's concept map."""
    started = time.perf_counter()
    assistant.ask(WARM_UP)
    first = (time.perf_counter() - started) * 1000
    runs: list[Run] = []
    for question in QUESTIONS:
        started = time.perf_counter()
        answer = assistant.ask(question)
        ask_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        q = assistant.understand(question)
        understand_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        reads = verdicts.scope(q, assistant.index)
        scope_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        assistant.retriever.search_trials(
            q.topic or q.text, filters=q.filters, per_trial=4, among=reads.trials
        )
        search_ms = (time.perf_counter() - started) * 1000
        runs.append(
            Run(
                question,
                q.kind,
                q.topic or "",
                ask_ms,
                understand_ms,
                scope_ms,
                len(reads.trials),
                search_ms,
                math.nan,
                Counter(v.verdict for v in answer.verdicts),
            )
        )
    for run in runs:
        _clear_caches()
        started = time.perf_counter()
        assistant.ask(run.question)
        run.cold_ms = (time.perf_counter() - started) * 1000
    return runs, first


def _clear_caches() -> None:
    """Empty every functools.lru_cache of the modules a question runs through."""
    for module in (facts, filters, lexical, understand, verdicts):
        for value in vars(module).values():
            clear: Callable[[], None] | None = getattr(value, "cache_clear", None)
            if callable(clear):
                clear()


def _trimmed(report: str) -> str:
    """pstats' table without its blank lines and preamble."""
    lines = [ln.rstrip() for ln in report.splitlines() if ln.strip()]
    start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
    head = [ln.strip() for ln in lines[:start] if "function calls" in ln]
    return "\n".join(head + lines[start:])


# --- shared -----------------------------------------------------------------------------------


def _queries() -> list[str]:
    lines = (ROOT / "eval" / "retrieval.jsonl").read_text().splitlines()
    return [json.loads(line)["query"] for line in lines if line.strip()]


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _latency(search: Callable[[str], object], queries: list[str]) -> list[float]:
    for query in queries[:5]:
        search(query)
    times = []
    for query in queries:
        started = time.perf_counter()
        search(query)
        times.append((time.perf_counter() - started) * 1000)
    return times


def _quantiles(times: list[float]) -> tuple[float, float]:
    """Median and 95th percentile."""
    return statistics.median(times), statistics.quantiles(times, n=20, method="inclusive")[18]


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _memory() -> str:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    now = pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    return f"resident {now:.0f} MB (peak {_peak_mb():.0f} MB)"


def _revision() -> str:
    """Where rag was imported from: this checkout's commit and the files of rag/ changed
    since, or another folder."""
    imported = Path(rag.__file__).resolve().parent
    if imported != ROOT / "rag":
        return f"{imported} (not this checkout's rag/)"

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.rstrip("\n")

    changed = [line[3:] for line in git("status", "--porcelain", "rag").splitlines()]
    return git("rev-parse", "--short", "HEAD") + (
        f" with uncommitted changes to {', '.join(changed)}" if changed else ""
    )


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
