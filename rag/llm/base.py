"""The Backend protocol, the registry of built-ins, and plug-ins by entry point.

A separate package adds a backend by declaring, in its pyproject.toml,

    [project.entry-points."rag.backends"]
    mine = "my_package:MyBackend"

where MyBackend(**options) returns an object with `name` and `generate`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any, Literal, Protocol

from rag.errors import RagError
from rag.types import Chunk

if TYPE_CHECKING:
    from rag.understand import Question

# "answer": write the answer from the passages (and the facts found in them); "verdicts": one
# line per trial, "<id> (<name>): <verdict> [n]"; "plan": the typed question as JSON.
TaskKind = Literal["answer", "verdicts", "plan"]
FactKind = Literal["field", "criterion", "verdict", "trial"]


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrieved chunk as the backend sees it: cite it as [marker]."""

    marker: int
    chunk: Chunk


@dataclass(frozen=True, slots=True)
class Fact:
    """Something a passage states, found before the backend writes, for it to phrase.

    kind "field": `label` is a field ("sponsor"), `value` its words, `where` where a value the
    record states only in its own words was read; "criterion": `label` is the criterion
    ("inclusion criterion 8.2"), `value` the threshold it sets (or empty), `quote` its text;
    "verdict": `value` is the verdict, `quote` the deciding words, `note` a reason or
    condition, `also` the markers of the other passages that decided it; "trial": a trial
    that fits, `label`/`value` the field that makes it fit.
    """

    kind: FactKind
    trial_id: str
    name: str  # the trial as a person reads it: "NCT04984096 (APEC: Anlotinib ...)"
    label: str
    value: str
    marker: int | None
    quote: str = ""
    where: str = ""
    section: str = ""
    note: str = ""
    also: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Task:
    """What a backend is asked: the question, the passages it may cite, and the prompt.

    `messages` is the rendered chat prompt for model backends. `understood` is the typed
    question and `facts` what the passages were found to state; `lead` is the answer's first
    words where the records decide them ("Yes.", "3 trials match:"). The extractive backend
    phrases the facts; a model backend reads the messages and may phrase them its own way.
    """

    kind: TaskKind
    question: str
    passages: tuple[Passage, ...]
    messages: tuple[dict[str, str], ...] = ()
    understood: Question | None = None
    facts: tuple[Fact, ...] = ()
    lead: str = ""


class Backend(Protocol):
    """`name` and `generate`; a backend may also say `reads_messages = False` when it never
    reads Task.messages (the extractive one phrases the facts), sparing the prompt's making."""

    name: str

    def generate(self, task: Task) -> Iterator[str]:
        """The answer text in pieces, citing passages as [n]."""
        ...


class BackendError(RagError):
    """A backend failed: unknown, misconfigured, unreachable or answering garbage."""


class BackendTimeout(BackendError):
    """The backend did not answer in time."""


class BackendDeadline(BackendTimeout):
    """The backend's answer, retries and all, took longer than the deadline set on one answer."""


class BackendTooLarge(BackendError):
    """The backend sent more bytes than one answer may take."""


BackendFactory = Callable[..., Backend]


def builtin_backends() -> dict[str, BackendFactory]:
    """Each imported when first made: the openai backend's httpx costs a question that does
    not use it about 70 ms of start-up."""
    return {
        "extractive": _lazy(lambda: import_module("rag.llm.extractive").ExtractiveBackend),
        "openai": _lazy(lambda: import_module("rag.llm.openai").OpenAIBackend),
    }


def available() -> dict[str, BackendFactory]:
    from importlib.metadata import entry_points  # about 30 ms: only when a plugin is looked up

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
    builtin = builtin_backends()
    factories = builtin if name in builtin else available()  # plugins are looked up on disk
    if name not in factories:
        raise BackendError(f"Unknown backend {name!r}; available: {', '.join(sorted(factories))}")
    return factories[name](**options)
