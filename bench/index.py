"""Indexing and query benchmark over ../shared/data (not a test; numbers go in the issue note).

Reports, all in one process so the ratios compare like with like:
- indexing throughput of the whole `store.build` (reading, chunking, typing, embedding, BM25,
  FAISS, writing) against plain `model.encode` of the texts it embedded, with the same model
  and batch size (target: the build keeps >= 90%);
- bytes on disk per chunk;
- warm query latency p50/p95 of hybrid search at the corpus size and at ten times it
  (chunks duplicated), exact FAISS and HNSW, with HNSW recall@10 against exact;
- peak resident memory.

    .venv/bin/python bench/index.py [--limit N]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import bm25s
import numpy as np

from rag import store
from rag.embed import SentenceEmbedder
from rag.lexical import tokenize
from rag.retrieve import CANDIDATES, Retriever

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0, help="index only the first N files")
    parser.add_argument("--queries", type=int, default=200, help="timed queries per setting")
    args = parser.parse_args()

    files = sorted(p for p in DATA.rglob("*") if p.is_file() and p.suffix in {".xml", ".json"})
    if args.limit:
        files = files[: args.limit]
    embedder = SentenceEmbedder()
    embedder.encode(["warm up"])

    work = Path(tempfile.mkdtemp(prefix="rag-bench-"))
    try:
        report = store.build(files, embedder, root=work, rebuild=True)
        index = store.load(root=work)
        # The texts the build embedded: each distinct chunk text once.
        texts = list(dict.fromkeys(c.embed_text for c in index.chunks))
        started = time.perf_counter()
        embedder.model.encode(texts, batch_size=embedder.batch_size, normalize_embeddings=True)
        encode = len(texts) / (time.perf_counter() - started)
        pipeline = len(texts) / report.seconds
        disk = sum(p.stat().st_size for p in index.path.rglob("*") if p.is_file())

        queries = _queries(args.queries)
        exact = _latency(Retriever(index, embedder), queries)
        big = _tenfold(index)
        big_exact = _latency(Retriever(big, embedder), queries)
        graph, _ = store.make_faiss_index(big.vectors, approximate=True)
        hnsw = store.Index(
            name="tenfold-hnsw",
            path=big.path,
            manifest=big.manifest | {"faiss": "hnsw"},
            chunks=big.chunks,
            trials=big.trials,
            faiss_index=graph,
            bm25=big.bm25,
        )
        big_hnsw = _latency(Retriever(hnsw, embedder), queries)
        recall = _hnsw_recall(big, hnsw, embedder, queries)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        print(f"{report.files} files, {report.trials} trials, {report.chunks} chunks")
        print(
            f"indexing {len(texts)} distinct texts ({report.repeated} chunks repeated one): "
            f"whole build {pipeline:.0f} texts/s, model.encode alone {encode:.0f} texts/s, "
            f"ratio {pipeline / encode:.2f} (target >= 0.90); build {report.seconds:.0f} s"
        )
        print(f"disk: {disk / report.chunks:.0f} bytes/chunk ({disk / 1e6:.1f} MB)")
        print(f"query latency, warm, hybrid k=10, {len(queries)} queries:")
        for label, size, (p50, p95) in (
            ("exact", report.chunks, exact),
            ("exact", len(big.chunks), big_exact),
            ("HNSW ", len(big.chunks), big_hnsw),
        ):
            print(f"  {size:>7} chunks {label}  p50 {p50:.1f} ms  p95 {p95:.1f} ms")
        print(f"  HNSW recall@10 against exact: {recall:.3f}")
        print(f"peak memory: {peak:.0f} MB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _queries(n: int) -> list[str]:
    gold = ROOT / "eval" / "retrieval.jsonl"
    base = [json.loads(line)["query"] for line in gold.read_text().splitlines() if line.strip()]
    return [base[i % len(base)] + ("" if i < len(base) else f" {i}") for i in range(n)]


def _latency(retriever: Retriever, queries: list[str]) -> tuple[float, float]:
    for query in queries[:5]:
        retriever.search(query, k=10)
    times = []
    for query in queries:
        started = time.perf_counter()
        retriever.search(query, k=10)
        times.append((time.perf_counter() - started) * 1000)
    cuts = statistics.quantiles(times, n=20)
    return statistics.median(times), cuts[18]


def _tenfold(index: store.Index) -> store.Index:
    """The index with every chunk ten times (new ids), vectors tiled, BM25 rebuilt."""
    chunks = [
        replace(c, id=f"{c.id}#{copy}", trial_id=f"{c.trial_id}#{copy}")
        for copy in range(10)
        for c in index.chunks
    ]
    trials = {
        f"{tid}#{copy}": replace(t, id=f"{tid}#{copy}")
        for copy in range(10)
        for tid, t in index.trials.items()
    }
    vectors = np.tile(index.vectors, (10, 1))
    flat, _ = store.make_faiss_index(vectors, approximate=False)
    bm25 = bm25s.BM25()
    bm25.index([tokenize(c.embed_text) for c in chunks], show_progress=False)
    folder = Path(tempfile.mkdtemp(prefix="rag-bench-bm25-"))
    bm25.save(str(folder), show_progress=False)
    return store.Index(
        name="tenfold",
        path=index.path,
        manifest=index.manifest | {"faiss": "flat"},
        chunks=store.ChunkTable.of(chunks),
        trials=store.TrialTable.of(trials.values()),
        faiss_index=flat,
        bm25=store.Postings.read(folder),
    )


def _hnsw_recall(
    exact: store.Index, hnsw: store.Index, embedder: SentenceEmbedder, queries: list[str]
) -> float:
    """Share of HNSW's top 10 that score as high as exact search's 10th.

    Every vector is there ten times, so ids tie; comparing scores counts any copy as found.
    """
    vectors = embedder.encode(queries)
    truth, _ = exact.faiss_index.search(vectors, 10)
    hnsw.faiss_index.hnsw.efSearch = store.ef_search(len(hnsw.chunks), CANDIDATES)
    found, _ = hnsw.faiss_index.search(vectors, 10)
    tenth = truth[:, -1:] - 1e-5
    return float((found >= tenth).sum() / found.size)


if __name__ == "__main__":
    main()
