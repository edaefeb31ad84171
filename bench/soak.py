"""Soak test of `rag serve` (not a test; numbers go in the issue note).

Starts `rag serve` on a free loopback port, then runs --clients httpx clients for --warmup
seconds and then --seconds more, each picking at random (seeded) among:

- ask: POST /v1/ask with a question of an eval set;
- follow-up: the same, inside one of the client's few conversations (ids reused all run);
- stream: POST /v1/ask with "stream": true, read to the "answer" event;
- search: GET /v1/search;
- aborted stream: a streamed ask whose client hangs up after the first bytes.

Every 0.5 s it samples the server's resident memory, threads and open files. At the end it
reports requests, status codes and latency per kind, the count of 5xx and transport errors,
the tracebacks in the server's log, and the server's RSS at the end of the run against RSS
at the end of the warm-up (the target: within 10%, and zero 5xx).

    .venv/bin/python bench/soak.py                                  # 10 minutes, index default
    .venv/bin/python bench/soak.py --index shared --set shared --set blind_shared
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from server import open_files, rss_mb, serving, threads

from rag.evaluation import load_set

ROOT = Path(__file__).resolve().parents[1]
KINDS = {"ask": 30, "follow-up": 10, "stream": 20, "search": 25, "aborted": 15}


@dataclass
class Tally:
    codes: Counter[tuple[str, int]] = field(default_factory=Counter)
    latency: dict[str, list[float]] = field(default_factory=dict)
    transport: Counter[str] = field(default_factory=Counter)
    bad: Counter[str] = field(default_factory=Counter)  # 200s whose body is not an answer

    def record(self, kind: str, code: int, seconds: float) -> None:
        self.codes[kind, code] += 1
        if code == 200:
            self.latency.setdefault(kind, []).append(seconds * 1000)


@dataclass
class Sample:
    at: float
    rss: float
    threads: int
    files: int


async def one(
    http: httpx.AsyncClient, kind: str, question: str, conversation: str, tally: Tally
) -> None:
    begin = time.perf_counter()
    body: dict[str, object] = {"question": question}
    if kind == "follow-up":
        body["conversation_id"] = conversation
    if kind == "search":
        response = await http.get("/v1/search", params={"q": question})
        tally.record(kind, response.status_code, time.perf_counter() - begin)
        if response.status_code == 200 and "hits" not in response.json():
            tally.bad[kind] += 1
        return
    if kind in ("ask", "follow-up"):
        response = await http.post("/v1/ask", json=body)
        tally.record(kind, response.status_code, time.perf_counter() - begin)
        if response.status_code == 200 and "answer" not in response.json():
            tally.bad[kind] += 1
        return
    async with http.stream("POST", "/v1/ask", json=body | {"stream": True}) as response:
        if kind == "aborted":
            async for _ in response.aiter_bytes():
                break  # hang up after the first bytes: the context manager closes the socket
            tally.record(kind, response.status_code, time.perf_counter() - begin)
            return
        text = "".join([chunk async for chunk in response.aiter_text()])
        tally.record(kind, response.status_code, time.perf_counter() - begin)
        if response.status_code == 200 and "event: answer" not in text:
            tally.bad[kind] += 1


async def soak(
    url: str, pid: int, questions: list[str], args: argparse.Namespace
) -> tuple[Tally, list[Sample], float]:
    tally = Tally()
    samples: list[Sample] = []
    started = time.monotonic()
    warm_end = started + args.warmup
    end = warm_end + args.seconds

    async def client(number: int, http: httpx.AsyncClient) -> None:
        pick = random.Random(args.seed + number)
        conversations = [f"soak-{number}-{i}" for i in range(3)]
        kinds, weights = list(KINDS), list(KINDS.values())
        while time.monotonic() < end:
            kind = pick.choices(kinds, weights)[0]
            try:
                await one(http, kind, pick.choice(questions), pick.choice(conversations), tally)
            except httpx.HTTPError as exc:
                tally.transport[f"{kind}: {type(exc).__name__}"] += 1

    async def sample() -> None:
        while time.monotonic() < end:
            samples.append(
                Sample(time.monotonic() - started, rss_mb(pid), threads(pid), open_files(pid))
            )
            await asyncio.sleep(0.5)

    timeout = httpx.Timeout(120.0, connect=10.0)
    async with httpx.AsyncClient(base_url=url, timeout=timeout) as http:
        await asyncio.gather(sample(), *(client(n, http) for n in range(args.clients)))
    return tally, samples, args.warmup


def report(tally: Tally, samples: list[Sample], warmup: float, log: str, run: float) -> None:
    kinds = sorted({kind for kind, _ in tally.codes})
    print("| kind | requests | status codes | p50 ms | p95 ms |")
    print("|---|---|---|---|---|")
    for kind in kinds:
        codes = {code: n for (k, code), n in sorted(tally.codes.items()) if k == kind}
        times = tally.latency.get(kind, [])
        cuts = statistics.quantiles(times, n=20) if len(times) > 1 else [0.0] * 19
        print(
            f"| {kind} | {sum(codes.values())} | "
            + ", ".join(f"{code}: {n}" for code, n in codes.items())
            + f" | {statistics.median(times) if times else 0:.0f} | {cuts[18]:.0f} |"
        )
    total = sum(tally.codes.values())
    server_errors = sum(n for (_, code), n in tally.codes.items() if code >= 500)
    print(
        f"{total} requests in {run:.0f} s ({total / run:.1f}/s); 5xx: {server_errors}; "
        f"transport errors: {sum(tally.transport.values())} {dict(tally.transport) or ''}; "
        f"200s that were not an answer: {sum(tally.bad.values())}; "
        f"tracebacks in the server log: {log.count('Traceback')}"
    )
    warm = [s for s in samples if s.at <= warmup][-1]
    last = samples[-1]
    print("| RSS MB | threads | open files | at |")
    print("|---|---|---|---|")
    print(f"| {samples[0].rss:.0f} | {samples[0].threads} | {samples[0].files} | start |")
    print(f"| {warm.rss:.0f} | {warm.threads} | {warm.files} | end of warm-up ({warm.at:.0f} s) |")
    print(
        f"| {max(s.rss for s in samples):.0f} | {max(s.threads for s in samples)} | "
        f"{max(s.files for s in samples)} | maximum |"
    )
    print(f"| {last.rss:.0f} | {last.threads} | {last.files} | end ({last.at:.0f} s) |")
    minutes = {int(s.at // 60): s.rss for s in samples}
    print("RSS MB at each minute: " + ", ".join(f"{m}: {r:.0f}" for m, r in minutes.items()))
    print(
        f"RSS end / RSS after warm-up: {last.rss / warm.rss:.3f} (target <= 1.10); "
        f"5xx: {server_errors} (target 0)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", default="default")
    parser.add_argument(
        "--set", action="append", help="eval set whose questions are asked (repeatable; seed)"
    )
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before measuring")
    parser.add_argument("--seconds", type=float, default=600.0, help="measured seconds")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    questions = [
        q["question"]
        for name in args.set or ["seed"]
        for q in load_set(name, ROOT / "eval").questions
    ]
    with tempfile.TemporaryFile() as log:
        with serving(args.index, log=log) as server:
            print(
                f"index {args.index}, {len(questions)} questions, {args.clients} clients, "
                f"ready in {server.ready_seconds:.1f} s; warm-up {args.warmup:.0f} s, "
                f"then {args.seconds:.0f} s"
            )
            begin = time.monotonic()
            tally, samples, warmup = asyncio.run(soak(server.url, server.pid, questions, args))
            run = time.monotonic() - begin
        log.seek(0)
        report(tally, samples, warmup, log.read().decode("utf-8", "replace"), run)


if __name__ == "__main__":
    main()
