"""Filters on a trial's structured fields: one definition of the keys, for the CLI's
--filter items, the API's parameters and the filters the question stage reads in the words.

A trial that does not state a field counts as fitting that filter, and says so in a note; a
value the record states only in its own words elsewhere (rag.derive) counts, and the note
says where it was read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from typing import Any, Literal

from rag import normalize, render
from rag.errors import RagError
from rag.lexical import SPELLINGS, fold, name_tokens
from rag.types import Derived, Trial

FILTER_KEYS = (
    "status",
    "phase",
    "type",
    "sex",
    "age",
    "condition",
    "intervention",
    "sponsor",
    "organisation",
    "country",
    "design",
    "about",
    "trial",
)
# Design words -> (Trial field, the codes that fit).
DESIGNS: dict[str, tuple[str, frozenset[str]]] = {
    "randomized": ("allocation", frozenset({"RANDOMIZED"})),
    "non-randomized": ("allocation", frozenset({"NON_RANDOMIZED"})),
    "single-arm": ("intervention_model", frozenset({"SINGLE_GROUP"})),
    "parallel": ("intervention_model", frozenset({"PARALLEL"})),
    "crossover": ("intervention_model", frozenset({"CROSSOVER"})),
    "factorial": ("intervention_model", frozenset({"FACTORIAL"})),
    "open-label": ("masking", frozenset({"NONE"})),
    "blinded": ("masking", frozenset({"SINGLE", "DOUBLE", "TRIPLE", "QUADRUPLE"})),
    "double-blind": ("masking", frozenset({"DOUBLE", "TRIPLE", "QUADRUPLE"})),
    "prospective": ("time_perspective", frozenset({"PROSPECTIVE"})),
    "retrospective": ("time_perspective", frozenset({"RETROSPECTIVE"})),
}


Match = Literal["words", "phrase", "exact"]


class FilterError(RagError):
    """A --filter that cannot be applied."""


@dataclass(frozen=True, slots=True)
class Filters:
    status: frozenset[str] | None = None
    phase: frozenset[str] | None = None
    study_type: frozenset[str] | None = None
    sex: str | None = None
    age: float | None = None
    condition: str | None = None
    intervention: str | None = None
    sponsor: str | None = None
    organisation: str | None = None  # the sponsor, a collaborator, an investigator or a site
    country: str | None = None
    design: frozenset[str] | None = None
    about: str | None = None  # every word in its conditions, treatments or titles
    trial_ids: frozenset[str] | None = None
    # How sponsor, organisation, condition, intervention and about values match a field's
    # value: all their words ("words"), as a phrase ("phrase"), or the whole value ("exact").
    match: Match = "words"

    def check(self, trial: Trial) -> tuple[bool, tuple[str, ...]]:
        """Does the trial pass, and what was unstated (counted as fitting) or derived."""
        notes: list[str] = []
        if self.trial_ids is not None and not {trial.id, trial.nct_id} & self.trial_ids:
            return False, ()
        if self.status is not None and trial.status not in self.status:
            return False, ()
        if self.phase is not None:
            phase, found = trial.value("phase")
            if not set((phase or "").split("/")) & self.phase:
                return False, ()
            _note(notes, found)
        if self.study_type is not None and trial.study_type not in self.study_type:
            return False, ()
        if self.sex is not None:
            sex, found = trial.value("sex")
            if sex is None:
                notes.append("sex not stated")
            elif sex not in {self.sex, "ALL"}:
                return False, ()
            _note(notes, found)
        if self.age is not None and not self._age_fits(trial, notes):
            return False, ()
        for field, wanted in (("condition", self.condition), ("intervention", self.intervention)):
            if wanted is not None:
                fits, found = about(trial, field, wanted, self.match)
                if not fits:
                    return False, ()
                _note(notes, found)
        if self.sponsor is not None and not matches(
            self.sponsor, [trial.sponsor or ""], self.match
        ):
            return False, ()
        if self.organisation is not None and not matches(
            self.organisation, organisations(trial), self.match
        ):
            return False, ()
        if self.country is not None:
            places = (trial.countries or ()) + (trial.locations or ())
            if not matches(self.country, places):
                return False, ()
        if self.about is not None and not self.about_fits(trial):
            return False, ()
        for design in self.design or ():
            field, codes = DESIGNS[design]
            value, found = trial.value(field)
            if value not in codes:
                return False, ()
            _note(notes, found)
        return True, tuple(notes)

    def left_out(self, trial: Trial) -> str:
        """Why a trial that fits every other filter fails the status, sex or age asked ("status
        Completed"), or "" when it passes or fails something else: what a patient's question
        reports rather than drops silently."""
        if not replace(self, status=None, sex=None, age=None).check(trial)[0]:
            return ""
        if self.status is not None and trial.status not in self.status:
            said = render.value("status", trial.status) if trial.status else "not stated"
            return f"status: {said}"
        sex, _ = trial.value("sex")
        if self.sex is not None and sex not in (None, self.sex, "ALL"):
            return f"{render.value('sex', sex).lower()} patients only"
        if self.age is not None and not self._age_fits(trial, []):
            low, _ = trial.value("min_age_years")
            high, _ = trial.value("max_age_years")
            ages = "-".join(f"{x:g}" if x is not None else "" for x in (low, high))
            return f"ages {ages}"
        return ""

    def _age_fits(self, trial: Trial, notes: list[str]) -> bool:
        assert self.age is not None
        low, low_from = trial.value("min_age_years")
        high, high_from = trial.value("max_age_years")
        if (low is not None and self.age < low) or (high is not None and self.age > high):
            return False
        if low is None and high is None:
            notes.append("no age limits stated")
        elif low is None:
            notes.append("no minimum age stated")
        elif high is None:
            notes.append("no maximum age stated")
        for where in dict.fromkeys(render.where(d) for d in (low_from, high_from) if d):
            notes.append(f"ages from {where}")
        return True

    def about_fits(self, trial: Trial) -> bool:
        """Do its conditions, treatments, arms and titles hold the value (all its words, or
        the phrase)?"""
        assert self.about is not None
        texts = [trial.title or "", trial.official_title or "", *(trial.arms or ())]
        for name in ("conditions", "interventions"):
            values, _ = trial.value(name)
            texts.extend(values or ())
        if self.match == "words":
            return terms(self.about) <= terms(" ".join(texts))
        return matches(self.about, texts, "phrase")

    @property
    def active(self) -> bool:
        return any(getattr(self, f.name) is not None for f in fields(self) if f.name != "match")

    def merged(self, other: Filters) -> Filters:
        """These filters with every key `other` sets taken from `other`."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values |= {
            f.name: getattr(other, f.name)
            for f in fields(other)
            if getattr(other, f.name) and f.name != "match"
        }
        return Filters(**values)


def organisations(trial: Trial) -> tuple[str, ...]:
    """Everyone a trial names: sponsor, collaborators, investigators (with their hospitals),
    contacts and sites."""
    named = [trial.sponsor] if trial.sponsor else []
    for values in (trial.collaborators, trial.investigators, trial.contacts, trial.locations):
        named.extend(values or ())
    return tuple(named)


def _note(notes: list[str], found: Derived | None) -> None:
    """Say which fitting value was read from the record's own words, and where."""
    if found is not None:
        label = render.FIELD_LABELS.get(found.field, found.field).lower()
        notes.append(f"{label} from {render.where(found)}")


@lru_cache(maxsize=250_000)
def terms(text: str) -> frozenset[str]:
    """The words of a value as matched: tokens with spellings and abbreviations folded
    (rag.lexical.name_tokens), plural 's' dropped ('diseases' = 'disease')."""
    return frozenset(_stem(t) for t in name_tokens(text))


def _stem(token: str) -> str:
    return (
        token[:-1] if len(token) > 3 and token.endswith("s") and not token.endswith("ss") else token
    )


def matches(value: str, texts: Iterable[str], match: Match = "words") -> bool:
    """Does one of the texts hold the value: every word of it, the phrase, or all of it?"""
    if match == "exact":
        wanted = fold(value)
        return bool(wanted) and any(fold(text) == wanted for text in texts if text)
    if match == "phrase":
        phrase = phrase_words(value)
        return bool(phrase) and any(holds_phrase(phrase, phrase_words(t)) for t in texts if t)
    words = terms(value)
    return bool(words) and any(words <= terms(text) for text in texts if text)


# Words a disease's name uses for the same thing: "esophageal cancer" is said of "Esophageal
# Squamous Cell Carcinoma" too.
_SAME_WORD = dict.fromkeys(
    """carcinoma neoplasm tumor tumour malignancy malignancie""".split(), "cancer"
)
PHRASE_GAP = 2  # words a phrase may skip between two of its own ("esophageal | squamous cell |")


@lru_cache(maxsize=250_000)
def phrase_words(text: str) -> tuple[str, ...]:
    """The folded words of a text, spellings and plurals made one ("oesophageal", "hot
    flashes"), and a disease's words for the same thing."""
    words = (_stem(SPELLINGS.get(w, w)) for w in fold(text).split())
    return tuple(_SAME_WORD.get(w, w) for w in words)


def holds_phrase(phrase: tuple[str, ...], words: tuple[str, ...]) -> bool:
    """Are the phrase's words in the text in order, at most PHRASE_GAP other words apart
    ("esophageal cancer" in "esophageal squamous cell carcinoma", not in "esophageal
    metastases from breast cancer")?"""
    for start, word in enumerate(words):
        if word != phrase[0]:
            continue
        at = start
        for wanted in phrase[1:]:
            window = words[at + 1 : at + 2 + PHRASE_GAP]
            if wanted not in window:
                break
            at += 1 + window.index(wanted)
        else:
            return True
    return False


def about(
    trial: Trial, field: str, value: str, match: Match = "words"
) -> tuple[bool, Derived | None]:
    """Is the trial about `value` as a condition (or intervention), and was that read from its
    own words? Its stated list decides when it has one; else the list derived from its words,
    then its titles."""
    name = "conditions" if field == "condition" else "interventions"
    stated = getattr(trial, name) or ()
    if field == "intervention":
        stated += trial.arms or ()
    if stated:
        return matches(value, stated, match), None
    values, found = trial.value(name)
    if found is not None and matches(value, values):
        return True, found
    return matches(value, [t for t in (trial.title, trial.official_title) if t]), None


def parse_filters(items: Sequence[str]) -> Filters:
    """["status=recruiting", "age=78", "phase=2"] -> Filters; a clear error for anything else."""
    values: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key, raw = key.strip().lower(), raw.strip()
        if not sep or not raw:
            raise FilterError(f"Filter {item!r} is not KEY=VALUE, e.g. --filter status=recruiting")
        if key not in FILTER_KEYS:
            raise FilterError(f"Unknown filter {key!r}; use one of: {', '.join(FILTER_KEYS)}")
        parts = [p.strip() for p in raw.split(",") if p.strip()]
        if key == "status":
            values["status"] = frozenset(s for p in parts if (s := normalize.status(p)))
        elif key == "phase":
            values["phase"] = frozenset(_phase(p, item) for p in parts)
        elif key == "type":
            values["study_type"] = frozenset(t for p in parts if (t := normalize.study_type(p)))
        elif key == "sex":
            sex = normalize.sex(raw)
            if sex is None:
                raise FilterError(f"Filter {item!r}: use sex=female, sex=male or sex=all")
            values["sex"] = sex
        elif key == "age":
            try:
                values["age"] = float(raw)
            except ValueError:
                raise FilterError(
                    f"Filter {item!r}: give an age in years, e.g. --filter age=78"
                ) from None
        elif key == "design":
            unknown = [p for p in parts if p.lower() not in DESIGNS]
            if unknown:
                raise FilterError(
                    f"Filter {item!r}: unknown design {unknown[0]!r}; use one of: "
                    + ", ".join(DESIGNS)
                )
            values["design"] = frozenset(p.lower() for p in parts)
        elif key == "trial":
            values["trial_ids"] = frozenset(
                p.upper() if p.upper().startswith("NCT") else p for p in parts
            )
        else:
            values[key] = raw.casefold()
    return Filters(**values)


def from_mapping(values: Mapping[str, Any]) -> Filters:
    """The API's filter object or query parameters (the same keys as --filter)."""
    return parse_filters([f"{key}={value}" for key, value in values.items() if value is not None])


def _phase(value: str, item: str) -> str:
    text = value if re.search(r"phase|^n/?a$", value, re.I) else f"Phase {value}"
    phase = normalize.phase(text)
    if phase is None or "/" in phase:
        raise FilterError(f"Filter {item!r}: use a phase such as phase=2, phase=PHASE3 or phase=NA")
    return phase
