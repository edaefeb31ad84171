"""The sole reader and writer of index/<name>/: vectors, BM25, chunks, trials and manifest.

Layout: `index/<name>` is a symbolic link to a version folder `index/.<name>-<id>/` holding

    manifest.json   format, model, dimension, library versions, file and corpus hashes
    vectors.faiss   FAISS inner-product index of unit vectors (cosine scores)
    bm25/           bm25s index over the same chunks, in the same order
    chunks.jsonl    one Chunk a line, with the hash of its embedded text
    trials.jsonl    one Trial a line (fields for filters, criteria for citations)
    rows.npz        where each line of both starts, each chunk's trial (its line in
                    trials.jsonl) and kind; which trials each naming word names, how surely
    rows.json       each chunk's and each trial's id, the trials' titles, other NCT numbers
                    and acronyms, and the naming words (rag.naming), read when a question
                    names a trial, unless the rules that made them were older
    facts.jsonl     each trial's typed criteria (rag.facts), a line each in the trials' order,
                    read by corpus-wide verdicts as they reach each trial
    concepts.json   the trials and typed criteria under each concept (Index.concept_criteria)
Typed criteria and naming words stored by older rules than this rag's are not read: they are
made again from the trials as questions need them.

A build writes a new version folder beside the live one and swaps the link in one rename at
the end, so a build killed at any moment leaves the previous index as it was. A lock file
(`index/<name>.lock`, held with flock) refuses a second concurrent writer. A rebuild reuses the
vectors of chunks whose embedded text is unchanged, so only changed chunks are embedded.

A load reads the rows and maps the rest into memory: a chunk or a trial is parsed from its
line when a question first asks for it (ChunkTable, TrialTable), and the vectors are FAISS's
memory-mapped storage. Loading the 2,522 trials of ../shared/data took 1.3 s when every
record was parsed up front.
"""

from __future__ import annotations

import fcntl
import gc
import hashlib
import json
import mmap
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, TypeVar, get_args, overload

import faiss
import numpy as np
import numpy.typing as npt

from rag.chunk import chunk_trials
from rag.embed import Embedder, Vectors
from rag.errors import StoreError
from rag.facts import FACTS_VERSION, Typed, type_trial
from rag.lexical import stem, tokenize
from rag.naming import NAMING_VERSION, Naming
from rag.types import Chunk, ChunkKind, Trial, nct_aliases, trial_key

# 2: trials carry derived values, design, arms, contacts, locations; chunks the readable name.
# 3: trials carry their study ids and keywords (names people give them).
# 4: rows.npz and rows.json, so that a load parses no record until a question reads it.
FORMAT_VERSION = 4
INDEX_ROOT = Path("index")
DEFAULT_NAME = "default"
# Exact search is one matrix product per query, about 0.11 ms per thousand chunks on 2 cores
# (11 ms at 100,000); above this many chunks an HNSW graph is used instead, 0.7 ms at 100,000
# and 0.9 ms at a million, with recall@10 against exact measured by bench/scale.py.
APPROXIMATE_ABOVE = 50_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH_MAX = 1600
HNSW_CHUNKS_PER_EF = 625
# An approximate index scores exactly a search for more than 1/EXACT_SHARE of the chunks
# (every trial, for "which trials ..."; a graph walk to k = n is far slower than one matrix
# product), and one confined to fewer (one trial's chunks, which the graph's top k may miss).
EXACT_SHARE = 10
GATHER_BLOCK = 4096  # chunk vectors gathered at once for exact scores of some (6 MB at 384-d)
GATHER_SHARE = 3  # past a third of the chunks, gathering their vectors costs more than a product
# over all of them (606,510 chunks: a third gathered in 84 ms, all in 183; the product 77 ms)
# Chunks parsed and kept at once (about 1.7 KB each): a scan of the 2,522 trials of
# ../shared/data reads a few thousand; the rest are parsed again when asked for (13 us each).
CHUNK_CACHE = 16_384
CHUNK_KINDS: tuple[ChunkKind, ...] = get_args(ChunkKind)
T = TypeVar("T")
Rows = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]  # one flag per chunk


class ChunkTable(Sequence[Chunk]):
    """The index's chunks in order. What a question reads of every chunk is held in arrays:
    its id, its trial (a place in `trial_order`) and its kind; a Chunk itself is made when
    asked for, by `read` (from its line of chunks.jsonl, for a stored index)."""

    def __init__(
        self,
        ids: list[str],
        owners: npt.NDArray[np.int64],
        kinds: npt.NDArray[np.uint8],
        trial_order: list[str],
        read: Callable[[int], Chunk],
    ) -> None:
        self.ids = ids
        self.owners = owners
        self.kinds = kinds
        self.trial_order = trial_order
        self._read = read

    @classmethod
    def of(cls, chunks: Sequence[Chunk]) -> ChunkTable:
        """A table over chunks held in memory; the trials in the order of their first chunk."""
        order = list(dict.fromkeys(c.trial_id for c in chunks))
        places = {trial_id: i for i, trial_id in enumerate(order)}
        return cls(
            [c.id for c in chunks],
            np.array([places[c.trial_id] for c in chunks], dtype=np.int64),
            np.array([CHUNK_KINDS.index(c.kind) for c in chunks], dtype=np.uint8),
            order,
            list(chunks).__getitem__,
        )

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, i: int) -> Chunk: ...

    @overload
    def __getitem__(self, i: slice) -> list[Chunk]: ...

    def __getitem__(self, i: int | slice) -> Chunk | list[Chunk]:
        if isinstance(i, slice):
            return [self._read(j) for j in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        return self._read(i % len(self))

    def kind_is(self, kind: ChunkKind) -> Mask:
        return np.asarray(self.kinds == CHUNK_KINDS.index(kind))


class TrialTable(Mapping[str, Trial]):
    """The index's trials by id, in order; a Trial is made when first asked for, by `read`
    (from its line of trials.jsonl, for a stored index), and kept. What every question reads
    of every trial is held apart: `aliases`, the other NCT numbers the trials were registered
    under, and `titles`, each trial's title and official title (a question may name a trial by
    either)."""

    def __init__(
        self,
        ids: list[str],
        aliases: dict[str, str],
        read: Callable[[int], Trial],
    ) -> None:
        self.ids = ids
        self.aliases = aliases
        self._places = {trial_id: i for i, trial_id in enumerate(ids)}
        self._read = read
        self._made: dict[str, Trial] = {}

    @classmethod
    def of(cls, trials: Iterable[Trial]) -> TrialTable:
        """A table over trials held in memory."""
        held = list(trials)
        return cls([t.id for t in held], nct_aliases(held), held.__getitem__)

    def __getitem__(self, trial_id: str) -> Trial:
        """The trial (KeyError for an id the index does not hold)."""
        found = self._made.get(trial_id)
        if found is None:
            found = self._made[trial_id] = self._read(self._places[trial_id])
        return found

    def __contains__(self, trial_id: object) -> bool:
        return trial_id in self._places

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True, slots=True)
class BuildReport:
    """What a build did, for the command line and the tests."""

    name: str
    path: Path
    files: int
    trials: int
    chunks: int
    embedded: int  # texts the model embedded
    reused: int  # chunks whose vector the previous index had
    dropped_trials: int
    repeated: int = 0  # chunks whose text another chunk of this build has: embedded once
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    seconds: float = 0.0


@dataclass
class Index:
    """A loaded index: chunks, trials, dense and lexical search over the same chunk order."""

    name: str
    path: Path
    manifest: dict[str, Any]
    chunks: ChunkTable
    trials: TrialTable
    faiss_index: Any
    bm25: Postings
    facts: dict[str, tuple[Typed, ...]] = field(default_factory=dict)  # those read or typed
    # the stored typed criteria of the trial at a place, when this rag's rules typed them
    read_facts: Callable[[int], tuple[Typed, ...]] | None = None
    concepts_file: Path | None = None  # concept_criteria, stored with the typed criteria
    naming: Naming | None = None  # the trials' naming words, when stored by this rag's rules

    def find_trial(self, trial_id: str) -> Trial | None:
        """A trial by id as a user types it: NCT numbers (its own or an alias) and T- ids in any
        case."""
        key = trial_key(trial_id)
        return self.trials.get(key) or self.trials.get(self.aliases.get(key, ""))

    @property
    def aliases(self) -> dict[str, str]:
        return self.trials.aliases

    @cached_property
    def trial_chunks(self) -> dict[str, list[int]]:
        """Each trial's chunks (rows), in order, by trial id, in trial_order."""
        order = np.argsort(self.owners, kind="stable")
        cuts = np.cumsum(np.bincount(self.owners, minlength=len(self.trial_order)))[:-1]
        rows = np.split(order, cuts)
        return {t: rows[i].tolist() for i, t in enumerate(self.trial_order)}

    def typed(self, trial_id: str) -> tuple[Typed, ...]:
        """The trial's typed criteria: stored by the build, else typed now (once)."""
        found = self.facts.get(trial_id)
        if found is None:
            read = self.read_facts
            found = self.facts[trial_id] = (
                read(self.places[trial_id]) if read else tuple(type_trial(self.trials[trial_id]))
            )
        return found

    def card(self, trial_id: str) -> Chunk:
        """The trial's field card (every trial has one)."""
        card = CHUNK_KINDS.index("card")
        return next(
            self.chunks[i] for i in self.trial_chunks[trial_id] if self.chunks.kinds[i] == card
        )

    @property
    def model(self) -> str:
        return str(self.manifest["model"])

    @cached_property
    def vectors(self) -> Vectors:
        """All chunk vectors, in chunk order: a view of FAISS's own storage, flat or under the
        HNSW graph (no copy: 92 MB on the 2,522 trials of ../shared/data, 1.5 GB at a million
        chunks), valid while this Index lives."""
        return _stored_vectors(self.faiss_index)

    @property
    def exact(self) -> bool:
        return bool(self.manifest["faiss"] == "flat")

    def dense_top(
        self, query: Vectors, candidates: int, allowed: Mask | None = None
    ) -> tuple[Rows, Vectors]:
        """The rows of the chunks nearest the query, with their cosine scores.

        An exact index scores every chunk (one matrix product). An approximate one scores
        exactly the `allowed` chunks when they are few (one trial's, for a question about it)
        and every chunk when most are asked for ("which trials ..."); else it walks the HNSW
        graph to the top `candidates`."""
        n = len(self.chunks)
        if self.exact or candidates >= n // EXACT_SHARE:
            scores: Vectors = self.vectors @ query.reshape(-1)
            return np.arange(n), scores
        among = None if allowed is None else np.flatnonzero(allowed)
        if among is not None and len(among) <= n // EXACT_SHARE:
            return among, self.dense_scores(query, among)
        self.faiss_index.hnsw.efSearch = ef_search(n, candidates)
        found, ids = self.faiss_index.search(query.reshape(1, -1), candidates)
        keep = ids[0] >= 0
        return ids[0][keep], found[0][keep]

    def lexical_scores(self, tokens: Sequence[str]) -> Vectors:
        """BM25 score of every chunk for the tokens the index knows."""
        return self.bm25.scores(tokens)

    def rows_with(self, tokens: Iterable[str]) -> Rows:
        """The chunks whose words, as BM25 indexed them (the chunk's text and its header),
        include any of the tokens, in chunk order."""
        return self.bm25.rows(tokens)

    def trials_of(self, rows: Rows) -> list[str]:
        """The trials the chunks belong to, in trial_order."""
        order = self.trial_order
        return [order[i] for i in _distinct(self.owners[rows]).tolist()]

    @property
    def trial_order(self) -> list[str]:
        """The trials in the order their chunks were made (the order of trial_chunks)."""
        return self.chunks.trial_order

    @cached_property
    def places(self) -> dict[str, int]:
        """Each trial's place in trial_order."""
        return {trial_id: i for i, trial_id in enumerate(self.trial_order)}

    @cached_property
    def criteria(self) -> Mask:
        """Which chunks are criteria."""
        return self.chunks.kind_is("criterion")

    @property
    def owners(self) -> npt.NDArray[np.int64]:
        """Each chunk's trial, as its place in trial_order."""
        return self.chunks.owners

    def dense_scores(self, query: Vectors, rows: Rows) -> Vectors:
        """The exact cosine scores of the chunks in `rows`: one product over every chunk when
        they are most of them, else gathered a block at a time into one buffer (a gather of
        them all at once spends more on fresh memory than the product takes)."""
        query = query.reshape(-1)
        if len(rows) * GATHER_SHARE >= len(self.chunks):
            everything: Vectors = self.vectors @ query
            return everything if len(rows) == len(everything) else everything[rows]
        scores = np.empty(len(rows), dtype=np.float32)
        block = np.empty((min(GATHER_BLOCK, len(rows)), self.vectors.shape[1]), dtype=np.float32)
        for start in range(0, len(rows), GATHER_BLOCK):
            part = rows[start : start + GATHER_BLOCK]
            np.take(self.vectors, part, axis=0, out=block[: len(part)])
            scores[start : start + len(part)] = block[: len(part)] @ query
        return scores

    @cached_property
    def concept_criteria(self) -> dict[str, dict[str, tuple[int, ...]]]:
        """Under each key a typed mention is found by (Mention.keys: its concept, each of its
        qualifiers), the trials with such a mention and where their typed criteria have one:
        stored by the build (else read from every trial's typed criteria once), so that a
        corpus-wide question reads only the trials, and the criteria, that speak to what it
        asks."""
        if self.concepts_file is not None:
            stored: dict[str, dict[str, list[int]]] = json.loads(self.concepts_file.read_text())
        else:
            stored = _concepts((trial_id, self.typed(trial_id)) for trial_id in self.trials)
        return {
            key: {trial_id: tuple(places) for trial_id, places in trials.items()}
            for key, trials in stored.items()
        }

    def typed_naming(self, trial_id: str, keys: Iterable[str]) -> tuple[Typed, ...]:
        """The trial's typed criteria with a mention found under any of the keys, in order."""
        places = sorted(
            {p for k in keys for p in self.concept_criteria.get(k, {}).get(trial_id, ())}
        )
        typed = self.typed(trial_id)
        return tuple(typed[p] for p in places)


@dataclass(frozen=True)
class Postings:
    """The BM25 index bm25s saves (each term's chunks and its precomputed BM25 score in each,
    in compressed columns), read and scored with numpy alone: bm25s, and scipy with it, are
    imported only to build one. The arrays are memory-mapped."""

    vocabulary: dict[str, int]
    data: Vectors
    indices: npt.NDArray[np.int32]
    indptr: npt.NDArray[np.int64]
    documents: int

    @classmethod
    def read(cls, folder: Path) -> Postings:
        params = json.loads((folder / "params.index.json").read_text())
        return cls(
            vocabulary=json.loads((folder / "vocab.index.json").read_text()),
            data=np.load(folder / "data.csc.index.npy", mmap_mode="r"),
            indices=np.load(folder / "indices.csc.index.npy", mmap_mode="r"),
            indptr=np.load(folder / "indptr.csc.index.npy", mmap_mode="r"),
            documents=int(params["num_docs"]),
        )

    def rows(self, tokens: Iterable[str]) -> Rows:
        """The documents holding any of the tokens, in order."""
        ids = [self.vocabulary[t] for t in set(tokens) if t in self.vocabulary]
        if not ids:
            return np.zeros(0, dtype=np.int64)
        found = [self.indices[int(self.indptr[i]) : int(self.indptr[i + 1])] for i in ids]
        return _distinct(np.concatenate(found))

    @cached_property
    def stems(self) -> dict[str, tuple[str, ...]]:
        """The known tokens by their stem (rag.lexical.stem)."""
        found: dict[str, list[str]] = {}
        for token in self.vocabulary:
            found.setdefault(stem(token), []).append(token)
        return {key: tuple(tokens) for key, tokens in found.items()}

    def containing(self, part: str) -> list[str]:
        """The known tokens with `part` inside them ("ecog" is in "ecog-ps")."""
        return [t for t in self.vocabulary if part in t]

    def scores(self, tokens: Sequence[str]) -> Vectors:
        """The BM25 score of every chunk: the sum of its scores for the known tokens (a token
        given twice counts twice, as in bm25s)."""
        ids = [self.vocabulary[t] for t in tokens if t in self.vocabulary]
        if not ids:
            return np.zeros(self.documents, dtype=np.float32)
        spans = [(int(self.indptr[i]), int(self.indptr[i + 1])) for i in ids]
        rows = np.concatenate([self.indices[a:b] for a, b in spans])
        weights = np.concatenate([self.data[a:b] for a, b in spans])
        return np.bincount(rows, weights=weights, minlength=self.documents).astype(np.float32)


def _distinct(values: npt.NDArray[Any]) -> Rows:
    """The values in order, each once: np.unique, without its import of numpy.ma (10 to 15 ms
    of a `rag ask`)."""
    ordered = np.sort(values)
    keep = np.ones(len(ordered), dtype=bool)
    keep[1:] = ordered[1:] != ordered[:-1]
    return ordered[keep].astype(np.int64)


def _stored_vectors(index: Any) -> Vectors:
    """A FAISS index's vectors, flat or under an HNSW graph, as a view of its storage."""
    flat: Any = index if isinstance(index, faiss.IndexFlat) else faiss.downcast_index(index.storage)
    n, dim = flat.ntotal, flat.d
    stored = faiss.rev_swig_ptr(flat.get_xb(), n * dim)
    return np.asarray(stored, dtype=np.float32).reshape(n, dim)


def index_path(name: str, root: Path = INDEX_ROOT) -> Path:
    return root / name


def load(
    name: str = DEFAULT_NAME,
    root: Path = INDEX_ROOT,
    *,
    model: str | None = None,
) -> Index:
    """The live index `name`; with `model`, refuse one built with another model; refuse one of
    another format (an update reuses its vectors all the same: see _previous)."""
    link = index_path(name, root)
    if not link.exists():
        raise StoreError(
            f"No index {name!r} under {root}/; build it with: rag index"
            + ("" if name == DEFAULT_NAME else f" --name {name}")
        )
    path = link.resolve()
    manifest = json.loads((path / "manifest.json").read_text())
    found = manifest.get("format", 0)
    if found > FORMAT_VERSION:
        raise StoreError(
            f"Index {name!r} has format {found}, newer than this rag reads "
            f"({FORMAT_VERSION}). Rebuild with: rag index --rebuild"
        )
    if found < FORMAT_VERSION:
        where = "" if name == DEFAULT_NAME else f" --name {name}"
        raise StoreError(
            f"Index {name!r} was built by an older rag (format {found}) and lacks what this one "
            f"reads. Update it with: rag index PATHS{where} (its embeddings are reused)"
        )
    if model is not None and manifest["model"] != model:
        raise StoreError(
            f"Index {name!r} was built with {manifest['model']}, not {model}. "
            f"Rebuild with: rag index --rebuild --model {model}"
        )
    with lasting():
        try:
            rows = dict(np.load(path / "rows.npz"))
            names = json.loads((path / "rows.json").read_text())
        except (OSError, ValueError) as exc:
            where = "" if name == DEFAULT_NAME else f" --name {name}"
            raise StoreError(
                f"Index {name!r} is damaged ({exc}). Update it with: rag index PATHS{where} "
                "(its embeddings are reused)"
            ) from None
        trials = TrialTable(
            names["trials"],
            names["aliases"],
            _line_reader(path / "trials.jsonl", rows["trial_lines"], Trial.from_dict),
        )
        chunks = ChunkTable(
            names["chunks"],
            rows["chunk_trials"],
            rows["chunk_kinds"],
            trials.ids,
            lru_cache(maxsize=CHUNK_CACHE)(
                _line_reader(path / "chunks.jsonl", rows["chunk_lines"], _chunk_from_dict)
            ),
        )
        current = (
            manifest.get("facts") == FACTS_VERSION
            and "fact_lines" in rows
            and (path / "concepts.json").exists()
        )
        return Index(
            name=name,
            path=path,
            manifest=manifest,
            chunks=chunks,
            trials=trials,
            # the flat vectors are read from the file's pages as they are used
            faiss_index=faiss.read_index(str(path / "vectors.faiss"), faiss.IO_FLAG_MMAP_IFC),
            bm25=Postings.read(path / "bm25"),
            naming=_read_naming(manifest, trials.ids, rows, names),
            read_facts=_line_reader(path / "facts.jsonl", rows["fact_lines"], _typed_from_dict)
            if current
            else None,
            concepts_file=path / "concepts.json" if current else None,
        )


def _line_reader(
    path: Path, starts: npt.NDArray[np.int64], make: Callable[[dict[str, Any]], T]
) -> Callable[[int], T]:
    """The record on line i of a JSON-lines file, made by `make`, read from the file mapped
    into memory: `starts` holds where each line starts, and where the last one ends."""
    with path.open("rb") as f:
        lines = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    bounds = starts.tolist()

    def read(i: int) -> T:
        return make(json.loads(lines[bounds[i] : bounds[i + 1]]))

    return read


@contextmanager
def lasting() -> Iterator[None]:
    """Make records that live as long as the process: Python's cyclic garbage collector
    paused while they are made, then every object alive frozen out of its passes
    (gc.freeze). A full pass walks every object; over the 2,522 trials of ../shared/data it
    takes 0.16 s and runs again and again while a question makes its answer, and loading
    the index under it takes 1.7 s rather than 1.3 s."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        gc.freeze()


def _typed_from_dict(row: dict[str, Any]) -> tuple[Typed, ...]:
    return tuple(Typed.from_dict(t) for t in row["typed"])


def _concepts(
    typed: Iterable[tuple[str, tuple[Typed, ...]]],
) -> dict[str, dict[str, list[int]]]:
    """Under each key a typed mention is found by, the trials with such a mention and the
    places of their typed criteria that have one."""
    found: dict[str, dict[str, list[int]]] = {}
    for trial_id, criteria in typed:
        for place, criterion in enumerate(criteria):
            for key in {k for m in criterion.mentions for k in m.keys()}:
                found.setdefault(key, {}).setdefault(trial_id, []).append(place)
    return found


def _read_naming(
    manifest: dict[str, Any],
    trials: list[str],
    rows: dict[str, npt.NDArray[Any]],
    names: dict[str, Any],
) -> Naming | None:
    """The stored naming words, when the rules that made them are this rag's (else they are
    made from the trials when a question first names one)."""
    if manifest.get("naming") != NAMING_VERSION:
        return None
    return Naming(
        trials,
        names["naming"],
        rows["naming_starts"],
        rows["naming_trials"],
        rows["naming_weights"],
        names["acronyms"],
        names["naming_titles"],
    )


def build(
    paths: Sequence[Path],
    embedder: Embedder,
    *,
    name: str = DEFAULT_NAME,
    root: Path = INDEX_ROOT,
    rebuild: bool = False,
    progress: bool = False,
) -> BuildReport:
    """Ingest, chunk, embed what changed, and swap the new index in atomically."""
    from rag.ingest import ingest_paths  # the record formats: a load reads none

    started = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    with _lock(root, name):
        reports = ingest_paths(paths)
        errors = tuple(r.error for r in reports if r.error)
        warnings = [f"{r.path}: {w}" for r in reports for w in r.warnings]
        trials, duplicates = _unique([t for r in reports for t in r.trials])
        warnings.extend(duplicates)
        if not trials:
            raise StoreError(
                "Nothing to index: no trial could be read from "
                + ", ".join(str(p) for p in paths)
                + (f" ({len(errors)} files failed)" if errors else "")
            )
        chunks = chunk_trials(trials)
        hashes = [_hash(embedder.name, c.embed_text) for c in chunks]
        previous = None if rebuild else _previous(root, name, embedder)
        vectors, embedded, repeated = _vectors(chunks, hashes, previous, embedder, progress)
        old_trials = previous[2] if previous else set()
        dropped = len(old_trials - {t.id for t in trials})
        target = root / f".{name}-{uuid.uuid4().hex[:12]}"
        _write(target, embedder, trials, chunks, hashes, vectors, reports)
        _swap(root, name, target)
    return BuildReport(
        name=name,
        path=index_path(name, root),
        files=len(reports),
        trials=len(trials),
        chunks=len(chunks),
        embedded=embedded,
        reused=len(chunks) - embedded - repeated,
        dropped_trials=dropped,
        repeated=repeated,
        errors=errors,
        warnings=tuple(warnings),
        seconds=time.perf_counter() - started,
    )


def _unique(trials: list[Trial]) -> tuple[list[Trial], list[str]]:
    """One trial per id. Of records sharing an id the most recently updated one is kept (then
    the one from the first path in sort order, so the choice never depends on the order files
    are given or found), and each duplicate is reported with the record kept."""
    groups: dict[str, list[Trial]] = {}
    for trial in trials:
        groups.setdefault(trial.id, []).append(trial)
    kept: list[Trial] = []
    warnings: list[str] = []
    for trial_id, group in groups.items():
        ranked = sorted(group, key=lambda t: t.source.path)
        ranked.sort(key=lambda t: t.last_update or "", reverse=True)
        kept.append(ranked[0])
        if len(ranked) == 1:
            continue
        why = (
            f"last updated {ranked[0].last_update}, the most recent"
            if ranked[0].last_update and ranked[0].last_update != ranked[1].last_update
            else "no later update date than the others; the first path in sort order"
        )
        warnings.extend(
            f"{other.source.path}: trial {trial_id} is also in {ranked[0].source.path}; "
            f"kept that one ({why})"
            for other in ranked[1:]
        )
    return kept, warnings


def _hash(model: str, text: str) -> str:
    return hashlib.sha256(f"{model}\n{text}".encode()).hexdigest()[:32]


def _previous(
    root: Path, name: str, embedder: Embedder
) -> tuple[dict[str, int], Vectors, set[str]] | None:
    """Hash -> row of the live index's vectors, when it was built with the same model, with
    its trials' ids: read from the files every format has (a chunk's hash names its model and
    text, so its vector holds in any format)."""
    link = index_path(name, root)
    if not link.exists():
        return None
    path = link.resolve()
    try:
        if json.loads((path / "manifest.json").read_text()).get("model") != embedder.name:
            return None
        rows = {json.loads(line)["hash"]: i for i, line in enumerate(_lines(path / "chunks.jsonl"))}
        trials = {json.loads(line)["id"] for line in _lines(path / "trials.jsonl")}
        stored = faiss.read_index(str(path / "vectors.faiss"))
        vectors = np.array(_stored_vectors(stored))  # a copy: `stored` is freed on return
    except (OSError, ValueError, KeyError, RuntimeError, TypeError):
        return None
    return rows, vectors, trials


def _vectors(
    chunks: list[Chunk],
    hashes: list[str],
    previous: tuple[dict[str, int], Vectors, set[str]] | None,
    embedder: Embedder,
    progress: bool,
) -> tuple[Vectors, int, int]:
    """Every chunk's vector, the previous index's where it has the text, else embedded, each
    distinct text once ("Signed informed consent" in a thousand trials is one text); with
    how many texts were embedded and how many chunks repeated one of them."""
    rows, old = (previous[0], previous[1]) if previous else ({}, None)
    todo = [i for i, h in enumerate(hashes) if h not in rows]
    distinct: dict[str, int] = {}  # hash -> its row in `fresh`
    texts: list[str] = []
    for i in todo:
        if hashes[i] not in distinct:
            distinct[hashes[i]] = len(texts)
            texts.append(chunks[i].embed_text)
    fresh = embedder.encode(texts, progress=progress)
    vectors = np.empty((len(chunks), embedder.dim), dtype=np.float32)
    if old is not None:
        reused = [i for i, h in enumerate(hashes) if h in rows]
        vectors[reused] = old[[rows[hashes[i]] for i in reused]]
    if todo:
        vectors[todo] = fresh[[distinct[hashes[i]] for i in todo]]
    return vectors, len(distinct), len(todo) - len(distinct)


def ef_search(chunks: int, candidates: int) -> int:
    """How wide the HNSW search runs: wider as the graph grows. On bench/scale.py's perturbed
    copies of ../shared/data's vectors, recall@10 against exact search was 0.995 at 100,000
    chunks with 400, and 0.913 with 800 but 0.996 with 1,600 at a million (3.6 ms)."""
    return max(2 * candidates, min(HNSW_EF_SEARCH_MAX, chunks // HNSW_CHUNKS_PER_EF))


def make_faiss_index(vectors: Vectors, approximate: bool | None = None) -> tuple[Any, str]:
    """Exact inner product, or HNSW above APPROXIMATE_ABOVE vectors (or when asked)."""
    dim = vectors.shape[1]
    index: Any
    if approximate is None:
        approximate = len(vectors) > APPROXIMATE_ABOVE
    if approximate:
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        kind = "hnsw"
    else:
        index = faiss.IndexFlatIP(dim)
        kind = "flat"
    index.add(vectors)
    return index, kind


def _write(
    target: Path,
    embedder: Embedder,
    trials: list[Trial],
    chunks: list[Chunk],
    hashes: list[str],
    vectors: Vectors,
    reports: Sequence[Any],
) -> None:
    target.mkdir()
    index, kind = make_faiss_index(vectors)
    faiss.write_index(index, str(target / "vectors.faiss"))
    import bm25s  # with scipy, about 0.2 s to import: only builds need it

    bm25 = bm25s.BM25()
    bm25.index([tokenize(c.embed_text) for c in chunks], show_progress=False)
    bm25.save(str(target / "bm25"), show_progress=False)
    chunk_lines = _write_lines(
        target / "chunks.jsonl",
        (asdict(chunk) | {"hash": digest} for chunk, digest in zip(chunks, hashes, strict=True)),
    )
    trial_lines = _write_lines(target / "trials.jsonl", (t.to_dict() for t in trials))
    places = {trial.id: i for i, trial in enumerate(trials)}
    naming = Naming.of(trials)
    typed = [(trial.id, tuple(type_trial(trial))) for trial in trials]
    fact_lines = _write_lines(
        target / "facts.jsonl",
        (
            {"trial_id": trial_id, "typed": [t.to_dict() for t in criteria]}
            for trial_id, criteria in typed
        ),
    )
    (target / "concepts.json").write_text(json.dumps(_concepts(typed)))
    np.savez(
        target / "rows.npz",
        chunk_lines=chunk_lines,
        trial_lines=trial_lines,
        chunk_trials=np.array([places[c.trial_id] for c in chunks], dtype=np.int64),
        chunk_kinds=np.array([CHUNK_KINDS.index(c.kind) for c in chunks], dtype=np.uint8),
        fact_lines=fact_lines,
        naming_starts=naming.starts,
        naming_trials=naming.owners,
        naming_weights=naming.weights,
    )
    names = {
        "chunks": [c.id for c in chunks],
        "trials": [t.id for t in trials],
        "aliases": nct_aliases(trials),
        "naming": naming.words,
        "acronyms": naming.acronyms,
        "naming_titles": naming.titles,
    }
    (target / "rows.json").write_text(json.dumps(names, ensure_ascii=False))
    files = {r.path: _file_hash(Path(r.path)) for r in reports if not r.error}
    manifest = {
        "format": FORMAT_VERSION,
        "model": embedder.name,
        "dimension": embedder.dim,
        "faiss": kind,
        "chunks": len(chunks),
        "trials": len(trials),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "libraries": {name: _version(name) for name in _LIBRARIES},
        "facts": FACTS_VERSION,
        "naming": NAMING_VERSION,
        "corpus_hash": hashlib.sha256("".join(hashes).encode()).hexdigest(),
        "files": files,
    }
    # The manifest is written last: a version folder without one was never finished.
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    _fsync_tree(target)


_LIBRARIES = ("rag", "faiss-cpu", "sentence-transformers", "bm25s", "numpy", "torch")


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version  # only builds write versions

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _file_hash(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _fsync_tree(folder: Path) -> None:
    for file in folder.rglob("*"):
        if file.is_file():
            with file.open("rb") as f:
                os.fsync(f.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _swap(root: Path, name: str, target: Path) -> None:
    """Point index/<name> at target in one rename; then remove versions nothing points at."""
    link = index_path(name, root)
    if link.exists() and not link.is_symlink():
        raise StoreError(
            f"{link} is a folder, not an index link; move it away and run rag index again"
        )
    temporary = root / f".{name}.link-{uuid.uuid4().hex[:8]}"
    temporary.symlink_to(target.name)
    os.replace(temporary, link)
    fd = os.open(root, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    _clean(root, name)


def _clean(root: Path, name: str) -> None:
    """Remove version folders and temporary links of `name` that no index link uses. Only
    names this build writes are matched: ".seed-<12 hex>" is seed's, ".seed-v2-<hex>" is not."""
    version = re.compile(rf"\.{re.escape(name)}-[0-9a-f]{{12}}")
    link = re.compile(rf"\.{re.escape(name)}\.link-[0-9a-f]{{8}}")
    live = {entry.resolve() for entry in root.iterdir() if entry.is_symlink()}
    for entry in root.iterdir():
        if version.fullmatch(entry.name) and entry.is_dir() and not entry.is_symlink():
            if entry.resolve() not in live:
                shutil.rmtree(entry, ignore_errors=True)
        elif link.fullmatch(entry.name) and entry.is_symlink():
            entry.unlink(missing_ok=True)


@contextmanager
def _lock(root: Path, name: str) -> Iterator[None]:
    path = root / f"{name}.lock"
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise StoreError(
                f"Index {name!r} is being built by another process (pid {holder}); "
                "wait for it to finish, then run rag index again"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_lines(path: Path, records: Iterable[dict[str, Any]]) -> npt.NDArray[np.int64]:
    """Write one JSON record a line; where each line starts, and where the last one ends."""
    starts = [0]
    with path.open("wb") as out:
        for record in records:
            line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
            out.write(line)
            starts.append(starts[-1] + len(line))
    return np.array(starts, dtype=np.int64)


def _lines(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield line


def _chunk_from_dict(data: dict[str, Any]) -> Chunk:
    values = {k: v for k, v in data.items() if k != "hash"}
    if values.get("span") is not None:
        values["span"] = tuple(values["span"])
    return Chunk(**values)


def describe(report: BuildReport) -> str:
    """One line for the command line."""
    parts = [
        f"Indexed {report.trials} trials ({report.chunks} chunks) from {report.files} files "
        f"into {report.path}",
        f"embedded {report.embedded}, reused {report.reused}"
        + (f", {report.repeated} repeating a text embedded once" if report.repeated else ""),
    ]
    if report.dropped_trials:
        parts.append(f"dropped {report.dropped_trials} trials no longer in the corpus")
    if report.errors:
        parts.append(f"{len(report.errors)} files failed")
    parts.append(f"{report.seconds:.1f} s")
    return ", ".join(parts)
