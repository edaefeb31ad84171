"""Start-up time and memory of the query path, against torch measured in the same run.

Not a test: run it by hand and put the numbers in the issue note. Reports:
- `python -c "import torch"` and `rag ask` (on --index), each a fresh process, wall time over
  --runs runs, for a corpus-wide question and for one naming a trial; the target is rag ask's
  median <= 0.5x torch's;
- `rag serve --index` resident memory once ready and after --warm questions, as it runs and,
  for comparison, the same server with torch imported first, and the same server embedding
  questions with sentence-transformers (torch, transformers and the model in torch), as
  `rag serve` did when issue 13 was filed; the target is <= 60% of that. Resident memory
  counts the pages of files mapped into memory (the index's vectors and records, the model's
  weights), which the kernel can drop and read again; the anonymous part is the process's
  own.

    .venv/bin/python bench/startup.py                           # index default
    .venv/bin/python bench/startup.py --index shared --runs 7
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import httpx
from server import RAG, ROOT, anonymous_mb, rss_mb, serving

QUESTION = "which trials allow prior PD-1 inhibitors?"
NAMED = "who sponsors the APEC study?"
WITH_TORCH = (sys.executable, "-c", "import torch; from rag.cli import app; app()")
# Questions embedded by sentence-transformers, as the query path did before rag.minilm.
WITH_SENTENCE_TRANSFORMERS = (
    sys.executable,
    "-c",
    "import rag.embed; rag.embed.QUERY_BATCH = 0; from rag.cli import app; app()",
)


def wall(command: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return times


def served_rss(index: str, warm: int, launcher: tuple[str, ...]) -> tuple[float, float, float]:
    """RSS in MB once ready and after `warm` questions, and the anonymous part of the latter."""
    with serving(index, launcher=launcher) as server:
        ready = rss_mb(server.pid)
        for i in range(warm):
            question = f"{QUESTION} ({i})" if i % 2 else NAMED
            httpx.post(f"{server.url}/v1/ask", json={"question": question}, timeout=120)
            httpx.get(f"{server.url}/v1/search", params={"q": question}, timeout=120)
        return ready, rss_mb(server.pid), anonymous_mb(server.pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", default="default")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warm", type=int, default=20, help="questions before measuring RSS")
    args = parser.parse_args()
    torch = wall([sys.executable, "-c", "import torch"], args.runs)
    ask = wall([str(RAG), "ask", "--name", args.index, QUESTION], args.runs)
    named = wall([str(RAG), "ask", "--name", args.index, NAMED], args.runs)
    lean = served_rss(args.index, args.warm, (str(RAG),))
    heavy = served_rss(args.index, args.warm, WITH_TORCH)
    before = served_rss(args.index, args.warm, WITH_SENTENCE_TRANSFORMERS)
    t = statistics.median(torch)
    print(f"index {args.index}, {args.runs} runs each, medians (min):")
    print("| measure | value |")
    print("|---|---|")
    print(f"| python -c 'import torch' | {t:.2f} s ({min(torch):.2f}) |")
    for question, times in ((QUESTION, ask), (NAMED, named)):
        a = statistics.median(times)
        print(f"| rag ask {question!r}, start to answer | {a:.2f} s ({min(times):.2f}) |")
        print(f"| the same / import torch | {a / t:.2f} (target <= 0.5) |")
    print(f"| rag serve RSS after {args.warm} questions | ready / after / anonymous |")
    for label, mb in (
        ("rag serve", lean),
        ("the same, torch imported", heavy),
        ("the same, questions embedded by sentence-transformers", before),
    ):
        print(f"| {label} | {mb[0]:.0f} / {mb[1]:.0f} / {mb[2]:.0f} MB |")
    for label, base in (("torch imported", heavy), ("sentence-transformers", before)):
        print(
            f"| ratio against {label}: RSS {lean[1] / base[1]:.2f}, anonymous "
            f"{lean[2] / base[2]:.2f} | target <= 0.60 |"
        )


if __name__ == "__main__":
    main()
