"""The offline default backend: it phrases the facts found in the passages, and decides nothing.

What the question asks, which passages state it, the verdicts and the yes or no are decided
before it is called (rag.understand, rag.answer, rag.verdicts); it writes them as sentences
that cite their passages:

    NCT04984096 (APEC: Anlotinib ...): sponsor is Shanghai Chest Hospital [1].
    T-fcd9d254a2 (Local Therapy ...) requires platelets ≥ 100 × 10^9 / L (inclusion
    criterion 8.2: "platelets ≥ 100 × 10^9 / L") [2].
    - NCT04984096 (Anlotinib ...): requires [3]
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from rag.citations import inert
from rag.llm.base import BackendError, Fact, Task


class ExtractiveBackend:
    """Answers from passages: no server, no key, the same answer every time."""

    name = "extractive"
    reads_messages = False  # it phrases Task.facts

    def __init__(self, **options: Any) -> None:
        self.options = options

    def generate(self, task: Task) -> Iterator[str]:
        if task.kind == "plan":
            raise BackendError("The extractive backend does not plan questions; use the rules")
        facts = tuple(_as_data(fact) for fact in task.facts)
        if task.kind == "verdicts":
            for fact in facts:
                yield verdict_line(fact) + "\n"
            return
        kind = task.understood.kind if task.understood else "criterion"
        if kind in ("list", "count", "exists") or (facts and facts[0].kind == "trial"):
            lines = [task.lead] if task.lead else []
            lines += [trial_line(fact) for fact in facts]
            yield "\n".join(lines)
            return
        sentences = _sentences(facts)
        if kind == "compare":
            yield "\n".join(sentences)
            return
        yield " ".join([task.lead, *sentences] if task.lead else sentences)


def _as_data(fact: Fact) -> Fact:
    """The fact with every word a record gave it made inert (rag.citations.inert)."""
    return replace(
        fact,
        name=inert(fact.name),
        label=inert(fact.label),
        value=inert(fact.value),
        quote=inert(fact.quote),
        where=inert(fact.where),
        note=inert(fact.note),
    )


def _sentences(facts: tuple[Fact, ...]) -> list[str]:
    """One sentence per trial for field facts (its fields joined), one per other fact; a
    trial named in the sentence before is "It"."""
    sentences: list[str] = []
    fields: dict[str, list[Fact]] = {}
    previous = None
    for fact in facts:
        if fact.kind == "field":
            if fact.trial_id not in fields:
                fields[fact.trial_id] = []
                sentences.append(fact.trial_id)  # placeholder, filled below
            fields[fact.trial_id].append(fact)
        else:
            said = sentence(replace(fact, name="It") if fact.trial_id == previous else fact)
            sentences.append(said)
        previous = fact.trial_id
    return [field_sentence(fields[s]) if s in fields else s for s in sentences]


def field_sentence(facts: list[Fact]) -> str:
    """'NCT04984096 (...): sponsor is Shanghai Chest Hospital [1]; phase is Phase 2 [1].'"""
    parts = []
    for fact in facts:
        where = f' (from {fact.where}: "{fact.quote}")' if fact.where else ""
        plural = "; " in fact.value or ", " in fact.label or fact.label.lower() in _PLURAL
        verb = "are" if plural else "is"
        cite = f" [{fact.marker}]" if fact.marker is not None else ""
        parts.append(f"{fact.label.lower()} {verb} {fact.value}{where}{cite}")
    return f"{facts[0].name}: " + "; ".join(parts) + "."


# Field labels that name several things even when one is listed ("contacts are ...").
_PLURAL = frozenset(
    """ages collaborators investigators contacts conditions interventions arms countries
    locations""".split()
) | {"primary outcomes", "secondary outcomes"}


def sentence(fact: Fact) -> str:
    """A criterion stated with the threshold it sets, or a verdict with its deciding words."""
    quote = fact.quote.rstrip(" ;,.")
    cite = f" [{fact.marker}]" if fact.marker is not None else ""
    if fact.kind == "verdict":
        if fact.marker is None:
            return f"{fact.name}: nothing in its criteria speaks to this{_note(fact)}."
        return f'{fact.name} {fact.value}: {fact.label}, "{quote}"{_note(fact)}{cite}.'
    if fact.value and fact.section == "inclusion":
        return f'{fact.name} requires {fact.value} ({fact.label}: "{quote}"){cite}.'
    if fact.value and fact.section == "exclusion":
        return f'{fact.name} excludes {fact.value} ({fact.label}: "{quote}"){cite}.'
    return f'{fact.name}, {fact.label}: "{quote}"{cite}.'


def _note(fact: Fact) -> str:
    return f" ({fact.note})" if fact.note else ""


def verdict_line(fact: Fact) -> str:
    """'- <id> (<name>): <verdict> [n] [m] - <reason>' (the format rag.citations parses)."""
    markers = ([fact.marker] if fact.marker is not None else []) + list(fact.also)
    cite = "".join(f" [{m}]" for m in markers)
    reason = f" - {fact.note}" if fact.note else ""
    return f"- {fact.name}: {fact.value}{cite}{reason}"


def trial_line(fact: Fact) -> str:
    """'- NCT... (title): sponsor Pfizer [3]' for a trial that fits a listing."""
    what = f": {fact.label.lower()} {fact.value}" if fact.label else ""
    where = f" (from {fact.where})" if fact.where else ""
    return f"- {fact.name}{what}{where} [{fact.marker}]"
