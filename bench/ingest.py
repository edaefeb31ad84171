"""Parse throughput of `rag ingest` over a folder of records (default ../shared/data).

Not a test: run it by hand and put the numbers in the issue note.

    .venv/bin/python bench/ingest.py [FOLDER] [--repeat N]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from rag.derive import derive
from rag.ingest import ingest_paths

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best is reported")
    args = parser.parse_args()
    best = float("inf")
    for _ in range(args.repeat):
        start = time.perf_counter()
        reports = ingest_paths([args.folder])
        best = min(best, time.perf_counter() - start)
    trials = [t for r in reports for t in r.trials]
    formats = Counter(t.source.format for t in trials)
    criteria = sum(len(t.criteria) for t in trials)
    errors = sum(1 for r in reports if r.error)
    print(f"{len(reports)} files, {len(trials)} records, {criteria} criteria, {errors} errors")
    for name, count in formats.most_common():
        print(f"  {name:<18} {count:>6}")
    print(
        f"best of {args.repeat}: {best:.2f} s, {len(trials) / best:.0f} records/s, "
        f"{criteria / best:.0f} criteria/s"
    )
    # The share of that time spent reading empty fields from the records' words (rag.derive),
    # timed again on the parsed trials in this process.
    plain = [replace(t, derived=()) for t in trials]
    deriving = float("inf")
    for _ in range(args.repeat):
        start = time.perf_counter()
        found = [derive(t) for t in plain]
        deriving = min(deriving, time.perf_counter() - start)
    values = sum(len(t.derived) for t in found)
    print(
        f"derive: {deriving:.2f} s = {deriving / best:.2f} of the ingest time, "
        f"{values} values on {sum(1 for t in found if t.derived)} records"
    )


if __name__ == "__main__":
    main()
