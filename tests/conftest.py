"""Shared fixtures: the real embedding model, loaded once per session, and built indexes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rag import evaluation, store
from rag.answer import Assistant
from rag.embed import SentenceEmbedder
from rag.llm.base import get_backend

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpus"
SHARED = ROOT.parent / "shared" / "data"
NSCLC = SHARED / "ctgov-v2" / "nsclc-ctg-studies.json"


@pytest.fixture(scope="session")
def embedder() -> SentenceEmbedder:
    model = SentenceEmbedder()
    model.encode(["warm up"])
    return model


@pytest.fixture(scope="session")
def seed_index_root(tmp_path_factory: pytest.TempPathFactory, embedder: SentenceEmbedder) -> Path:
    """index/default over a copy of the seed corpus, built once."""
    root = tmp_path_factory.mktemp("seed-index")
    shutil.copytree(CORPUS, root / "corpus")
    store.build([root / "corpus"], embedder, root=root / "index")
    return root


@pytest.fixture(scope="session")
def seed_index(seed_index_root: Path) -> store.Index:
    return store.load(root=seed_index_root / "index")


@pytest.fixture(scope="session")
def eval_index(tmp_path_factory: pytest.TempPathFactory, embedder: SentenceEmbedder) -> store.Index:
    """The seeds plus the 100 NSCLC studies of ../shared/data when it is there."""
    root = tmp_path_factory.mktemp("eval-index")
    paths = [CORPUS] + ([NSCLC] if NSCLC.exists() else [])
    store.build(paths, embedder, root=root)
    return store.load(root=root)


def run_set(
    path: Path, index: store.Index, embedder: SentenceEmbedder, name: str
) -> tuple[evaluation.Report, dict[str, str]]:
    """An eval set run by the extractive backend, and its wrong answers: id -> question and
    the start of the answer given."""
    assistant = Assistant(index, embedder, get_backend("extractive"))
    report = evaluation.run(
        evaluation.load_set(str(path)), assistant, backend="extractive", index=name
    )
    wrong = {
        o.id: f"{o.question!r} -> {o.answer[:120]!r}" for o in report.outcomes if not o.correct
    }
    return report, wrong
