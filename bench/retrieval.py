"""Recall@5 and MRR of dense, BM25 and hybrid retrieval on eval/retrieval.jsonl.

Builds (or updates) index/retrieval-eval over corpus/ and, when present, the 100 NSCLC studies
of ../shared/data, then prints one row per method and the queries hybrid misses.

    .venv/bin/python bench/retrieval.py [--misses]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rag import store
from rag.embed import SentenceEmbedder
from rag.metrics import recall_at, reciprocal_rank, score
from rag.retrieve import Method, Retriever

ROOT = Path(__file__).resolve().parents[1]
NSCLC = ROOT.parent / "shared" / "data" / "ctgov-v2" / "nsclc-ctg-studies.json"
NAME = "retrieval-eval"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--misses", action="store_true", help="list the queries hybrid misses")
    args = parser.parse_args()
    embedder = SentenceEmbedder()
    paths = [ROOT / "corpus"] + ([NSCLC] if NSCLC.exists() else [])
    store.build(paths, embedder, name=NAME, root=ROOT / "index")
    index = store.load(NAME, ROOT / "index")
    retriever = Retriever(index, embedder)
    lines = (ROOT / "eval" / "retrieval.jsonl").read_text().splitlines()
    queries = [json.loads(line) for line in lines if line.strip()]
    queries = [q for q in queries if all(g.split("/")[0] in index.trials for g in q["gold"])]
    methods: tuple[Method, ...] = ("dense", "lexical", "hybrid")
    print(f"{len(queries)} queries, {len(index.chunks)} chunks")
    print(f"{'method':<8} {'recall@5':>9} {'MRR':>6}")
    for method in methods:
        runs = [
            ([h.chunk.id for h in retriever.search(q["query"], k=10, method=method)], q["gold"])
            for q in queries
        ]
        result = score(runs, k=5)
        print(f"{method:<8} {result.recall_at_k:>9.3f} {result.mrr:>6.3f}")
        if args.misses and method == "hybrid":
            for q, (found, gold) in zip(queries, runs, strict=True):
                if recall_at(found, gold, 5) < 1:
                    rr = reciprocal_rank(found, gold)
                    print(
                        f"  miss rr={rr:.2f} [{q['kind']}] {q['query']}\n    gold={gold}"
                        f"\n    got={found[:5]}"
                    )


if __name__ == "__main__":
    main()
