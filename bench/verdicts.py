"""Corpus-wide verdict latency with the typed criteria the index stores, against typing every
trial's criteria again for each question (the baseline), in one process (not a test; numbers
go in the issue note).

    .venv/bin/python bench/verdicts.py [--index shared] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

from rag import store
from rag.answer import Assistant
from rag.embed import SentenceEmbedder
from rag.llm.base import get_backend

QUESTIONS = (
    "Which trials accept patients with brain metastases?",
    "Which trials exclude patients with hepatitis B?",
    "Which trials would take a 70-year-old woman with ECOG 1 who had nivolumab 2 months ago?",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", default="shared")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    index = store.load(args.index)
    stored = index.read_facts
    if stored is None:
        raise SystemExit(f"index {args.index!r} stores no typed criteria of this rag's rules")
    assistant = Assistant(index, SentenceEmbedder(index.model), get_backend("extractive"))
    assistant.ask(QUESTIONS[0])  # warm the model and caches
    print(f"{len(index.trials)} trials, typed facts stored")
    for question in QUESTIONS:
        with_facts, retyped = [], []
        for _ in range(args.runs):
            index.facts.clear()  # each trial's typed criteria read from facts.jsonl again
            start = time.perf_counter()
            assistant.ask(question)
            with_facts.append(time.perf_counter() - start)
            index.facts.clear()  # every trial's criteria typed again, as with no stored facts
            index.read_facts = None
            start = time.perf_counter()
            assistant.ask(question)
            retyped.append(time.perf_counter() - start)
            index.read_facts = stored
        fast, slow = statistics.median(with_facts), statistics.median(retyped)
        print(
            f"{fast:.2f}s stored vs {slow:.2f}s typed per question ({slow / fast:.1f}x): {question}"
        )


if __name__ == "__main__":
    main()
