"""Load test of the HTTP API: throughput and p50/p95/p99 latency at 1, 8 and 32 clients.

Starts `rag serve` on a free loopback port over an index, waits for /readyz, warms up, then
for each concurrency level runs that many httpx async clients asking POST /v1/ask with the
questions of an eval set in turn, for at most --seconds and --requests per level. The server's
resident memory is sampled every 0.2 s. Loopback only; bounded in clients, time and count.

    .venv/bin/python bench/load.py                       # index default, eval/seed.jsonl
    .venv/bin/python bench/load.py --index shared --set shared
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

import httpx
from server import rss_mb, serving

from rag.evaluation import load_set

ROOT = Path(__file__).resolve().parents[1]
LEVELS = (1, 8, 32)


async def level(
    url: str, questions: list[str], clients: int, seconds: float, cap: int, pid: int
) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    memory: list[float] = []
    deadline = time.monotonic() + seconds
    next_question = 0
    started = time.monotonic()

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal errors, next_question
        while time.monotonic() < deadline and len(latencies) + errors < cap:
            question = questions[next_question % len(questions)]
            next_question += 1
            begin = time.perf_counter()
            try:
                response = await http.post("/v1/ask", json={"question": question})
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append((time.perf_counter() - begin) * 1000)
            else:
                errors += 1

    async def sample() -> None:
        while time.monotonic() < deadline and len(latencies) + errors < cap:
            memory.append(rss_mb(pid))
            await asyncio.sleep(0.2)

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        await asyncio.gather(sample(), *(client(http) for _ in range(clients)))
    elapsed = time.monotonic() - started
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "p50": cuts[49],
        "p95": cuts[94],
        "p99": cuts[98],
        "rss_start": memory[0] if memory else 0.0,
        "rss_max": max(memory) if memory else 0.0,
        "rss_end": memory[-1] if memory else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", default="default")
    parser.add_argument("--set", default="seed", help="eval set whose questions are asked")
    parser.add_argument("--seconds", type=float, default=20.0, help="per level, at most")
    parser.add_argument("--requests", type=int, default=2000, help="per level, at most")
    args = parser.parse_args()
    questions = [q["question"] for q in load_set(args.set, ROOT / "eval").questions]
    with serving(args.index) as server:
        url = server.url
        for question in questions[:20]:  # warm up: first calls pay for lazy set-up
            httpx.post(f"{url}/v1/ask", json={"question": question}, timeout=120)
        print(
            f"index {args.index}, {len(questions)} questions from {args.set}, "
            f"ready in {server.ready_seconds:.1f} s, RSS after warm-up {rss_mb(server.pid):.0f} MB"
        )
        print(
            "| clients | reqs | errors | req/s | p50 ms | p95 ms | p99 ms | RSS MB start/max/end |"
        )
        print("|---|---|---|---|---|---|---|---|")
        rows = []
        for clients in LEVELS:
            row = asyncio.run(
                level(url, questions, clients, args.seconds, args.requests, server.pid)
            )
            rows.append(row)
            print(
                f"| {clients} | {row['requests']:.0f} | {row['errors']:.0f} | {row['rps']:.1f} | "
                f"{row['p50']:.0f} | {row['p95']:.0f} | {row['p99']:.0f} | "
                f"{row['rss_start']:.0f}/{row['rss_max']:.0f}/{row['rss_end']:.0f} |"
            )
        base = rows[0]["rps"]
        print(
            "throughput ratio to 1 client: "
            + ", ".join(f"{r['clients']}: {r['rps'] / base:.2f}" for r in rows)
        )
        print(f"RSS growth over the run: {rows[-1]['rss_end'] - rows[0]['rss_start']:+.0f} MB")


if __name__ == "__main__":
    main()
