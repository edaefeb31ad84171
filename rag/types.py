"""The records every stage passes along: frozen dataclasses, no behaviour beyond views."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Section = Literal["inclusion", "exclusion"]

# Where the criteria of a text page point: the decoded text of the whole file.
FILE_TEXT = "file"


@dataclass(frozen=True, slots=True)
class Source:
    """Where a trial came from: the file and the format it was recognised as."""

    path: str
    format: str


@dataclass(frozen=True, slots=True)
class Criterion:
    """One inclusion or exclusion criterion.

    `span` is [start, end) into the text named by `field`: the decoded file for
    registry pages (`"file"`), or the eligibility field of a JSON or XML record
    (for example `"protocolSection.eligibilityModule.eligibilityCriteria"`), so
    that `source_text[start:end] == text` always holds.
    """

    id: str
    section: Section
    text: str
    span: tuple[int, int]
    field: str = FILE_TEXT
    parent: str | None = None
    truncated: bool = False

    @property
    def plain(self) -> str:
        """The text with wrapped lines and runs of spaces folded to single spaces."""
        return " ".join(self.text.split())


@dataclass(frozen=True, slots=True)
class Trial:
    """One trial record. A field the record does not state is None, never guessed."""

    id: str
    source: Source
    nct_id: str | None = None
    title: str | None = None
    official_title: str | None = None
    status: str | None = None
    phase: str | None = None
    study_type: str | None = None
    enrollment: int | None = None
    enrollment_raw: str | None = None
    start_date: str | None = None
    completion_date: str | None = None
    min_age_years: float | None = None
    max_age_years: float | None = None
    sex: str | None = None
    healthy_volunteers: bool | None = None
    sponsor: str | None = None
    collaborators: tuple[str, ...] | None = None
    investigators: tuple[str, ...] | None = None
    conditions: tuple[str, ...] | None = None
    interventions: tuple[str, ...] | None = None
    primary_outcomes: tuple[str, ...] | None = None
    brief_summary: str | None = None
    description: str | None = None
    criteria: tuple[Criterion, ...] = ()
    # The eligibility text the criteria spans point into, for JSON and XML records;
    # None for registry pages, whose spans point into the file itself.
    eligibility_text: str | None = None
    warnings: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the field names of the Trial model."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trial:
        """The inverse of to_dict (lists become tuples again)."""
        values = dict(data)
        values["source"] = Source(**values["source"])
        values["criteria"] = tuple(
            Criterion(**(c | {"span": tuple(c["span"])})) for c in values["criteria"]
        )
        for key, value in values.items():
            if isinstance(value, list):
                values[key] = tuple(value)
        return cls(**values)

    def criteria_in(self, section: Section) -> list[Criterion]:
        return [c for c in self.criteria if c.section == section]


ChunkKind = Literal["criterion", "card", "summary", "description"]


@dataclass(frozen=True, slots=True)
class Chunk:
    """One retrievable passage of a trial, with what a citation needs.

    `text` is the passage as cited (white space folded); `embed_text` adds a header (trial
    title, section) and, for a sub-criterion, its parents' text, so the chunk stands alone.
    `span` is [start, end) into the text named by `field`: for a criterion, the criterion's
    own span; for a summary or description piece, into that Trial field.
    """

    id: str
    trial_id: str
    kind: ChunkKind
    section: str
    text: str
    embed_text: str
    title: str
    criterion_id: str | None = None
    span: tuple[int, int] | None = None
    field: str | None = None


@dataclass(frozen=True, slots=True)
class Hit:
    """A chunk found for a query, with its fused score and where each retriever ranked it."""

    chunk: Chunk
    score: float
    dense_rank: int | None = None
    lexical_rank: int | None = None
    # Filter fields the trial does not state and that were counted as fitting.
    notes: tuple[str, ...] = ()
