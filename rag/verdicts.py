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
from collections.abc import Callable, Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from rag.derive import age_limits
from rag.facts import (
    NARROWING,
    PARENT,
    TREATMENTS,
    Mention,
    Typed,
    concepts_in,
    ecog_worded,
    elapsed,
    qualifier_key,
    question_qualifiers,
    viral_loads,
    window_weeks,
)
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

if TYPE_CHECKING:
    from rag.store import Index

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


def decide(
    question: Question,
    trial: Trial,
    chunks: list[Chunk],
    card: Chunk,
    typed: Sequence[Typed] = (),
    holding: AbstractSet[str] | None = None,
) -> Decision:
    """One verdict for the trial, accounting for every fact the question gives; `typed` are
    the trial's typed criteria (rag.facts), read for the topics the curated concepts name;
    `holding`, the ids of the criteria that hold a word the question's facts are decided by
    (Scope.holding; None: any may), so that no other passage is read for them."""
    return combine(list(_facts(question, trial, chunks, holding, card, typed)))


def passages_read(question: Question, trial: Trial, typed: Sequence[Typed]) -> set[str]:
    """The ids of the passages `decide` reads of a trial under Scope.holding, besides its card
    and those in `holding`: its typed criteria, and the one stating the trial's sex when the
    patient's is given. A scan makes only these passages and those holding."""
    sexed = question.patient.sex is not None and trial.value("sex")[1]
    stating = {sexed.criterion_id} if sexed and sexed.criterion_id else set()
    return {t.criterion_id for t in typed} | stating


def _facts(
    question: Question,
    trial: Trial,
    chunks: list[Chunk],
    holding: AbstractSet[str] | None,
    card: Chunk,
    typed: Sequence[Typed],
) -> Iterable[Decision]:
    patient = question.patient
    kept: list[list[Chunk]] = []

    def worded() -> list[Chunk]:
        """The passages a fact decided by words is read in (made once, when first asked)."""
        if not kept:
            kept.append(chunks if holding is None else [c for c in chunks if c.id in holding])
        return kept[0]

    if "healthy_volunteers" in question.fields:
        yield _healthy(trial, card)
    if patient.age is not None:
        yield decide_age(patient.age, trial, worded(), card)
    if patient.sex is not None and trial.value("sex")[0] not in (None, "ALL"):
        yield decide_sex(patient.sex, trial, chunks, card)
    if patient.ecog is not None:
        yield decide_ecog(patient.ecog, worded())
    for lab in patient.labs:
        yield decide_lab(lab, worded())
    loose = _loose_qualifiers(question)
    for topic in patient.conditions or ((question.topic,) if question.topic else ()):
        concepts = trait_concepts(topic)
        if concepts:
            yield decide_concepts(concepts, question_qualifiers(topic) | loose, typed, chunks)
        elif not _only_qualifies(topic):
            yield decide_topic(topic_terms(topic), worded(), _numbers(topic))


@dataclass(frozen=True, slots=True)
class Scope:
    """What a corpus-wide question must read: the trials whose records could decide it
    (every other trial's verdict is "not stated"), and the criteria holding a word its facts
    are decided by (an age, performance status, a lab test, a topic's stems)."""

    trials: frozenset[str]
    holding: frozenset[str]
    keys: frozenset[str]  # the keys (Mention.keys) of the mentions that speak to its concepts


def scope(question: Question, index: Index) -> Scope:
    """The trials with a card field the question asks (healthy volunteers, sex, stated
    ages), with a typed criterion naming a concept it asks about, or with a criterion holding a
    word a fact is decided by: found in the index's postings and typed facts, not by reading
    criteria."""
    patient = question.patient
    trials: set[str] = set()
    words: set[str] = set()  # tokens a deciding passage holds
    parts: set[str] = set()  # or that are inside one of its tokens
    everyone = index.trials.values()
    if "healthy_volunteers" in question.fields:
        trials.update(t.id for t in everyone if t.healthy_volunteers is not None)
    if patient.age is not None:
        trials.update(
            t.id for t in everyone if t.min_age_years is not None or t.max_age_years is not None
        )
        parts |= _AGE_PARTS
    if patient.sex is not None:
        trials.update(t.id for t in everyone if t.value("sex")[0] not in (None, "ALL"))
    if patient.ecog is not None:
        parts |= _ECOG_PARTS
    for lab in patient.labs:
        parts |= {
            max(re.findall(r"[a-z0-9]+", name.casefold()), key=len, default="")
            for name in _lab_names(lab)
        }
    keys: set[str] = set()
    for topic in patient.conditions or ((question.topic,) if question.topic else ()):
        concepts = trait_concepts(topic)
        if concepts:
            keys.update(k for c in concepts for k in _speaking(c))
        elif not _only_qualifies(topic):
            stems = index.bm25.stems
            words.update(t for s in _stemmed(topic_terms(topic)) for t in stems.get(s, ()))
    if "" in parts:  # a lab named only in other letters: every criterion may hold it
        rows = np.arange(len(index.chunks))
    else:
        words.update(t for part in parts for t in index.bm25.containing(part))
        rows = index.rows_with(words)
    rows = rows[index.criteria[rows]]  # words decide facts only in criteria (not "Status:")
    for key in keys:
        trials.update(index.concept_criteria.get(key, ()))
    ids = index.chunks.ids
    holding = frozenset(ids[i] for i in rows.tolist())
    trials.update(index.trials_of(rows))
    return Scope(frozenset(trials), holding, frozenset(keys))


# The letters inside the words that age limits (rag.derive.age_limits) and performance status
# (decide_ecog) are read by: "age", "years old", "yrs", "adults", "older", "elderly"; "ECOG",
# "performance status".
_AGE_PARTS = frozenset({"age", "year", "yr", "adult", "older", "younger", "elderly"})
_ECOG_PARTS = frozenset({"ecog", "performance"})


def _loose_qualifiers(question: Question) -> frozenset[str]:
    """What the parts of a patient's description that name no trait say of the ones that do
    ("spread to her brain, and the lesion is giving her seizures": symptomatic), how long
    ago the one treatment time the question gives was, and the viral loads it gives, wherever
    they stand."""
    return _loose(question.patient.conditions, question.text)


@lru_cache(maxsize=64)
def _loose(conditions: tuple[str, ...], text: str) -> frozenset[str]:
    """_loose_qualifiers, read once per question rather than once per trial."""
    loose = {q for c in conditions if _only_qualifies(c) for q in question_qualifiers(c)}
    loads = {f"load: {value:g} {unit}" for value, unit in viral_loads(text)}
    return frozenset(loose | loads) | elapsed(text)


@lru_cache(maxsize=256)
def _only_qualifies(topic: str) -> bool:
    """Does a part of the description only say how a trait is, naming none ("the lesion is
    giving her seizures", "bad headaches"; not "hypothyroidism on a stable dose")?"""
    if trait_concepts(topic) or not question_qualifiers(topic) & _HOW:
        return False
    return not set(tokenize(topic)) - GENERIC - _HOW_WORDS


_HOW_WORDS = frozenset(
    """lesion lesions spot spots it its is are was were be been giving causing having with her
    his their my bad severe mild any no symptoms symptom symptomatic asymptomatic seizures
    seizure headaches headache stable controlled uncontrolled treated untreated active
    enlarging growing now still""".split()
)


def decide_concepts(
    concepts: Sequence[str], asked: frozenset[str], typed: Sequence[Typed], chunks: list[Chunk]
) -> Decision:
    """A trait the curated concepts name, against the trial's typed criteria. The trait's
    concepts are alternatives ("hepatitis B or C", "ILD or pneumonitis"): a trial that takes
    patients with any of them takes the trait, with the others' conditions."""
    decisions = [_decide_concept(c, asked, typed, chunks) for c in dict.fromkeys(concepts)]
    stated = [d for d in decisions if d.verdict != "not stated"]
    if not stated:
        return NOT_STATED
    if all(d.verdict == "excludes" for d in stated):
        return _merge("excludes", stated)
    for verdict in ("requires", "allows with conditions"):
        if any(d.verdict == verdict for d in stated):
            return _merge(verdict, stated)
    if any(d.verdict == "excludes" for d in stated):
        return _merge("allows with conditions", stated)
    return _merge("allows", stated)


def _merge(verdict: VerdictWord, decisions: list[Decision]) -> Decision:
    lead = [d for d in decisions if d.verdict == verdict] or decisions
    rest = [d for d in decisions if d not in lead]
    chunks = tuple(dict.fromkeys(c for d in lead + rest for c in d.chunks))
    note = "; ".join(dict.fromkeys(d.note for d in lead + rest if d.note))
    return Decision(verdict, chunks, note)


def traits(question: Question) -> list[tuple[tuple[str, ...], frozenset[str]]]:
    """Each trait the question gives (a patient's condition, else its topic) that the curated
    concepts name: its concepts and the qualifiers it is asked with."""
    topics = question.patient.conditions or ((question.topic,) if question.topic else ())
    out = []
    for topic in topics:
        concepts = trait_concepts(topic)
        if concepts:
            out.append((concepts, question_qualifiers(topic)))
    return out


@lru_cache(maxsize=256)
def trait_concepts(topic: str) -> tuple[str, ...]:
    """The concepts a trait names; a condition's treatment ("ILD that needed steroids",
    "brain metastases treated with radiotherapy") describes it and is no trait of its own."""
    # a question's compounds are its words: "prior-chemotherapy" asks about chemotherapy
    concepts = list(dict.fromkeys(key for key, _ in concepts_in(topic.replace("-", " "))))
    conditions = [c for c in concepts if c not in TREATMENTS | {"steroids_immunosuppressants"}]
    return tuple(conditions or concepts)


def check_verdict(
    question: Question, terms: set[str], typed: dict[str, Typed]
) -> Callable[[Chunk, VerdictWord], str]:
    """What a cited passage must bear out for a verdict to stand, as a reason when it does
    not: it speaks to the topic (the trial's card, a criterion naming the topic's words or
    typed with its concepts), and where its typed facts name a trait's concept, they go the
    verdict's way (an "excludes" citing an inclusion that requires the trait is set aside)."""
    loose = _loose_qualifiers(question)
    asked_traits = [(concepts, asked | loose) for concepts, asked in traits(question)]
    wanted = {stem(t) for t in terms}

    def reason(chunk: Chunk, verdict: VerdictWord) -> str:
        if chunk.kind == "card":
            return ""
        found = typed.get(chunk.criterion_id or "")
        directions = {
            "narrowed" if m.direction == "excluded" and not _holds(m, chunk, asked) else m.direction
            for concepts, asked in asked_traits
            for concept in concepts
            for m, _ in (_bearing(concept, asked, found) if found else ())
        }
        if not directions:
            if not wanted or wanted & stem_set(chunk.text):
                return ""
            return f"{_label(chunk)} does not speak to the question"
        agree = {
            "excludes": {"excluded"},
            "requires": {"required"},
            "allows": {"allowed", "narrowed"},
            "allows with conditions": {"allowed", "narrowed", "excluded", "required"},
            "not stated": directions,
        }[verdict]
        if directions & agree:
            return ""
        said = " and ".join(sorted(directions))
        return f"{_label(chunk)} has it {said}, not {verdict}"

    return reason


def _label(chunk: Chunk) -> str:
    return chunk.criterion_id or chunk.id


def _speaks_to(mention: Mention, concept: str) -> bool:
    """Does a mention name the concept or a broader one ("no anticancer therapy for 2 weeks"
    is broader than radiotherapy; "no systemic therapy" is not)?"""
    keys = _speaking(concept)
    return mention.concept in keys or (
        bool(mention.qualifiers) and not keys.isdisjoint(map(qualifier_key, mention.qualifiers))
    )


@lru_cache(maxsize=256)
def _speaking(concept: str) -> frozenset[str]:
    """The keys (Mention.keys) of the mentions that speak to a concept: the concept, a
    broader one, any treatment for a treatment, what follows radiotherapy for radiotherapy."""
    keys = {concept, *_ancestors(concept)}
    if concept in TREATMENTS:
        keys.add(qualifier_key("any_treatment"))
    if concept == "radiotherapy":
        keys.add(qualifier_key("after_radiotherapy"))
    return frozenset(keys)


@lru_cache(maxsize=64)
def _ancestors(concept: str) -> frozenset[str]:
    out = set()
    while concept in PARENT:
        concept = PARENT[concept]
        out.add(concept)
    return frozenset(out)


def _narrowing(mention: Mention, asked: frozenset[str]) -> bool:
    """Does the mention hold only under qualifiers the asked trait does not carry ("untreated"
    brain metastases when any are asked about, radiotherapy "within 4 weeks")?"""
    activity = bool(asked & _ACTIVITY)
    ago = _ago(asked)
    for qualifier in mention.qualifiers:
        name, _, value = qualifier.partition(": ")
        # what the patient has now meets "active", its definition and any time window
        if name not in NARROWING or (activity and name in _ACTIVITY | {"defined", "within"}):
            continue
        window = window_weeks(value) if name == "within" and ago is not None else None
        if window is not None and ago is not None:  # "6 weeks ago" against "within 3 months"
            if ago <= window:
                continue  # the patient is inside the window: the exclusion holds
            return True
        if name == "site":
            if value in _SITES and _SITES[value] in asked:
                continue
            return True
        if name not in asked:
            return True
    return False


def _holds(mention: Mention, chunk: Chunk, asked: frozenset[str]) -> bool:
    """Does an exclusion hold for the patient asked about: a viral load they give against the
    load that defines what is excluded ("active hepatitis B (HBV-DNA >= 2000 IU/mL)": 3500
    IU/mL is, 500 is not), else its qualifiers against theirs (see _narrowing)."""
    theirs = [a.partition(": ")[2].split() for a in asked if a.startswith("load: ")]
    if theirs and "defined" in mention.qualifiers:
        limits = viral_loads(chunk.text)
        compared = [
            float(value) >= limit
            for value, unit in theirs
            for limit, limit_unit in limits
            if unit == limit_unit
        ]
        if compared:
            return any(compared)
    return not _narrowing(mention, asked)


def _inside_window(mention: Mention, asked: frozenset[str]) -> bool:
    """Was the asked treatment given inside the mention's time window ("6 weeks ago" against
    "within 3 months")?"""
    ago = _ago(asked)
    return ago is not None and any(ago <= weeks for weeks in _windows(mention))


def _windows(mention: Mention) -> list[float]:
    """The weeks each of the mention's time windows spans, where it says."""
    spans = (
        window_weeks(q.partition(": ")[2]) for q in mention.qualifiers if q.startswith("within")
    )
    return [weeks for weeks in spans if weeks is not None]


def _ago(asked: frozenset[str]) -> float | None:
    return next((float(a.partition(": ")[2]) for a in asked if a.startswith("ago: ")), None)


# One trait said several ways: an asked "active" disease meets an exclusion of "active or
# uncontrolled" or "untreated active" disease.
_ACTIVITY = frozenset({"active", "untreated", "symptomatic", "uncontrolled"})
# Qualifiers that say how a trait is, carried from a part naming none to those naming one.
_HOW = _ACTIVITY | {"treated"}
_SITES = dict.fromkeys(
    ("thoracic", "chest", "lung", "pulmonary", "mediastinal", "mediastinum"),
    "thoracic",
)


def _decide_concept(
    concept: str, asked: frozenset[str], typed: Sequence[Typed], chunks: list[Chunk]
) -> Decision:
    """One concept: excluded outright (with nothing pulling the other way), required,
    allowed with conditions (excluded only under narrower words, carved back in, allowed
    under conditions), allowed, else not stated."""
    typed = [t for t in typed if any(_speaks_to(m, concept) for m in t.mentions)]
    if not typed:
        return NOT_STATED
    ids = {t.criterion_id for t in typed}
    by_id = {c.criterion_id: c for c in chunks if c.kind == "criterion" and c.criterion_id in ids}
    found: list[tuple[Mention, Chunk]] = []
    wider: list[tuple[Mention, Chunk]] = []  # cited after the criteria naming the concept
    for criterion in typed:
        chunk = by_id.get(criterion.criterion_id)
        if chunk is None:
            continue
        for mention, direct in _bearing(concept, asked, criterion):
            (found if direct else wider).append((mention, chunk))
    found += wider
    if not found:
        return NOT_STATED
    outright = [(m, c) for m, c in found if m.direction == "excluded" and _holds(m, c, asked)]
    required = [(m, c) for m, c in found if m.direction == "required"]
    narrowed = [(m, c) for m, c in found if m.direction == "excluded" and not _holds(m, c, asked)]
    allowed = [(m, c) for m, c in found if m.direction == "allowed"]
    conditions = list(
        dict.fromkeys(filter(None, (_condition(m, c) for m, c in narrowed + allowed)))
    )
    if required:  # a patient without it cannot enter; exclusions narrow which ones can
        also = f"also excluded: {_where_ids(outright)}" if outright else ""
        note = _also(*conditions, also)
        return Decision("requires", _cited(required + outright + narrowed), note)
    timed = [(m, c) for m, c in outright if _inside_window(m, asked)]
    # a carve-out lets some back in ("autoimmune disease (such as autoimmune hepatitis);
    # however, vitiligo ... allowed"), though an example of the trait is excluded outright
    carved = {c.id for m, c in narrowed if "except" in m.qualifiers}
    if timed or (outright and not allowed and not carved >= {c.id for _, c in outright}):
        # a washout the patient is still inside excludes, whatever allows the treatment
        return Decision("excludes", _cited(timed or outright), "")
    if outright and not allowed:
        return Decision("allows with conditions", _cited(outright), "; ".join(conditions))
    if outright:
        pulls = _cited(outright + allowed)
        note = f"criteria pull different ways: {_where_ids(outright)} exclude it, " + (
            f"{_where_ids(allowed)} take it"
        )
        return Decision("allows with conditions", pulls, note)
    # an allowance on its own terms ("for patients with HBV, the viral load must be
    # undetectable") is a condition whatever the patient is asked with
    if narrowed or any(
        _narrowing(m, asked) or m.condition or c.section == "exclusion" for m, c in allowed
    ):
        return Decision("allows with conditions", _cited(narrowed + allowed), "; ".join(conditions))
    return Decision("allows", _cited(allowed), "")


def _beside(mention: Mention, asked: frozenset[str]) -> bool:
    """Is the mention beside the asked trait: a treatment the patient may get rather than one
    had ("candidates for radiotherapy"), or one had or required at another site than the one
    asked ("radiotherapy for brain metastases" when chest radiotherapy is asked)?"""
    if "planned" in mention.qualifiers:
        return True
    sites = {q.partition(": ")[2] for q in mention.qualifiers if q.startswith("site: ")}
    if "thoracic" not in asked or not sites or mention.direction == "excluded":
        return False
    return all(_ELSEWHERE.search(site) for site in sites)


# Sites that are not the chest ("palliative" or "wide-field" say how, not where).
_ELSEWHERE = re.compile(r"brain|bones?$|spin|pelvi|extremit|outside")


def _bearing(
    concept: str, asked: frozenset[str], criterion: Typed
) -> Iterator[tuple[Mention, bool]]:
    """The criterion's mentions that bear on an asked concept, each as it bears (a broader
    concept's, see _broader) and whether it names the concept itself; mentions beside the
    asked trait (see _beside) bear on nothing."""
    for mention in criterion.mentions:
        if not _speaks_to(mention, concept) or _beside(mention, asked):
            continue
        if mention.concept == concept:
            yield mention, True
        elif "after_radiotherapy" in mention.qualifiers:
            if mention.direction == "excluded":  # "radiation pneumonitis requiring steroids"
                yield _harm_of_radiotherapy(mention), False
        else:
            broad = _broader(mention, mention.concept == PARENT.get(concept), criterion)
            if broad is not None:
                yield broad, False


def _harm_of_radiotherapy(mention: Mention) -> Mention:
    """An excluded harm radiotherapy can leave ("radiation pneumonitis") as a condition on
    patients who had it: excluded only if they have that harm."""
    harm = f"radiation {mention.concept.replace('_', ' ')}"
    return Mention(
        "radiotherapy",
        "excluded",
        mention.span,
        (*mention.qualifiers, "toxicity"),
        "; ".join(filter(None, (harm, mention.condition))),
    )


def _broader(mention: Mention, parent: bool, criterion: Typed) -> Mention | None:
    """A mention of a broader concept as it bears on the asked one: an exclusion speaks to
    it ("no prior systemic therapy"), unless it is about toxicity; a requirement of the
    parent alone requires it ("at least 2 courses of immunotherapy"), one among several
    treatments allows it; a broader requirement further up says nothing."""
    if "toxicity" in mention.qualifiers:
        return None
    if mention.direction != "required":
        return mention
    if not parent:
        return None
    siblings = sum(
        1 for m in criterion.mentions if m.concept in TREATMENTS and "combined" not in m.qualifiers
    )
    if siblings > 1:
        return Mention(
            mention.concept, "allowed", mention.span, mention.qualifiers, mention.condition
        )
    return mention


def _cited(found: list[tuple[Mention, Chunk]]) -> tuple[Chunk, ...]:
    return tuple(dict.fromkeys(c for _, c in found))


def _where_ids(found: list[tuple[Mention, Chunk]]) -> str:
    return ", ".join(dict.fromkeys(c.criterion_id or c.id for _, c in found))


def _condition(mention: Mention, chunk: Chunk) -> str:
    """The condition quoted: what an exclusion is narrowed to, or what a carve-out or an
    allowance lets in."""
    if mention.direction == "excluded":
        return f'excluded only if "{mention.condition}"' if mention.condition else ""
    if chunk.section == "exclusion":
        return f'let in by "{_quote(chunk.text, mention.span)}"'
    return f'allowed if "{mention.condition}"' if mention.condition else ""


def _quote(text: str, span: tuple[int, int]) -> str:
    """The carve-out clause holding the span, trimmed to a readable length."""
    start = text.rfind(";", 0, span[0]) + 1
    cue = _CARVE_OUT.search(text, start, span[0] + 1)
    start = cue.start() if cue else start
    end = text.find(";", span[1])
    end = len(text) if end < 0 else end
    return _trimmed(text[start:end])


def _trimmed(text: str) -> str:
    """A quote on one line, cut to a readable length."""
    quote = " ".join(text.split())
    return quote if len(quote) <= 160 else quote[:157] + "..."


def _also(*notes: str) -> str:
    return "; ".join(filter(None, notes))


def combine(decisions: list[Decision]) -> Decision:
    """Excluded by any fact is excluded (citing what excludes); else the facts' allowances,
    citing every passage that decided a fact; else not stated. A patient with several facts
    may meet what a trial requires of one of them: that fact allows it on that condition."""
    if len(decisions) > 1:
        decisions = [
            Decision("allows with conditions", d.chunks, _also("requires it", d.note))
            if d.verdict == "requires"
            else d
            for d in decisions
        ]
    order: tuple[VerdictWord, ...] = ("excludes", "allows with conditions", "requires", "allows")
    for verdict in order:
        deciding = [d for d in decisions if d.verdict == verdict]
        if deciding:
            unstated = sum(1 for d in decisions if d.verdict == "not stated")
            note = "; ".join(d.note for d in deciding if d.note)
            if unstated and verdict != "excludes":
                note = _also(note, f"{unstated} of the facts not stated")
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
    wanted = _stemmed(frozenset(terms))
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
    for chunk in exclusion:  # carved back in: on the carve-out's terms
        return Decision(
            "allows with conditions", (chunk,), f'let in by "{_carve_quote(chunk.text)}"'
        )
    return NOT_STATED


@lru_cache(maxsize=256)
def _numbers(topic: str) -> frozenset[str]:
    """The numbers a topic gives ("survival of 12 weeks"), read once a question."""
    return frozenset(_NUMBERS.findall(topic))


@lru_cache(maxsize=256)
def _stemmed(terms: frozenset[str]) -> frozenset[str]:
    """The stems of a topic's terms, found once a question, not once a trial."""
    return frozenset(stem(t) for t in terms)


def _carve_quote(text: str) -> str:
    """The carve-out an exclusion makes, from its opening word, trimmed to a readable length."""
    carve = _CARVE_OUT.search(text)
    return _trimmed(text[carve.start() if carve else 0 :])


# Words that open an exclusion's carve-out: what follows them is allowed ("Autoimmune
# diseases, but allow the following ...: type I diabetes", "other malignancies, except ...").
_CARVE_OUT = re.compile(
    r"\b(?:allow(?:s|ed)?|permitted|acceptable|may\s+have|can\s+have|eligible|except(?:\s+for)?|"
    r"excluding|other\s+than|with\s+the\s+exception\s+of|unless|can\s+enter|may\s+enter|"
    r"(?:can|may|could)\s+be\s+(?:included|enrolled|eligible))\b",
    re.IGNORECASE,
)
_NOT_BEFORE = re.compile(r"\b(?:not|n't|never|no\s+longer)\s+(?:be\s+)?$", re.IGNORECASE)


def _carved_out(text: str, wanted: AbstractSet[str]) -> bool:
    """Is the trait named only after the exclusion's carve-out opens, so allowed by it?"""
    carve = _CARVE_OUT.search(text)
    if carve is None or _NOT_BEFORE.search(text[: carve.start()]):
        return False
    # the trait is named where most of its words are: "hypothyroidism" in the excluded list
    # is not "hypothyroidism treated with a stable dose", which the carve-out lets in
    before = {stem(m.group()) for m in _WORD.finditer(text, 0, carve.start())} & wanted
    after = {stem(m.group()) for m in _WORD.finditer(text, carve.start())} & wanted
    return len(after) > len(before) or (bool(after) and not before)


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
    """The ECOG scores a criterion names: '0-2', '0~1', '0 or 1', '≤ 2', '> 2', 'less than or
    equal to 2', '2 or more' (rag.facts.ecog_worded)."""
    worded = ecog_worded(text)
    if worded is not None:
        return worded
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
    named = re.compile(rf"\b(?:{'|'.join(map(re.escape, _lab_names(lab)))})\w*", re.IGNORECASE)
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


def _lab_names(lab: Lab) -> set[str]:
    """The names a criterion may give the lab test by: its own and the curated ones."""
    key = lab.name
    return {key, key.rstrip("s")} | {
        t for k in (key, key.rstrip("s")) for x in EXPANSIONS.get(k, ()) for t in whole_tokens(x)
    }


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
        return {
            "excludes": "Yes",
            "allows with conditions": "No, not if its conditions are met",
        }.get(verdict, "No")
    return {
        "allows": "Yes",
        "requires": "Yes",
        "allows with conditions": "Yes, with conditions",
        "excludes": "No",
        "not stated": "The record does not say",
    }[verdict]
