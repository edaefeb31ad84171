"""Answer latency (not a test; numbers go in the issue note).

- process start to answer: `rag ask` run as a fresh process on the seed index, wall time;
- warm per-question latency of Assistant.ask over eval/seed.jsonl, in one process.

    .venv/bin/python bench/answer.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rag import store
from rag.answer import Assistant
from rag.embed import SentenceEmbedder
from rag.evaluation import load_set
from rag.llm.base import get_backend

ROOT = Path(__file__).resolve().parents[1]
RAG = Path(sys.executable).parent / "rag"
QUESTION = "what platelet count does the Fudan trial require?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    embedder = SentenceEmbedder()
    store.build([ROOT / "corpus"], embedder, root=ROOT / "index")
    cold = []
    for _ in range(args.runs):
        started = time.perf_counter()
        subprocess.run([str(RAG), "ask", QUESTION], cwd=ROOT, check=True, capture_output=True)
        cold.append(time.perf_counter() - started)
    assistant = Assistant(store.load(root=ROOT / "index"), embedder, get_backend("extractive"))
    questions = [q["question"] for q in load_set(str(ROOT / "eval" / "seed.jsonl")).questions]
    assistant.ask(questions[0])
    warm = []
    for question in questions:
        started = time.perf_counter()
        assistant.ask(question)
        warm.append((time.perf_counter() - started) * 1000)
    print(
        f"rag ask, start to answer, {args.runs} runs: median {statistics.median(cold):.2f} s, "
        f"min {min(cold):.2f} s (target < 3 s)"
    )
    print(
        f"warm Assistant.ask over {len(warm)} questions: p50 {statistics.median(warm):.0f} ms, "
        f"p95 {statistics.quantiles(warm, n=20)[18]:.0f} ms"
    )


if __name__ == "__main__":
    main()
