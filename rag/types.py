"""The records every stage passes along: frozen dataclasses, no behaviour beyond views."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from rag.understand import Question

Section = Literal["inclusion", "exclusion"]
# What a trial's record does with a patient who has the asked trait.
VerdictWord = Literal["allows", "allows with conditions", "requires", "excludes", "not stated"]
VERDICTS: tuple[VerdictWord, ...] = (
    "allows",
    "allows with conditions",
    "requires",
    "excludes",
    "not stated",
)

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
    contacts: tuple[str, ...] | None = None  # the central contacts for enrolment
    conditions: tuple[str, ...] | None = None
    interventions: tuple[str, ...] | None = None
    primary_outcomes: tuple[str, ...] | None = None
    brief_summary: str | None = None
    description: str | None = None
    acronym: str | None = None
    # Design, in the ClinicalTrials.gov API v2 enums: RANDOMIZED, SINGLE_GROUP, NONE (open
    # label), TREATMENT, CASE_CONTROL, RETROSPECTIVE, ...
    allocation: str | None = None
    intervention_model: str | None = None
    masking: str | None = None
    primary_purpose: str | None = None
    observational_model: str | None = None
    time_perspective: str | None = None
    arms: tuple[str, ...] | None = None
    secondary_outcomes: tuple[str, ...] | None = None
    locations: tuple[str, ...] | None = None  # "facility, city, country"
    countries: tuple[str, ...] | None = None
    last_update: str | None = None
    study_ids: tuple[str, ...] | None = None  # the sponsor's, other registries', NCT aliases
    keywords: tuple[str, ...] | None = None
    criteria: tuple[Criterion, ...] = ()
    # The eligibility text the criteria spans point into, for JSON and XML records;
    # None for registry pages, whose spans point into the file itself.
    eligibility_text: str | None = None
    # Fields the record leaves empty but states in its own words elsewhere (rag.derive).
    derived: tuple[Derived, ...] = ()
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
        values["derived"] = tuple(Derived.from_dict(d) for d in values.get("derived", ()))
        for key, value in values.items():
            if isinstance(value, list):
                values[key] = tuple(value)
        return cls(**values)

    def criteria_in(self, section: Section) -> list[Criterion]:
        return [c for c in self.criteria if c.section == section]

    def value(self, name: str) -> tuple[Any, Derived | None]:
        """A field as the record states it, else as derived from its own words (with where)."""
        stated = getattr(self, name)
        if stated is not None:
            return stated, None
        found = next((d for d in self.derived if d.field == name), None)
        return (found.value, found) if found else (None, None)


DerivedSource = Literal["criterion", "title", "official_title", "brief_summary", "description"]


@dataclass(frozen=True, slots=True)
class Derived:
    """A field the record leaves empty, read from the record's own words elsewhere.

    `source` names the text it was read from and `span` is [start, end) into it: the
    criterion's text (`criterion_id` set) or the Trial field of that name; `quote` is that
    slice, so an answer can cite the very words.
    """

    field: str
    value: float | str | tuple[str, ...]
    source: DerivedSource
    span: tuple[int, int]
    quote: str
    criterion_id: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Derived:
        value = data["value"]
        return cls(
            **(
                data
                | {
                    "value": tuple(value) if isinstance(value, list) else value,
                    "span": tuple(data["span"]),
                }
            )
        )


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


@dataclass(frozen=True, slots=True)
class Citation:
    """A passage an answer cites as [marker], with where it is in its record."""

    marker: int
    trial_id: str
    chunk_id: str
    criterion_id: str | None
    section: str
    text: str
    span: tuple[int, int] | None
    title: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """One trial's verdict on an eligibility question, and the passage that decides it."""

    trial_id: str
    verdict: VerdictWord
    criterion_id: str | None
    marker: int | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class Answer:
    """What a question gets: the text, the passages it cites, verdicts per trial, and whether
    it abstained (the fixed sentences of rag.citations)."""

    question: str
    text: str
    citations: tuple[Citation, ...] = ()
    verdicts: tuple[Verdict, ...] = ()
    abstained: bool = False
    hits: tuple[Hit, ...] = ()
    removed_markers: tuple[int, ...] = ()
    unsupported: tuple[str, ...] = ()  # a model's sentences that cite nothing, marked in text
    trial_id: str | None = None  # the trial the answer is about, for follow-ups
    understood: Question | None = None  # the typed question it answers

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.text,
            "citations": [
                {
                    "marker": c.marker,
                    "trial_id": c.trial_id,
                    "chunk_id": c.chunk_id,
                    "criterion_id": c.criterion_id,
                    "section": c.section,
                    "text": c.text,
                    "span": list(c.span) if c.span else None,
                }
                for c in self.citations
            ],
            "verdicts": [
                {
                    "trial_id": v.trial_id,
                    "verdict": v.verdict,
                    "criterion_id": v.criterion_id,
                    "note": v.note,
                }
                for v in self.verdicts
            ],
            "abstained": self.abstained,
            "unsupported": list(self.unsupported),
            "question": self.understood.to_dict() if self.understood else None,
        }


def trial_key(typed: str) -> str:
    """A trial id as a user types it, as the index keys it: NCT numbers upper case, T- ids
    lower case."""
    key = typed.strip()
    if key[:3].upper() == "NCT":
        return key.upper()
    if key[:2].upper() == "T-":
        return "T-" + key[2:].lower()
    return key


def nct_aliases(trials: Iterable[Trial]) -> dict[str, str]:
    """Each other NCT number a trial was registered under (among its study ids), to its id."""
    return {
        i.upper(): t.id
        for t in trials
        for i in t.study_ids or ()
        if i[:3].upper() == "NCT" and i[3:].isdigit()
    }
