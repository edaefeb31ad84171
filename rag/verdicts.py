"""Criteria + patient facts -> a verdict per trial, with the passages that decide it.

A verdict says what a trial's record does with a patient who has the asked trait: requires
it, excludes it, allows it, allows it with conditions, or does not state it. It is decided
here, for every backend, from

- the trial's structured fields (ages, sex, healthy volunteers), stated or read from a
  criterion (rag.derive), citing the card or that criterion;
- performance status and lab values against the ranges the criteria give;
- for any other topic, the criteria that name it: an exclusion criterion excludes, an
  inclusion criterion requires (or excludes, when it asks for the trait's absence: "have not
  received", "no prior"), and an exclusion criterion listing the trait as allowed allows it.

Several patient facts give one verdict: excluded by any fact is excluded; otherwise allowed
with conditions, allowed or required as the facts say; not stated when no fact is addressed.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from functools import lru_cache

from rag.derive import age_limits
from rag.lexical import (
    EXPANSIONS,
    GENERIC,
    expansion_terms,
    stem,
    stem_set,
    tokenize,
    whole_tokens,
)
from rag.types import Chunk, Trial, VerdictWord
from rag.understand import Lab, Question, Stance

_NEGATION = re.compile(
    r"\b(?:not|never|no|without|naive|naïve|free of|other than|except|excluding|excluded)\b",
    re.IGNORECASE,
)
_ALLOWED = re.compile(r"\b(?:allowed|permitted|acceptable|may have|can have|eligible)\b", re.I)
_COMPARE = re.compile(r"(≥|>=|>|≤|<=|<)\s*(\d+(?:\.\d+)?)")
# Whether a value meets a comparison a criterion writes: _HOLDS["≤"](value, limit).
_HOLDS: dict[str, Callable[[float, float], bool]] = {
    "≥": operator.ge, ">=": operator.ge, ">": operator.gt,
    "≤": operator.le, "<=": operator.le, "<": operator.lt,
}  # fmt: skip
_THRESHOLD = re.compile(
    r"(?:[≥≤<>]=?|>=|<=|\bat least\b|\bmore than\b|\bless than\b|\bover\b|\bunder\b|\babove\b|"
    r"\bbelow\b)\s*[\d.,]+(?:\s*(?:[×x*]|times)\s*(?:10\s*\^?\s*\d+|UNL|ULN))?"
    r"(?:\s*(?:/\s*)?[A-Za-zμ/%^\d.]+)?(?:\s*/\s*[A-Za-zμ]+)?",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Decision:
    """A verdict on one trial, the passages that decide it, and a short reason."""

    verdict: VerdictWord
    chunks: tuple[Chunk, ...] = ()
    note: str = ""


NOT_STATED = Decision("not stated")


@lru_cache(maxsize=256)
def topic_terms(topic: str) -> frozenset[str]:
    """The words a criterion must contain to speak to the topic (with curated expansions);
    a hyphenated word also gives its parts ("HIV-positive": "hiv", "positive")."""
    terms = set(whole_tokens(topic))
    terms.update(
        part
        for word in list(terms)
        for part in word.split("-")
        if "-" in word and len(part) >= 3 and part.isalpha()
    )
    terms.update(t for term in expansion_terms(topic) for t in whole_tokens(term))
    terms -= GENERIC
    return frozenset(t for t in terms if len(t) > 2 or "-" in t)


def decide(question: Question, trial: Trial, chunks: list[Chunk], card: Chunk) -> Decision:
    """One verdict for the trial, accounting for every fact the question gives."""
    return combine(list(_facts(question, trial, chunks, card)))


def _facts(
    question: Question, trial: Trial, chunks: list[Chunk], card: Chunk
) -> Iterable[Decision]:
    patient = question.patient
    if "healthy_volunteers" in question.fields:
        yield _healthy(trial, card)
    if patient.age is not None:
        yield decide_age(patient.age, trial, chunks, card)
    if patient.sex is not None and trial.value("sex")[0] not in (None, "ALL"):
        yield decide_sex(patient.sex, trial, chunks, card)
    if patient.ecog is not None:
        yield decide_ecog(patient.ecog, chunks)
    for lab in patient.labs:
        yield decide_lab(lab, chunks)
    for topic in patient.conditions or ((question.topic,) if question.topic else ()):
        yield decide_topic(topic_terms(topic), chunks, frozenset(_NUMBERS.findall(topic)))


def combine(decisions: list[Decision]) -> Decision:
    """Excluded by any fact is excluded (citing what excludes); else the facts' allowances,
    citing every passage that decided a fact; else not stated."""
    order: tuple[VerdictWord, ...] = ("excludes", "allows with conditions", "requires", "allows")
    for verdict in order:
        deciding = [d for d in decisions if d.verdict == verdict]
        if deciding:
            unstated = sum(1 for d in decisions if d.verdict == "not stated")
            note = "; ".join(d.note for d in deciding if d.note)
            if unstated and verdict != "excludes":
                note = "; ".join(filter(None, [note, f"{unstated} of the facts not stated"]))
            cited = deciding if verdict == "excludes" else deciding + decisions
            chunks = tuple(dict.fromkeys(c for d in cited for c in d.chunks))
            return Decision(verdict, chunks, note)
    return NOT_STATED


def decide_topic(
    terms: AbstractSet[str], chunks: list[Chunk], numbers: frozenset[str] = frozenset()
) -> Decision:
    """A trait against the criteria that name it: the criteria naming most of its words
    speak to it ("adenosquamous carcinoma" is decided where "adenosquamous" is named, not by
    any criterion saying "carcinoma"), a number the topic gives breaking ties ("survival of
    12 weeks": "survival time >12 weeks", not "5-year survival rate"); among those, section
    and negation decide."""
    wanted = {stem(t) for t in terms}
    overlap = {
        c.id: len(wanted & stem_set(c.text)) + 0.5 * bool(numbers & set(_NUMBERS.findall(c.text)))
        for c in chunks
        if c.kind == "criterion" and wanted & stem_set(c.text)
    }
    best = max(overlap.values(), default=0)
    matching = [c for c in chunks if best and overlap.get(c.id) == best]
    exclusion = [c for c in matching if c.section == "exclusion"]
    inclusion = [c for c in matching if c.section == "inclusion"]
    for chunk in exclusion:
        if _carved_out(chunk.text, wanted):
            continue
        return Decision("excludes", (chunk,))
    for chunk in inclusion:
        if _NEGATION.search(_near(chunk.text, terms)):
            return Decision("excludes", (chunk,))
        if _ALLOWED.search(chunk.text):
            return Decision("allows", (chunk,))
        return Decision("requires", (chunk,))
    for chunk in exclusion:
        return Decision("allows", (chunk,), "listed as allowed in an exclusion criterion")
    return NOT_STATED


# Words that open an exclusion's carve-out: what follows them is allowed ("Autoimmune
# diseases, but allow the following ...: type I diabetes", "other malignancies, except ...").
_CARVE_OUT = re.compile(
    r"\b(?:allow(?:s|ed)?|permitted|acceptable|may\s+have|can\s+have|eligible|except(?:\s+for)?|"
    r"excluding|other\s+than|with\s+the\s+exception\s+of|unless|can\s+enter|may\s+enter)\b",
    re.IGNORECASE,
)
_NOT_BEFORE = re.compile(r"\b(?:not|n't|never|no\s+longer)\s+(?:be\s+)?$", re.IGNORECASE)


def _carved_out(text: str, wanted: set[str]) -> bool:
    """Is the trait named only after the exclusion's carve-out opens, so allowed by it?"""
    carve = _CARVE_OUT.search(text)
    if carve is None or _NOT_BEFORE.search(text[: carve.start()]):
        return False
    first = next((m.start() for m in _WORD.finditer(text) if stem(m.group()) in wanted), None)
    return first is not None and first > carve.start()


_WORD = re.compile(r"[\w-]+")
_NUMBERS = re.compile(r"(?<![\d.])\d+(?:\.\d+)?(?![\d.])")


def _near(text: str, terms: AbstractSet[str]) -> str:
    """The clause of the text that holds the first topic term."""
    for clause in re.split(r"[;:]|\.\s", text):
        if terms & set(tokenize(clause)):
            return clause
    return text


def _healthy(trial: Trial, card: Chunk) -> Decision:
    if trial.healthy_volunteers is None:
        return NOT_STATED
    return Decision("allows" if trial.healthy_volunteers else "excludes", (card,))


def decide_sex(sex: str, trial: Trial, chunks: list[Chunk], card: Chunk) -> Decision:
    stated, found = trial.value("sex")
    if stated is None:
        return NOT_STATED
    source = _criterion(chunks, found.criterion_id) if found else card
    verdict: VerdictWord = "allows" if stated in ("ALL", sex) else "excludes"
    return Decision(verdict, (source,) if source else ())


def decide_age(age: float, trial: Trial, chunks: list[Chunk], card: Chunk) -> Decision:
    """Stated age limits (the card), else limits read from a criterion."""
    if trial.min_age_years is not None or trial.max_age_years is not None:
        low, high = trial.min_age_years, trial.max_age_years
        if (low is not None and age < low) or (high is not None and age > high):
            return Decision("excludes", (card,))
        if high is not None:
            return Decision("allows", (card,))
    for chunk in chunks:
        if chunk.kind != "criterion":
            continue
        low, high, span = age_limits(chunk.text)
        if span is None:
            continue
        inside = (low is None or age >= low) and (high is None or age <= high)
        if chunk.section == "exclusion":  # the limits say whom it excludes
            return Decision("excludes" if inside else "allows", (chunk,))
        return Decision("allows" if inside else "excludes", (chunk,))
    if trial.min_age_years is not None:
        return Decision("allows", (card,), "no maximum age stated")
    return NOT_STATED


def _criterion(chunks: list[Chunk], criterion_id: str | None) -> Chunk | None:
    return next((c for c in chunks if c.criterion_id == criterion_id), None)


def decide_ecog(score: int, chunks: list[Chunk]) -> Decision:
    for chunk in chunks:
        text = chunk.text
        if chunk.kind != "criterion" or not re.search(r"ecog|performance status", text, re.I):
            continue
        allowed = ecog_values(text)
        if not allowed:
            continue
        inside = score in allowed
        if chunk.section == "exclusion":
            return Decision("excludes" if inside else "allows", (chunk,))
        return Decision("allows" if inside else "excludes", (chunk,))
    return NOT_STATED


def ecog_values(text: str) -> set[int]:
    """The ECOG scores a criterion names: '0-2', '0~1', '0 or 1', '≤ 2', '> 2'."""
    start = re.search(r"ecog|performance status", text, re.IGNORECASE)
    tail = text[start.start() :] if start else text
    span = re.search(r"(\d)\s*(?:-|~|–|to)\s*(\d)", tail)
    if span:
        return set(range(int(span.group(1)), int(span.group(2)) + 1))
    bound = re.search(r"(≤|<=|<|≥|>=|>)\s*(\d)", tail)
    if bound:
        holds, n = _HOLDS[bound.group(1)], int(bound.group(2))
        return {score for score in range(6) if holds(score, n)}
    listed = re.findall(r"\b([0-5])\b", tail[:60])
    return {int(n) for n in listed}


def decide_lab(lab: Lab, chunks: list[Chunk]) -> Decision:
    """A lab value against the criterion that sets its threshold ('PLT ≥ 80 × 109 / L')."""
    key = lab.name
    names = {key, key.rstrip("s")} | {
        t for k in (key, key.rstrip("s")) for x in EXPANSIONS.get(k, ()) for t in whole_tokens(x)
    }
    named = re.compile(rf"\b(?:{'|'.join(map(re.escape, names))})\w*", re.IGNORECASE)
    for chunk in chunks:
        if chunk.kind != "criterion":
            continue
        for match in named.finditer(chunk.text):
            bound = _COMPARE.search(chunk.text, match.end(), match.end() + 25)
            if not bound:
                continue
            inside = _HOLDS[bound.group(1)](lab.value, float(bound.group(2)))
            if chunk.section == "exclusion":
                inside = not inside
            return Decision("allows" if inside else "excludes", (chunk,))
    return NOT_STATED


def threshold(text: str, words: Iterable[str]) -> str | None:
    """'platelets ≥ 100 × 10^9 / L' out of a criterion, for the asked word."""
    for word in sorted(words, key=len, reverse=True):
        if len(word) < 2 or word.isdigit():
            continue
        at = re.search(rf"\b{re.escape(word)}\w*", text, re.IGNORECASE)
        if not at:
            continue
        found = _THRESHOLD.search(text, at.end(), min(len(text), at.end() + 60))
        if found:
            return f"{text[at.start() : at.end()]} {found.group(0).strip()}"
    return None


def yes_no(verdict: VerdictWord, stance: Stance = "allows") -> str:
    """The first word of the answer to "can a patient with X join?", or to "would X rule
    them out?" (stance "excludes": yes means excluded)."""
    if verdict != "not stated" and stance == "excludes":
        return {"excludes": "Yes", "allows with conditions": "Not if its conditions are met"}.get(
            verdict, "No"
        )
    return {
        "allows": "Yes",
        "requires": "Yes",
        "allows with conditions": "Yes, with conditions",
        "excludes": "No",
        "not stated": "The record does not say",
    }[verdict]
