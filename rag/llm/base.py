"""The Backend protocol, the registry of built-ins, and plug-ins by entry point.

A separate package adds a backend by declaring, in its pyproject.toml,

    [project.entry-points."rag.backends"]
    mine = "my_package:MyBackend"

where MyBackend(**options) returns an object with `name` and `generate`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Literal, Protocol

from rag.errors import RagError
from rag.types import Chunk

TaskKind = Literal["answer", "verdicts"]


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrieved chunk as the backend sees it: cite it as [marker]."""

    marker: int
    chunk: Chunk


@dataclass(frozen=True, slots=True)
class Task:
    """What a backend is asked: the question, the passages it may cite, and the prompt.

    `messages` is the rendered chat prompt for model backends; the extractive backend reads
    the question and passages directly.
    """

    kind: TaskKind
    question: str
    passages: tuple[Passage, ...]
    messages: tuple[dict[str, str], ...] = ()
    # For "verdicts": the topic the question asks about, e.g. "prior PD-1 inhibitors".
    topic: str = ""
    options: dict[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    name: str

    def generate(self, task: Task) -> Iterator[str]:
        """The answer text in pieces, citing passages as [n]."""
        ...


class BackendError(RagError):
    """A backend failed: unknown, misconfigured, unreachable or answering garbage."""


class BackendTimeout(BackendError):
    """The backend did not answer in time."""


BackendFactory = Callable[..., Backend]


def builtin_backends() -> dict[str, BackendFactory]:
    from rag.llm.extractive import ExtractiveBackend
    from rag.llm.openai import OpenAIBackend

    return {"extractive": ExtractiveBackend, "openai": OpenAIBackend}


def available() -> dict[str, BackendFactory]:
    plugins = {ep.name: ep.load for ep in entry_points(group="rag.backends")}
    factories: dict[str, BackendFactory] = dict(builtin_backends())
    for name, load in plugins.items():
        factories.setdefault(name, _lazy(load))
    return factories


def _lazy(load: Callable[[], Any]) -> BackendFactory:
    def make(**options: Any) -> Backend:
        factory = load()
        backend: Backend = factory(**options)
        return backend

    return make


def get_backend(name: str, **options: Any) -> Backend:
    factories = available()
    if name not in factories:
        raise BackendError(f"Unknown backend {name!r}; available: {', '.join(sorted(factories))}")
    return factories[name](**options)
