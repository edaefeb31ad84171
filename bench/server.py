"""`rag serve` on a free loopback port, for the HTTP benches (load.py, soak.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

ROOT = Path(__file__).resolve().parents[1]
RAG = ROOT / ".venv" / "bin" / "rag"


@dataclass
class Server:
    url: str
    pid: int
    ready_seconds: float


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc."""
    return _status(pid, "VmRSS:") / 1024


def anonymous_mb(pid: int) -> float:
    """The process's own resident memory, without pages of mapped files, from /proc."""
    return _status(pid, "RssAnon:") / 1024


def threads(pid: int) -> int:
    return int(_status(pid, "Threads:"))


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _status(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return float(line.split()[1])
    return 0.0


@contextmanager
def serving(
    index: str,
    *options: str,
    log: IO[bytes] | None = None,
    launcher: Sequence[str] = (str(RAG),),
) -> Iterator[Server]:
    """Start `rag serve --index INDEX [options]` (through `launcher`, the `rag` script unless
    given), wait for /readyz, stop it with SIGINT."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [*launcher, "serve", "--port", str(port), "--index", index, *options],
        cwd=ROOT,
        stderr=log if log is not None else subprocess.DEVNULL,
        env={**os.environ, "RAG_API_TOKEN": ""},
    )
    try:
        started = time.monotonic()
        while not _answers(f"{url}/readyz"):
            if process.poll() is not None:
                raise SystemExit(f"rag serve exited with code {process.returncode}")
            time.sleep(0.1)
        yield Server(url, process.pid, time.monotonic() - started)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url).status_code == 200
    except httpx.TransportError:
        return False
