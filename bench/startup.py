"""Start-up time and memory of the query path, against torch measured in the same run.

Not a test: run it by hand and put the numbers in the issue note. Reports:
- `python -c "import torch"` and `rag ask QUESTION` (on --index), each a fresh process, wall
  time over --runs runs; the target is rag ask's median <= 0.5x torch's;
- `rag serve --index` resident memory once ready and after --warm questions, as it runs and,
  for comparison, the same server with torch imported first (what the query path held when
  it embedded questions with torch); the target is <= 60% of the latter.

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
from server import RAG, ROOT, rss_mb, serving

QUESTION = "which trials allow prior PD-1 inhibitors?"
WITH_TORCH = (sys.executable, "-c", "import torch; from rag.cli import app; app()")


def wall(command: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return times


def served_rss(index: str, warm: int, launcher: tuple[str, ...]) -> tuple[float, float]:
    """RSS in MB once ready and after `warm` questions."""
    with serving(index, launcher=launcher) as server:
        ready = rss_mb(server.pid)
        for i in range(warm):
            question = f"{QUESTION} ({i})" if i % 2 else "who sponsors the APEC study?"
            httpx.post(f"{server.url}/v1/ask", json={"question": question}, timeout=120)
            httpx.get(f"{server.url}/v1/search", params={"q": question}, timeout=120)
        return ready, rss_mb(server.pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", default="default")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warm", type=int, default=20, help="questions before measuring RSS")
    args = parser.parse_args()
    torch = wall([sys.executable, "-c", "import torch"], args.runs)
    ask = wall([str(RAG), "ask", "--name", args.index, QUESTION], args.runs)
    lean = served_rss(args.index, args.warm, (str(RAG),))
    heavy = served_rss(args.index, args.warm, WITH_TORCH)
    t, a = statistics.median(torch), statistics.median(ask)
    print(f"index {args.index}, {args.runs} runs each, medians (min):")
    print("| measure | value |")
    print("|---|---|")
    print(f"| python -c 'import torch' | {t:.2f} s ({min(torch):.2f}) |")
    print(f"| rag ask, start to answer | {a:.2f} s ({min(ask):.2f}) |")
    print(f"| rag ask / import torch | {a / t:.2f} (target <= 0.5) |")
    print(
        f"| rag serve RSS, ready / after {args.warm} questions | {lean[0]:.0f} / {lean[1]:.0f} MB |"
    )
    print(f"| the same with torch imported | {heavy[0]:.0f} / {heavy[1]:.0f} MB |")
    print(f"| RSS ratio after questions | {lean[1] / heavy[1]:.2f} (target <= 0.60) |")


if __name__ == "__main__":
    main()
