"""The index on disk: incremental rebuilds, atomic swaps, one writer, clear refusals."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rag import store
from rag.cli import app
from rag.embed import SentenceEmbedder
from rag.errors import StoreError
from rag.naming import Naming
from rag.retrieve import Retriever

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
RAG = Path(sys.executable).parent / "rag"


def copy_seeds(folder: Path) -> Path:
    shutil.copytree(CORPUS, folder)
    return folder


def test_a_text_is_embedded_once_however_many_chunks_have_it(
    tmp_path: Path, embedder: SentenceEmbedder, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "records"
    folder.mkdir()
    criteria = "Inclusion Criteria:\n\n* Age 18 or over\n* Age 18 or over\n* ECOG 0-1"
    record = {
        "protocolSection": {
            "identificationModule": {"nctId": "NCT00000001", "briefTitle": "A study"},
            "eligibilityModule": {"eligibilityCriteria": criteria},
        }
    }
    (folder / "NCT00000001.json").write_text(json.dumps(record))
    report = store.build([folder], embedder, root=tmp_path / "index", progress=True)
    assert (report.embedded, report.repeated, report.reused) == (report.chunks - 1, 1, 0)
    assert "1 repeating a text embedded once" in store.describe(report)
    index = store.load(root=tmp_path / "index")
    rows = [i for i, c in enumerate(index.chunks) if c.text == "Age 18 or over"]
    assert len(rows) == 2 and (index.vectors[rows[0]] == index.vectors[rows[1]]).all()
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"embedded {report.embedded}/{report.embedded} chunks, ")
    assert line.endswith(" chunks/s, 0 s left")


def test_rebuild_embeds_only_what_changed(tmp_path: Path, embedder: SentenceEmbedder) -> None:
    corpus = copy_seeds(tmp_path / "corpus")
    root = tmp_path / "index"
    first = store.build([corpus], embedder, root=root)
    assert (first.trials, first.embedded + first.repeated, first.reused) == (5, first.chunks, 0)

    again = store.build([corpus], embedder, root=root)
    assert (again.embedded, again.reused, again.chunks) == (0, first.chunks, first.chunks)

    page = corpus / "003_3a8d64e594130fed.txt"
    page.write_text(page.read_text().replace("platelets ≥ 100", "platelets ≥ 75"))
    (corpus / "000_2a7767d01ef54209.txt").unlink()
    changed = store.build([corpus], embedder, root=root)
    assert changed.embedded == 1  # the one criterion whose text changed
    assert changed.dropped_trials == 1
    index = store.load(root=root)
    assert "NCT03913182" not in index.trials
    assert len(index.trials) == 4
    (hit,) = Retriever(index, embedder).search("platelets Fudan", k=1)
    assert hit.chunk.text == "platelets ≥ 75 × 10^9 / L;"

    forced = store.build([corpus], embedder, root=root, rebuild=True)
    assert forced.embedded + forced.repeated == forced.chunks

    # An index of an older format (3 had no rows files) is updated, its vectors reused as
    # they were.
    old = store.load(root=root)
    vectors = np.array(old.vectors)
    for name in ("rows.npz", "rows.json"):
        (old.path / name).unlink()
    manifest = old.path / "manifest.json"
    manifest.write_text(json.dumps(json.loads(manifest.read_text()) | {"format": 3}))
    with pytest.raises(StoreError, match=r"older rag \(format 3\)"):
        store.load(root=root)
    updated = store.build([corpus], embedder, root=root)
    assert (updated.embedded, updated.reused) == (0, updated.chunks)
    new = store.load(root=root)
    assert new.manifest["format"] == store.FORMAT_VERSION
    assert np.array_equal(new.vectors, vectors)
    assert [c.text for c in new.chunks] == [c.text for c in old.chunks]


def test_manifest_records_model_versions_and_hashes(
    seed_index: store.Index, embedder: SentenceEmbedder
) -> None:
    manifest = seed_index.manifest
    assert manifest["model"] == "all-MiniLM-L6-v2"
    assert manifest["dimension"] == 384 == embedder.dim
    assert manifest["faiss"] == "flat"
    assert manifest["chunks"] == len(seed_index.chunks) == seed_index.faiss_index.ntotal
    assert set(manifest["libraries"]) >= {"faiss-cpu", "sentence-transformers", "bm25s"}
    assert all(manifest["libraries"].values())
    assert len(manifest["files"]) == 5 and all(len(h) == 64 for h in manifest["files"].values())
    rows = [
        json.loads(line) for line in (seed_index.path / "chunks.jsonl").read_text().splitlines()
    ]
    assert all(len(row["hash"]) == 32 for row in rows)


def test_other_model_or_newer_format_is_refused_with_the_fix(
    tmp_path: Path, seed_index_root: Path
) -> None:
    root = tmp_path / "index"
    shutil.copytree(seed_index_root / "index", root, symlinks=True)
    with pytest.raises(StoreError) as caught:
        store.load(root=root, model="bge-small-en")
    assert str(caught.value) == (
        "Index 'default' was built with all-MiniLM-L6-v2, not bge-small-en. "
        "Rebuild with: rag index --rebuild --model bge-small-en"
    )
    manifest = root / "default" / "manifest.json"
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps(data | {"format": 99}))
    newer = rf"format 99, newer than this rag reads \({store.FORMAT_VERSION}\)\. Rebuild"
    with pytest.raises(StoreError, match=newer):
        store.load(root=root)
    manifest.write_text(json.dumps(data | {"format": 1}))
    with pytest.raises(StoreError) as older:
        store.load(root=root)
    assert str(older.value) == (
        "Index 'default' was built by an older rag (format 1) and lacks what this one reads. "
        "Update it with: rag index PATHS (its embeddings are reused)"
    )
    with pytest.raises(StoreError, match=r"No index 'other' under .*; build it with: rag index"):
        store.load("other", root=root)


def test_a_loaded_index_reads_its_records_as_they_are_asked_for(
    tmp_path: Path, seed_index_root: Path
) -> None:
    root = tmp_path / "index"
    shutil.copytree(seed_index_root / "index", root, symlinks=True)
    index = store.load(root=root)
    stored = [json.loads(line) for line in (index.path / "chunks.jsonl").read_text().splitlines()]
    assert [c.id for c in index.chunks] == index.chunks.ids == [c["id"] for c in stored]
    assert [c.text for c in index.chunks] == [c["text"] for c in stored]
    assert index.chunks[-1] == index.chunks[len(stored) - 1]
    assert index.chunks[1:3] == [index.chunks[1], index.chunks[2]]
    with pytest.raises(IndexError):
        index.chunks[len(stored)]
    trials = [json.loads(line) for line in (index.path / "trials.jsonl").read_text().splitlines()]
    assert list(index.trials) == index.trial_order == [t["id"] for t in trials]
    assert index.trials["NCT03913182"].nct_id == "NCT03913182"
    assert index.find_trial("nct03913182") is index.trials["NCT03913182"]
    assert index.trials.get("NCT00000000") is None
    assert all(
        index.chunks[i].trial_id == t for t, rows in index.trial_chunks.items() for i in rows
    )
    assert index.card("NCT03913182").id == "NCT03913182/card"

    (index.path / "rows.json").unlink()
    with pytest.raises(StoreError) as damaged:
        store.load(root=root)
    assert str(damaged.value).startswith("Index 'default' is damaged ([Errno 2] ")
    assert str(damaged.value).endswith(
        "rows.json'). Update it with: rag index PATHS (its embeddings are reused)"
    )


def test_unreadable_corpus_leaves_the_index_alone(tmp_path: Path, seed_index_root: Path) -> None:
    root = tmp_path / "index"
    shutil.copytree(seed_index_root / "index", root, symlinks=True)
    before = (root / "default").resolve()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "empty.txt").write_text("")
    with pytest.raises(
        StoreError, match=r"Nothing to index: no trial could be read .*1 files failed"
    ):
        store.build([tmp_path / "bad"], SentenceEmbedder(), root=root)
    assert (root / "default").resolve() == before


def _big_corpus(folder: Path, copies: int) -> Path:
    """Seed pages under new titles, so every chunk is new and a build takes a while."""
    folder.mkdir()
    for n in range(copies):
        for page in CORPUS.glob("00[34]_*.txt"):
            text = page.read_text().replace("Overview\n\n", f"Overview\n\nCopy {n} of ", 1)
            (folder / f"{n:03d}_{page.name}").write_text(text)
    return folder


def test_killed_build_leaves_the_old_index_answering(
    tmp_path: Path, embedder: SentenceEmbedder
) -> None:
    root = tmp_path / "index"
    store.build([copy_seeds(tmp_path / "corpus")], embedder, root=root)
    old = (root / "default").resolve()
    big = _big_corpus(tmp_path / "big", copies=25)
    child = subprocess.Popen(
        [str(RAG), "index", str(big), str(tmp_path / "corpus")],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    lock = root / "default.lock"
    deadline = time.monotonic() + 60
    while (not lock.exists() or lock.read_text() != str(child.pid)) and time.monotonic() < deadline:
        assert child.poll() is None, child.stderr.read() if child.stderr else ""
        time.sleep(0.1)
    time.sleep(2)
    # A second writer is refused while the first holds the lock.
    with pytest.raises(StoreError, match=rf"being built by another process \(pid {child.pid}\)"):
        store.build([tmp_path / "corpus"], embedder, root=root)
    assert child.poll() is None, "the build finished before it could be killed"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    if child.stderr:
        child.stderr.close()

    assert (root / "default").resolve() == old
    index = store.load(root=root)
    assert len(index.trials) == 5
    hits = Retriever(index, embedder).search("prior anti-PD-1 treatment", k=3)
    assert "T-ee5e47e5ae/exclusion/1" in [h.chunk.id for h in hits]

    # A version folder a crash left half-written is never read, and the next build removes it.
    (root / ".default-deadbeef0000").mkdir()
    (root / ".default-deadbeef0000" / "vectors.faiss").write_bytes(b"partial")
    report = store.build([tmp_path / "corpus"], embedder, root=root)
    assert report.embedded == 0
    leftovers = sorted(p.name for p in root.iterdir())
    assert leftovers == [(root / "default").resolve().name, "default", "default.lock"]


def test_building_an_index_leaves_every_other_index_alone(
    tmp_path: Path, embedder: SentenceEmbedder
) -> None:
    """Index names that begin alike ("seed", "seed-v2") keep their own files; a build removes
    only its own old versions."""
    corpus = copy_seeds(tmp_path / "corpus")
    root = tmp_path / "index"
    store.build([corpus], embedder, name="seed-v2", root=root)
    store.build([corpus], embedder, name="seed-0123456789ab", root=root)
    others = {n: (root / n).resolve() for n in ("seed-v2", "seed-0123456789ab")}
    store.build([corpus], embedder, name="seed", root=root)
    first = (root / "seed").resolve()
    store.build([corpus], embedder, name="seed", root=root)  # replaces seed's first version

    for name, live in others.items():
        assert (root / name).resolve() == live and live.is_dir(), name
        assert len(store.load(name, root=root).trials) == 5
    assert not first.exists()
    versions = sorted(p.name for p in root.iterdir() if p.name.startswith(".seed-"))
    assert len(versions) == 3  # seed's live version and the other two indexes' live ones


def test_a_load_reads_the_naming_words_and_concepts_the_build_stored(
    tmp_path: Path, seed_index_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "index"
    shutil.copytree(seed_index_root / "index", root, symlinks=True)
    index = store.load(root=root)
    assert index.naming is not None and index.read_facts is not None
    made = Naming.of(index.trials.values())
    assert index.naming.words == made.words and made.words
    assert all(index.naming.fits(w) == made.fits(w) for w in made.words)
    assert index.naming.acronyms == made.acronyms == {"NCT04984096": "APEC"}
    assert index.naming.titles == made.titles
    assert "apec" in index.naming.words_of("NCT04984096")
    from_trials = replace(index, read_facts=None, concepts_file=None, facts={})
    assert index.concept_criteria == from_trials.concept_criteria
    assert any(trials for trials in index.concept_criteria.values())
    assert [index.typed(t) for t in index.trials] == [from_trials.typed(t) for t in index.trials]

    # Stored by older rules, they are not read: they are made from the trials, and `rag ask`
    # answers the same, saying so.
    monkeypatch.chdir(tmp_path)
    question = ["ask", "who sponsors the APEC study?"]
    current = CliRunner().invoke(app, question)
    assert current.exit_code == 0 and current.stderr == ""
    manifest = index.path / "manifest.json"
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps(data | {"facts": 0, "naming": 0}))
    older = store.load(root=root)
    assert older.naming is None and older.read_facts is None and older.concepts_file is None
    assert older.concept_criteria == index.concept_criteria
    result = CliRunner().invoke(app, question)
    assert result.exit_code == 0
    assert result.stdout == current.stdout and "Shanghai Chest Hospital [1]" in result.stdout
    assert result.stderr == (
        "note: index 'default' holds no typed criteria or naming words of this rag's rules; "
        "questions make them as they go, more slowly (run `rag index` on its records to store "
        "them)\n"
    )
