"""The backend registry: built-ins, and a backend added by another package's entry point."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.llm.base import BackendError, Passage, Task, available, get_backend
from rag.types import Chunk

PLUGIN = """
class Shouting:
    name = "shouting"

    def __init__(self, **options):
        self.options = options

    def generate(self, task):
        yield task.question.upper() + " [1]"
"""


def test_builtins() -> None:
    assert {"extractive", "openai"} <= set(available())
    assert get_backend("extractive").name == "extractive"
    with pytest.raises(BackendError, match=r"Unknown backend 'gpt'; available: extractive, openai"):
        get_backend("gpt")


def test_a_separate_package_adds_a_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "shouting_backend.py").write_text(PLUGIN)
    info = tmp_path / "shouting_backend-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: shouting-backend\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[rag.backends]\nshouting = shouting_backend:Shouting\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    backend = get_backend("shouting", volume=11)
    chunk = Chunk("T-1/card", "T-1", "card", "card", "Trial: T-1", "", "T")
    task = Task(kind="answer", question="is it loud?", passages=(Passage(1, chunk),))
    assert "".join(backend.generate(task)) == "IS IT LOUD? [1]"
