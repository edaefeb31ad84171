"""Question + conversation + index vocabulary -> Question: what was asked, typed.

One grammar and one vocabulary decide what a user asked, before anything is retrieved:

- which trials it names: an NCT number or T- id, a quoted or whole title, an acronym ("the
  APEC study"), or the words of a naming phrase ("the anlotinib plus sindilimab trial",
  "the Fudan one") scored against every trial's naming words (title, acronym, sponsor,
  investigators, treatments, conditions, summary), rare words counting most, with spelling
  slips forgiven; several trials that fit equally are `candidates`, a name that fits none is
  `unknown`, and "it"/"its"/"that trial" is the trial under discussion;
- its kind: a field of one trial, a criterion or threshold of one trial, a yes/no question
  (eligibility or a field), a listing by fields over the corpus, an eligibility scan over the
  corpus (a verdict per trial), a count, an existence question, a comparison of trials, or out
  of scope;
- the fields asked, the eligibility topic, the patient's facts (age, sex, performance status,
  lab values, conditions and prior therapies) and the filters in the words ("recruiting phase
  3 melanoma trials", "sponsored by Pfizer", "in China", "randomised").

Nothing here loads a model or reads an index file: `Vocabulary` is built from the trials
alone (or given what an index stored of them), so the whole grammar is tested table-driven
without the embedding model.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from typing import Any, Literal, get_args

from rag import normalize
from rag.filters import DESIGNS, Filters, Match, matches, organisations, terms
from rag.lexical import GENERIC, SPELLINGS, expansion_terms, fold, tokenize
from rag.naming import FRAME, Naming
from rag.types import Trial, nct_aliases, trial_key

Kind = Literal[
    "field",
    "criterion",
    "yes_no",
    "list",
    "scan",
    "count",
    "exists",
    "compare",
    "out_of_scope",
]
KINDS: tuple[Kind, ...] = get_args(Kind)
# Kinds about one trial (compare: about two or more named trials).
SINGLE_KINDS = frozenset({"field", "criterion", "yes_no"})


Stance = Literal["allows", "excludes", "requires"]


@dataclass(frozen=True, slots=True)
class Lab:
    """A lab value of the patient: 'platelets', 90.0 (in the unit the question used)."""

    name: str
    value: float


@dataclass(frozen=True, slots=True)
class Patient:
    """The facts a question gives about a patient."""

    age: float | None = None
    sex: str | None = None  # FEMALE or MALE
    ecog: int | None = None
    labs: tuple[Lab, ...] = ()
    conditions: tuple[str, ...] = ()  # "controlled hepatitis B", "previously on nivolumab"

    @property
    def empty(self) -> bool:
        return self == Patient()


@dataclass(frozen=True, slots=True)
class Question:
    """What a question asks, typed. Trials are ids of the index."""

    text: str
    kind: Kind
    trials: tuple[str, ...] = ()
    candidates: tuple[str, ...] = ()  # trials that fit the name given equally well
    unknown: str | None = None  # a name given that fits no trial
    fields: tuple[str, ...] = ()  # Trial fields asked ("sponsor", "ages", "masking")
    topic: str = ""  # the eligibility topic, in the question's words
    patient: Patient = field(default_factory=Patient)
    filters: Filters = field(default_factory=Filters)
    value: str = ""  # the value a yes/no field question asks about ("Lishui ... Hospital")
    # What a question over the corpus counts or looks for: trials that take such patients,
    # exclude them, or require the trait ("which trials exclude ...", "how many require ...").
    stance: Stance = "allows"
    from_conversation: bool = False  # the trial is the one under discussion

    @property
    def eligibility(self) -> bool:
        """Does it ask whom a trial takes (a topic, patient facts, healthy volunteers) rather
        than for fields?"""
        return (
            bool(self.topic)
            or not self.patient.empty
            or (self.kind in ("scan", "count", "exists") and "healthy_volunteers" in self.fields)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: for --json, the API and the eval report."""
        filters = {
            f.name: sorted(v) if isinstance(v, frozenset) else v
            for f in fields(self.filters)
            if (v := getattr(self.filters, f.name)) is not None
        }
        return {
            "kind": self.kind,
            "trials": list(self.trials),
            "candidates": list(self.candidates),
            "unknown": self.unknown,
            "fields": list(self.fields),
            "topic": self.topic,
            "patient": {
                "age": self.patient.age,
                "sex": self.patient.sex,
                "ecog": self.patient.ecog,
                "labs": [{"name": lab.name, "value": lab.value} for lab in self.patient.labs],
                "conditions": list(self.patient.conditions),
            },
            "filters": filters,
            "value": self.value,
            "stance": self.stance,
            "from_conversation": self.from_conversation,
        }


# --- the index vocabulary -------------------------------------------------------------------

FUZZY_MIN_LENGTH = 6  # shorter words are only matched exactly
ACRONYM_WEIGHT = 10.0  # an acronym or code names one trial outright
MAX_CANDIDATES = 10  # trials listed when a name fits several; more, and the name says too little
TITLE_WEIGHT = 100.0  # so does the whole title
# A name whose words fit its one trial less surely than this (no word that fewer than about
# four trials share) names it only when the words after the noun do not point elsewhere.
WEAK_NAME = 0.5
RARITY_EXPONENT = 0.5  # a naming word shared by n trials counts n ** -0.5 (see rarity)
# A trial within this of the best fit, that some naming word fits better, is as likely meant:
# about one word that 25 trials share.
CONTESTED_MARGIN = 0.2


@dataclass(frozen=True, slots=True)
class Resolution:
    """How a name given in a question fits the trials."""

    trials: tuple[str, ...]  # one: named; several: they fit equally
    score: float


class Vocabulary:
    """What the index's trials are called, counted once per index."""

    def __init__(
        self,
        trials: Mapping[str, Trial],
        aliases: dict[str, str] | None = None,
        naming: Naming | None = None,
    ) -> None:
        """Over the trials; their other NCT numbers and what names them (rag.naming) are read
        from them unless given (an index stores them)."""
        self.trials = trials
        self._aliases = aliases
        self._naming = naming

    @cached_property
    def naming(self) -> Naming:
        """Each trial's naming words and how surely each names it, its acronym and titles."""
        return Naming.of(self.trials.values()) if self._naming is None else self._naming

    def names(self, trial_id: str) -> frozenset[str]:
        """The words that name the trial."""
        return self.naming.words_of(trial_id)

    @cached_property
    def aliases(self) -> dict[str, str]:
        """The other NCT numbers the trials were registered under: given (an index stores
        them), else read from the trials."""
        return nct_aliases(self.trials.values()) if self._aliases is None else self._aliases

    @cached_property
    def acronyms(self) -> dict[str, frozenset[str]]:
        found: dict[str, set[str]] = {}
        for tid, acronym in self.naming.acronyms.items():
            found.setdefault(acronym.casefold(), set()).add(tid)
        return {k: frozenset(v) for k, v in found.items()}

    @cached_property
    def titles(self) -> dict[str, frozenset[str]]:
        """The trials each folded title names."""
        return {title: frozenset(ids) for title, ids in self.naming.titles.items()}

    @cached_property
    def _by_prefix(self) -> dict[str, list[str]]:
        """Naming tokens by their first two letters, for spelling slips."""
        index: dict[str, list[str]] = {}
        for token in self.naming.words:
            if len(token) >= FUZZY_MIN_LENGTH - 1 and token.isalpha():
                index.setdefault(token[:2], []).append(token)
        return index

    @cached_property
    def field_values(self) -> dict[str, list[frozenset[str]]]:
        """The word sets of every stated sponsor, condition and intervention (for listing)."""
        values: dict[str, list[frozenset[str]]] = {
            "sponsor": [],
            "condition": [],
            "intervention": [],
            "organisation": [],
        }
        for trial in self.trials.values():
            if trial.sponsor:
                values["sponsor"].append(terms(trial.sponsor))
            values["organisation"].extend(terms(v) for v in organisations(trial))
            for name, key in (("conditions", "condition"), ("interventions", "intervention")):
                listed, _ = trial.value(name)
                values[key].extend(terms(v) for v in listed or ())
        return values

    @cached_property
    def countries(self) -> frozenset[str]:
        return frozenset(
            c.casefold() for t in self.trials.values() for c in (t.countries or ()) if c
        )

    def known(self, word: str) -> bool:
        return word in self.naming

    @cached_property
    def field_texts(self) -> dict[str, frozenset[str]]:
        """The folded text of every stated sponsor, organisation, condition and treatment."""
        texts: dict[str, set[str]] = {k: set() for k in (*_LISTING_KEYS, "about")}
        for trial in self.trials.values():
            texts["sponsor"].add(fold(trial.sponsor or ""))
            texts["organisation"].update(fold(v) for v in organisations(trial))
            texts["condition"].update(fold(v) for v in trial.conditions or ())
            texts["intervention"].update(fold(v) for v in (trial.interventions or ()))
            texts["intervention"].update(fold(v) for v in (trial.arms or ()))
        texts["about"] = texts["condition"] | texts["intervention"]
        return {k: frozenset(v) for k, v in texts.items()}

    def match(self, kind: str, value: str) -> Match:
        """How a listing's value should match: a sponsor's name as a whole when some trial
        states it so; an organisation (named among people and sites), a condition or a
        treatment as a phrase when some value holds it ("solid tumors" in "Advanced Solid
        Tumors"); else by its words."""
        wanted = fold(value)
        if wanted in self.field_texts[kind] and kind == "sponsor":
            return "exact"  # the name of one sponsor, not every one whose name holds it
        if matches(value, self.field_texts[kind], "phrase"):
            return "phrase"
        return "words"

    @cached_property
    def _value_words(self) -> frozenset[str]:
        return frozenset(w for values in self.field_values.values() for v in values for w in v)

    def known_value(self, word: str) -> bool:
        """Is the word in some trial's sponsor, organisations, conditions or treatments?"""
        return terms(word) <= self._value_words

    def correct(self, word: str) -> str | None:
        """A naming token the word is a slip of ('sintilimab' -> 'sindilimab'), if one only."""
        if len(word) < FUZZY_MIN_LENGTH or not word.isalpha():
            return None
        limit = 1 if len(word) < 8 else 2
        near = [
            t
            for t in self._by_prefix.get(word[:2], [])
            if abs(len(t) - len(word)) <= limit and _distance(word, t, limit) <= limit
        ]
        return near[0] if len(near) == 1 else None

    def resolve(self, words: Iterable[str]) -> Resolution:
        """The trials these naming words fit best (see _best)."""
        return _best(self.evidence(words))

    def scores(self, words: Iterable[str]) -> dict[str, float]:
        """Every trial some of these naming words fit, with how well."""
        return {tid: sum(found.values()) for tid, found in self.evidence(words).items()}

    def evidence(self, words: Iterable[str]) -> dict[str, dict[str, float]]:
        """Every trial some of these naming words fit, with what each word adds."""
        words = set(words)
        # A hyphenated word the index knows counts once for a trial that has it, not again
        # through its parts ("first-line" is one naming word, not three); a trial with only
        # the parts ("relapsed or refractory" for "relapsed/refractory") counts the parts.
        parts = {
            word: set(tokenize(word)) - {word}
            for word in words
            if ("-" in word or "/" in word) and self.known(word)
        }
        found = {word: self._fit(word) for word in words if word not in FRAME}
        evidence: dict[str, dict[str, float]] = {}
        through: dict[tuple[str, str], float] = {}  # (compound, trial): what its parts gave
        for word, fits in found.items():
            compound = next((c for c, p in parts.items() if word in p), None)
            whole = self.rarity(self.naming.frequency(compound)) if compound else 0.0
            for tid, score in fits.items():
                if any(word in p and tid in found[c] for c, p in parts.items()):
                    continue
                if compound is not None:
                    # The parts together say no more than the compound would ("PD-1/L1"
                    # for "PD-L1"), however rare each part is, and some of them only their
                    # share of it ("line", of "first-line", for "second-line").
                    have = sum(1 for p in parts[compound] if tid in found.get(p, {}))
                    cap = whole * have / len(parts[compound])
                    given = through.get((compound, tid), 0.0)
                    score = min(score, cap - given)
                    through[(compound, tid)] = given + score
                evidence.setdefault(tid, {})[word] = score
        return evidence

    def _fit(self, word: str) -> dict[str, float]:
        """The trials one naming word fits, each with how surely; rare words count most."""
        # An acronym names its trial outright, unless the word also names others ("RADICAL"
        # beside radical prostatectomy; a sponsor given as the acronym): by how many.
        scores: dict[str, float] = {}
        acronym = self.acronyms.get(word)
        if acronym:
            others = sum(1 for tid in self.naming.fits(word) if tid not in acronym)
            scores = dict.fromkeys(acronym, ACRONYM_WEIGHT / (1 + others))
        if not self.known(word):
            corrected = self.correct(word)
            if corrected is None:
                return scores
            word = corrected
        fits = self.naming.fits(word)
        if len(fits) > max(2, len(self.naming.trials) // 4):
            return scores
        rarity = self.rarity(len(fits))
        for tid, weight in fits.items():
            scores[tid] = scores.get(tid, 0.0) + weight * rarity
        return scores

    @staticmethod
    def rarity(frequency: int) -> float:
        """How surely a word that `frequency` trials share names one of them: 1 for a word of
        one trial, falling with the square root of how many share it, so that a description's
        many words add up and one rare word ("randomizing", in one summary) does not outweigh
        them all."""
        return float(frequency**-RARITY_EXPONENT)

    def by_title(self, text: str) -> Resolution:
        """Trials whose whole title the text holds (the longest title wins)."""
        folded = f" {fold(text)} "
        found = [(len(k), ids) for k, ids in self.titles.items() if f" {k} " in folded]
        if not found:
            return Resolution((), 0.0)
        longest = max(n for n, _ in found)
        ids = sorted({i for n, group in found if n == longest for i in group})
        return Resolution(tuple(ids), TITLE_WEIGHT)


def _best(evidence: dict[str, dict[str, float]]) -> Resolution:
    """The trial the words fit best; with it, the trials as good, and those nearly as good
    (within CONTESTED_MARGIN) that some word fits better than the best one: the words do not
    tell them apart, so the question does not name one of them."""
    if not evidence:
        return Resolution((), 0.0)
    scores = {tid: sum(found.values()) for tid, found in evidence.items()}
    top = max(scores.values())
    leader = evidence[min(tid for tid, s in scores.items() if s >= top - 1e-9)]

    def contested(tid: str) -> bool:
        return scores[tid] >= top - CONTESTED_MARGIN and any(
            v > leader.get(w, 0.0) for w, v in evidence[tid].items()
        )

    best = sorted(tid for tid, s in scores.items() if s >= top - 1e-9 or contested(tid))
    return Resolution(tuple(best), top)


def _distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance, stopping early once it exceeds `limit`."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        if min(current) > limit:
            return limit + 1
        previous = current
    return previous[-1]


# --- the grammar ----------------------------------------------------------------------------

_ID = re.compile(r"\b(NCT\s?\d{8}|T-[0-9a-f]{10})\b", re.IGNORECASE)
_QUOTED = re.compile(r"[\"“”]([^\"“”]{4,400})[\"“”]")
_TRIAL_NOUN = r"(?:trials?|stud(?:y|ies)|protocol|one|research|programme|program)"
_PLURAL_NOUN = re.compile(r"\b(?:trials|studies)$", re.IGNORECASE)
# What may follow the noun and still name the trial: "the study with apatinib for ...".
_TAIL = (
    r"(?=(?P<tail>\s+(?:on|of|for|with|in|testing|using|about|where|whose|that|which|led\s+by|"
    r"run\s+by|sponsored\s+by|by|from|at|comparing|combining|involving)\b(?:(?!\s[-–]\s)[^?!.;,\"])*)?)"
)
_NAMED = re.compile(
    r"\b(?:the|this|that)\s+(?P<name>(?:(?!\b(?:the|this|that|a|an|are|is|were|was|have|has|"
    r"do|does|did)\s)[^?!.;:,\"]){0,150}?)"
    rf"\s*\b{_TRIAL_NOUN}\b(?!-){_TAIL}",
    re.IGNORECASE,
)
# A name opening the question or a clause, with no article: "Fudan local therapy trial - PI?".
_CLAUSE_NAMED = re.compile(
    r"(?:^|(?<=[-–:,;]\s))(?:(?:in|for|of|on|about|from|at)\s+)?(?P<name>(?:(?!(?:the|a|an|this|"
    r"that|what|which|who|whom|whose|how|when|where|why|is|are|was|were|does|do|did|can|could|"
    r"would|will|should|may|might|has|have|list|tell|give|show|compare|any|some|all|my|our|your|"
    r"in|for|of|to|only|just)\b)\w[\w+/&'-]*\s+){1,8})(?:trials?|stud(?:y|ies)|protocol)\b(?!-)"
    rf"{_TAIL}",
    re.IGNORECASE,
)
# A name after the verb that says what to join ("can my dad join camrelizumab + RT?").
_JOIN = re.compile(
    r"\b(?:join|enter|enrol+(?:ed)?\s+(?:in|into|on)|take\s+part\s+in|participate\s+in|"
    r"qualify\s+for|eligible\s+for|get\s+into|sign\s+up\s+for|be\s+(?:in|on)|go\s+on)\s+"
    r"(?P<name>[^?!.;]+)",
    re.IGNORECASE,
)
_ANAPHOR = re.compile(
    r"\b(?:it|its|it's|itself|this|that|the\s+same|same|they|them|their|there)\b|"
    r"\bthe\s+(?:trial|study|protocol)\b|^\s*(?:and|what about|how about|also|plus)\b",
    re.IGNORECASE,
)
_COMPARE = re.compile(
    r"\b(?:compare\w*|comparison|differ\w*|difference|versus|vs\.?|both|same|more|fewer|less|"
    r"larger|smaller|bigger|longer|shorter|earlier|later|higher|lower|stricter|looser|between|"
    r"either|neither|whereas|while)\b",
    re.IGNORECASE,
)
_CORPUS = re.compile(
    r"\b(?:trials|studies|protocols)\b|\bwhich\s+(?:trial|study|one|ones|of\s+(?:them|these|"
    r"those|the))\b|\b(?:any|some)\s+(?:[\w-]+\s+){0,3}?(?:trial|study)\b|\bis\s+there\s+"
    r"(?:a|an|any|some)\s+(?:[\w-]+\s+){0,3}?(?:trial|study)\b|^\s*(?:which|what)\s+ones?\b|"
    r"\b(?:looking\s+for|find|search\s+for|know\s+of)\s+(?:a|an|any)\s+(?:[\w-]+\s+){0,2}?"
    r"(?:trial|study)\b|"
    r"\bhow\s+many\s+of\s+(?:them|these|those|the)\b|"
    # what is open, enrolling, recruiting or accruing: the trials, by their status
    r"\b(?:anything|what(?:'s|\s+is|\s+are)|ones?|stuff)\s+(?:(?:currently|still|now|actively|"
    r"right\s+now)\s+)?(?:open|enrolling|recruiting|accruing)\b|"
    r"\bevery\s+(?:[\w-]+\s+){0,3}?(?:trial|study)\b|"
    r"\b(?:among|of|in|across)\s+(?:all\s+)?(?:the|these|this)\s+(?:five|\d+|set|bunch|lot|list|"
    r"collection|corpus)\b",
    re.IGNORECASE,
)
# Trials counted, as people write them (typos included: "studys", "trails").
_TRIALS_COUNTED = r"(?:trials|studies|studys|trails|protocols)\b"
_COUNT = re.compile(
    rf"\bhow\s+many\b(?!\s+(?:(?!{_TRIALS_COUNTED})\w+\s+){{0,2}}?(?:participants|patients|"
    r"people|subjects|volunteers|persons|individuals|cases|metasta\w*|lesions?|lines?|cycles?|"
    r"weeks?|months?|years?|days?|sites?|centers?|centres?|arms?|groups?|doses?|organs?))|"
    rf"\bnumber\s+of\s+(?:[\w-]+\s+){{0,2}}{_TRIALS_COUNTED}|\bcount\s+(?:of\s+)?(?:the\s+)?"
    rf"(?:[\w-]+\s+){{0,2}}{_TRIALS_COUNTED}",
    re.IGNORECASE,
)
_EXISTS = re.compile(
    r"^\s*(?:(?:is|are)\s+there|(?:does|do|did|will|would|could|can)\s+any|any|has\s+any|"
    r"have\s+any|are\s+any)\b|\bany\s+(?:trial|study)\b|\bis\s+anyone\b|\bdo\s+you\s+have\b|"
    r"\banything\s*\??\s*$|\blooking\s+for\s+(?:a|an|any)\b",
    re.IGNORECASE,
)
_YES_NO = re.compile(
    r"^\s*(?:and\s+|so\s+|also\s+|but\s+|then\s+|ok\s+|okay\s+)?(?:can|could|may|might|is|are|am|"
    r"does|do|did|would|will|should|has|have|was|were|isn't|aren't|doesn't|don't|won't|"
    r"wouldn't|can't|couldn't)\b|^\s*(?:ok|okay|fine|safe|acceptable|allowed|eligible)\s+"
    r"(?:to|for|per|under|by)\b|^\s*(?:ok|okay|fine|acceptable|allowed|eligible)\s*\?",
    re.IGNORECASE,
)
_WH = re.compile(
    r"^\s*(?:and\s+)?(?:(?:on|in|at|by|for|from|since|until|to|of|with)\s+)?(?:what|which|who|"
    r"whom|whose|when|where|why|how|list|tell|give|show|name|"
    r"describe|explain|summari[sz]e|please|(?:can|could|would|will)\s+you\s+(?:please\s+)?(?:tell|"
    r"give|show|list|find|check|say|let\s+me\s+know|look\s+up|confirm))\b",
    re.IGNORECASE,
)
_ELIGIBILITY = re.compile(
    r"\b(?:allow\w*|accept\w*|admit\w*|permit\w*|tak(?:e|es|ing)\s+(?:patients|people|someone|"
    r"anyone|those|participants|a\s|an\s|me\b|him|her\b|them|my\b|men|women|smokers|children|"
    r"kids|adults|prior\b|previous\w*|pre-?treated)|"
    r"let\w*\s+(?:in|patients|people|someone|me|him|her)|exclud\w*|"
    r"includ\w*\s+(?:patients|people|someone|those|anyone|a\s|participants|me\b|him|her\b)|"
    r"eligib\w*|qualif\w*|join\w*|enter|get\s+in|enrol+(?:ed)?\s+(?:patients|people|someone|a\s|"
    r"an\s|me\b|him|her\b|my\b|those|anyone|in|into)|be\s+enrol+ed|take\s+part|participate|"
    r"open\s+to|welcome\w*|rule\w*\s+out|bar(?:s|red)?\b|ban(?:s|ned)?\b|prohibit\w*|"
    r"disqualif\w*|restrict\w*|requir\w*|need(?:s|ed)?\b|must\s+(?:have|be)|contraindicat\w*|"
    r"rule\w*\s+(?:\w+\s+)?out|"
    r"(?:can|could|may|might|would)\s+(?:i|he|she|they|someone|somebody|anyone|a\s+patient|"
    r"patients|people|my\s+\w+)\b|who\s+(?:has|have|had|is|are|was|were)\b|"
    r"(?:patients?|people|someone|somebody|anyone|those|participants?|persons?|men|women)\s+"
    r"(?:with|who|having|on|after|taking)\b|if\s+(?:i|he|she|they|you)\b|exclusions?\b|"
    r"inclusions?\b|say\s+no|turn\w*\s+away|reject\w*|refus\w*|(?:not|n't)\s+(?:take|accept|"
    r"allow|let)|o\.?k\.?\s+with|okay\s+with|fine\s+with|problem\s+(?:for|with)|"
    r"be\s+a\s+problem|keep\s+(?:out|away)|(?:ok|okay|fine|acceptable|allowed|a\s+problem)\s+"
    r"or\s+not|\b(?:ok|okay|acceptable|allowed)\s*\??\s*$|go\s+(?:on\s+)?(?:on|onto|into|to)\s+"
    r"(?:screening|the\s+(?:trial|study))|get(?:ting)?\s+(?:on|onto|into|in)\b|be\s+screened)",
    re.IGNORECASE,
)
# Fields a question asks, by its words (checked on the question with trial names masked).
_FIELD_WORDS: tuple[tuple[str, str], ...] = (
    (
        "sponsor",
        r"\bsponsor\w*|\bwho(?:'s|\s+is|\s+are)?\s+(?:runs?|running|behind|funds?|funding|"
        r"pays?|paying|organi[sz]\w*|conduct\w*|responsible|in\s+charge)\b|\bfund(?:ed|er|ers|ing)\b"
        r"|\brun\s+by\b|\bcompany\b|\borgani[sz]ation\b|\bbacked\s+by\b|\bbehind\s+(?:it|the)\b",
    ),
    (
        "investigators",
        r"\b(?:principal\s+)?investigators?\b|\bPI\b|\bdoctors?\s+(?:in\s+charge|leading|running)"
        r"|\blead\s+(?:researcher|doctor|physician|scientist|investigator)|\bwho\s+(?:leads|is\s+"
        r"leading|heads)\b|\bresearchers?\b",
    ),
    ("collaborators", r"\bcollaborat\w*|\bpartner\w*|\bco-?sponsor\w*"),
    (
        "contacts",
        r"\bcontact(?:s|ed|ing)?\b|\bwho\s+(?:do|should|can|could)\s+(?:I|we|you|they)\s+"
        r"(?:call|phone|e-?mail|ask|reach|write\s+to|talk\s+to|speak\s+(?:to|with))\b|"
        r"\bphone\s+number\b|\be-?mail\s+address\b|\breach\s+out\b|\bget\s+in\s+touch\b",
    ),
    ("phase", r"\bphase\b"),
    (
        "status",
        r"(?<!performance\s)\bstatus\b|\brecruit\w*|\bstill\s+(?:open|enrolling|running|going|active|taking|"
        r"accepting|looking|ongoing)|\bopen\s+(?:for|to)\s+(?:enrol\w*|recruitment|new|"
        r"patients|participants|people|sign-?ups?)|\baccepting\s+(?:new\s+)?(?:patients|"
        r"participants|people|volunteers)|\benrolling\s+(?:now|patients|currently|at)|\bclosed\b|"
        r"\b(?:currently|still|now|actively)\s+(?:enrolling|recruiting|open(?![- ]?label))\b|"
        r"\btaking\s+(?:new\s+)?(?:patients|participants|people)\b|\bopen\s+for\s+business\b|"
        r"\bongoing\b|\bterminated\b|\bwithdrawn\b|\bsuspended\b|\b(?:new|more)\s+(?:patients|"
        r"people|participants)\s+(?:still\s+)?(?:join|enrol\w*|sign\s+up|register|apply)|"
        r"\bstill\s+(?:join|enrol\w*|sign\s+up|register|apply|get\s+in)\b|\bsign\s+up\b|"
        r"\bsign(?:ing|s)?\s+(?:\w+\s+){1,2}up\b|\bopen\s+(?:now|yet|currently|still)\s+(?:for|to)\b|"
        r"\b(?:is|are)\s+(?:it|they)\s+"
        r"(?:open(?![- ]?label)|active|over|finished|done|running)\b|\b(?:still|currently)\s+"
        r"(?:open|active|running)\b(?![- ]?label)(?!\s+(?:hep\w*|infection|disease|tb\b|"
        r"tuberculosis|hiv|autoimmune|brain|cns|metasta\w*|cancer|\w+itis))|"
        r"^\s*(?:is|are)\b.*\b(?:open|active|finished|over|"
        r"completed)\s*\??\s*$",
    ),
    (
        "study_type",
        r"\bstudy\s+type\b|\btype\s+of\s+(?:study|trial)\b|\bkind\s+of\s+(?:study|trial)\b|"
        r"\binterventional\b|\bobservational\b|\bstudy\s+classification\b",
    ),
    (
        "enrollment",
        r"\benrol+ment\b|\bhow\s+many\s+(?:\w+\s+){0,2}?(?:participants|patients|people|subjects|"
        r"volunteers|persons|individuals|cases)\b|\bsample\s+size\b|\bnumber\s+of\s+(?:"
        r"participants|patients|subjects|people)\b|\b(?:target|planned)\s+(?:accrual|size|number|"
        r"enrol\w*|n)\b|\baccrual\b|\bhow\s+(?:big|large)\s+(?:is|was|will)\s+(?:the\s+|this\s+|that\s+)?"
        r"(?:(?:it|trial|study|sample|one)\b|<trial>|\s*(?:be\s*)?\?)|\bhow\s+many\s+(?:ppl|pts|pt)\b|\bhow\s+many\s+(?:will|do|does|did)\s+"
        r"(?:they|it)\s+(?:enrol+|recruit|include|take)|\bhow\s+many\s+(?:are|were)\s+(?:in|"
        r"enrol+ed)\b|\b(?:plan\w*|aim\w*|hop\w*|expect\w*|intend\w*|going|want\w*|look\w*)\s+"
        r"to\s+(?:enrol+|recruit|include)\b|\bwill\s+(?:\w+\s+){0,6}?(?:enrol+|recruit)\b|"
        r"\b(?:enrol+s?|recruits?|includes?)\s+(?:more|fewer|less)\b|\b(?:more|fewer)\s+"
        r"(?:participants|patients|people|subjects)\b|\b(?:larger|bigger|smaller)\s+"
        r"(?:trial|study|sample)\b",
    ),
    ("last_update", r"\blast\s+(?:update\w*|changed|modified|revised)\b|\bupdated\b"),
    (
        "ages",
        r"(?<!bearing\s)(?<!reproductive\s)(?<!gestational\s)\bages?\b"
        r"(?!\s*(?:of|is|:)?\s*\d)|\bhow\s+old\b|\bmost\s+old\b|\bage\s+(?:limit|range|requirement|"
        r"criteria|cut-?off|bracket|group)|\b(?:minimum|maximum|min|max|upper|lower|lowest|highest|"
        r"youngest|oldest|eligible|entry)\s+(?:eligible\s+)?age\b|\btoo\s+"
        r"(?:old|young)\b|\byoungest\b|\boldest\b|\bold\s+enough\b|\byoung\s+enough\b",
    ),
    (
        "sex",
        r"\bsex(?:es)?\b|\bgenders?\b|\b(?:men|males?)\s+(?:and|or)\s+(?:women|females?)\b|"
        r"\b(?:women|females?)\s+(?:and|or)\s+(?:men|males?)\b|\bboth\s+sexes\b|\b(?:only|just)\s+"
        r"(?:men|women|males|females)\b|\b(?:enrol+|take|accept|include|open\s+to|allow)\w*\s+"
        r"(?:men|women|males|females)\b|\b(?:men|women)\s+(?:only|join|take\s+part|participate|"
        r"enrol+|be\s+enrol+ed|apply)\b|\b(?:men|males?)\b.*\b(?:women|females?)\b|"
        r"\b(?:women|females?)\b.*\b(?:men|males?)\b",
    ),
    (
        "healthy_volunteers",
        r"\bhealthy\s+(?:volunteers?|people|participants|subjects|individuals|adults|persons?|"
        r"controls|individual|adult)\b",
    ),
    (
        "conditions",
        r"\bconditions?\b|\bdiseases?\b|\billness\w*\b|\bindications?\b|\bdiagnos[ie]s\b|"
        r"\bwhat\s+(?:kind|type|sort)\s+of\s+(?:cancer|tumou?r|disease|illness|patients)\b|"
        r"\bwhat\s+(?:is|are)\s+(?:it|they|<trial>|the\s+(?:trial|study|one))\s+(?:for|about|studying|treating|targeting|"
        r"looking\s+at|investigating)\b|\b(?:treat|treats|treating|target|targets|targeting)\s+"
        r"what\b|\bwhat\s+(?:does|do|did)\s+(?:it|they|<trial>|the\s+(?:trial|study|one))\s+(?:treat|target|study|"
        r"investigate|look\s+at|focus\s+on)\b|\b(?:what|which)\s+(?:\w+\s+)?(?:of\s+)?(?:cancers?|"
        r"diseases?|tumou?rs?|illness)\b",
    ),
    (
        "interventions",
        r"\binterventions?\b|\bdrugs?\b|\bmedications?\b|\bmedicines?\b|\btreatments?\b|"
        r"\btherap(?:y|ies)\b|\bregimens?\b|\bwhat\s+(?:is|are)\s+(?:being\s+)?(?:tested|"
        r"studied|given|evaluated|compared|combined)\b|\bwhat\s+(?:do|does|will|did)\s+(?:the\s+)?"
        r"(?:patients|participants|people|they|subjects)\s+(?:get|receive|take|receiv\w*)\b|"
        r"\bwhat\s+(?:do|does|did)\s+(?:it|they)\s+(?:test|give|use|evaluate|compare|try)\b|"
        r"\bwhat\s+(?:is|are)\s+(?:it|they)\s+testing\b|\bagents?\b|\bcombination\b|"
        r"\bapproach(?:es)?\b|\bstrateg(?:y|ies)\b|\bmodalit(?:y|ies)\b|\b(?:are|is)\s+compared\b"
        r"|\bwhat\s+(?:are|were|is|was)\s+(?:the\s+)?(?:patients|participants|people|they|subjects)"
        r"\s+(?:treated|given|getting|receiving|taking)\b|\btreated\s+with\s+what\b"
        r"|\bcombined\b",
    ),
    ("arms", r"\barms\b|\b(?:treatment|study)\s+(?:arms|groups)\b|\bcohorts\b|\bwhat\s+groups\b"),
    (
        "allocation",
        r"\brandomi[sz]\w*|\ballocation\b|\bcontrolled\b|\bcontrol\s+(?:group|arm)\b|"
        r"\brandom(?:ly)?\s+(?:assign|allocat|split|divid)\w*",
    ),
    (
        "intervention_model",
        r"\bsingle[- ]?arm\b|\bsingle[- ]group\b|\bparallel\b|\bcross-?over\b|\bfactorial\b|"
        r"\bintervention(?:al)?\s+model\b|\bhow\s+many\s+arms\b|\b(?:one|single|1)\s+(?:treatment\s+)?"
        r"(?:arm|group)\b",
    ),
    (
        "masking",
        r"\bopen[- ]label\b|\bblind\w*\b|\bmask\w*\b|\bplacebo\b|\bunblinded\b|"
        r"\bopen\s*(?:study|trial|design)\b",
    ),
    ("primary_purpose", r"\bprimary\s+purpose\b|\bpurpose\b|\baim\b|\bgoal\b|\bobjective\b"),
    ("observational_model", r"\bobservational\s+model\b|\bcase[- ]control\b|\bcohort\s+study\b"),
    ("time_perspective", r"\bretrospective\b|\bprospective\b|\btime\s+perspective\b"),
    (
        "primary_outcomes",
        r"\bprimary\s+(?:end\s*-?\s*points?|outcomes?|measures?)\b|\b(?:main|key)\s+(?:end\s*-?\s*"
        r"points?|outcomes?|measure)\b|\bend\s*-?\s*points?\b|\boutcomes?\b|\bwhat\s+(?:are\s+they|"
        r"is\s+it|do\s+they|does\s+it)\s+measur\w*",
    ),
    ("secondary_outcomes", r"\bsecondary\s+(?:end\s*-?\s*points?|outcomes?|objectives?|measures?)"),
    (
        "locations",
        r"\bcountr(?:y|ies)\b|\bwhere\b|\bwhich\s+(?:cities|city|hospitals?|sites?|centres?|"
        r"centers?|locations?)\b|\blocations?\b|\bsites?\b|\bheld\s+in\b|\bbased\s+in\b|"
        r"\bconducted\s+in\b|\bcities\b|\bcity\b",
    ),
    (
        "official_title",
        r"\bofficial\s+(?:title|name)\b|\bscientific\s+title\b|\bfull\s+(?:official\s+)?title\b",
    ),
    (
        "title",
        r"\btitle\b|\bcalled\b|\bname\s+of\s+(?:the|this|that)\s+(?:trial|study)\b|\bfull\s+"
        r"(?:study\s+|trial\s+)?name\b|\b(?:study|trial)\s+name\b",
    ),
    ("acronym", r"\bacronym\b|\bshort\s+name\b|\babbreviation\b|\bnickname\b"),
    (
        "design",
        r"\b(?:study|trial)\s+design\b|\bdesign\s+of\b|\bhow\s+is\s+(?:it|<trial>|the\s+(?:trial|study))\s+"
        r"designed\b|\bdesigned\b|\bdesign\b",
    ),
)
_FIELD_RES = tuple((name, re.compile(p, re.IGNORECASE)) for name, p in _FIELD_WORDS)
_WHEN = re.compile(
    r"\bwhen\b|\bdates?\b|\bwhat\s+(?:year|month|day|time)\b|\bhow\s+long\s+ago\b|"
    r"\bsince\s+when\b|\bby\s+when\b|\btimeline\b|\bschedule\w*\b|\b(?:start|begin|end|"
    r"finish|complet)\w*\s+(?:later|earlier|sooner|first|last)\b",
    re.IGNORECASE,
)
_START = re.compile(
    r"\b(?:start\w*|begin\w*|began|begun|commenc\w*|kick\w*\s+off|launch\w*|open(?:ed|s)?|"
    r"first\s+patient|running|been\s+going|underway|since)\b",
    re.IGNORECASE,
)
_END = re.compile(
    r"\b(?:end|ends|ended|ending|finish\w*|complet\w*|conclu\w*|close|closes|closed|wrap\w*|"
    r"over|done|stop\w*|due|run\s+until|last\s+until|expected\s+to\s+(?:end|finish))\b",
    re.IGNORECASE,
)
_STATUS_NOT_COUNT = r"\benrol+(?:ment|ing)?\s+status\b|\b(?:open|closed)\s+(?:for|to)\s+enrol"
_DESIGN_FIELDS = tuple(normalize.DESIGN_VALUES)

# --- patient facts --------------------------------------------------------------------------

_AGE = re.compile(
    r"\b(?P<a>\d{1,3})\s*[- ]?\s*(?:years?|yrs?|y)\s*[- ]?\s*(?:old|of\s+age)\b|"
    r"\b(?P<b>\d{1,3})\s*[- ]?(?:yo|y/o|y\.o\.)\b|\baged?\s+(?:of\s+|is\s+)?(?P<c>\d{1,3})\b|"
    r"(?<!for\s)(?<!past\s)(?<!last\s)(?<!over\s)\b(?P<f>\d{2,3})\s*(?:yrs?|years?)\b"
    r"(?!\s*(?:ago|since|back|before|after|of|later|earlier|prior))|"
    r"\b(?:is|am|turned|turning|he's|she's|i'm)\s+(?P<d>\d{2,3})\b(?!\s*(?:kg|cm|mg|%|lb|years?\s+"
    r"(?:ago|since)|x|×))|\bin\s+(?:his|her|their|my)\s+(?P<e>\d)0s\b",
    re.IGNORECASE,
)
# An age followed by which way it bounds ("aged 76 or more", "70 and older", "65+"), read with it.
_AGE_TAIL = re.compile(
    r"\s*(?:\+|(?:or|and)\s+(?:more|older|over|above|up|upwards|younger|under|less))\b",
    re.IGNORECASE,
)
# An age bound on the people asked about ("people over 75", "someone older than 70", "kids under
# 18"): the first age past the bound stands for the patient's (76, 71, 17).
_AGE_BOUND = re.compile(
    r"\b(?:people|patients?|persons?|someone|somebody|anyone|anybody|adults?|men|women|seniors?|"
    r"folks|those|participants?|individuals?|kids|children|volunteers?)\s+"
    r"(?:who\s+are\s+|aged\s+)?(?P<dir>over|above|older\s+than|past|beyond|under|below|"
    r"younger\s+than)\s+(?P<n>\d{1,3})\b(?!\s*(?:kg|cm|mg|%|lbs?|pounds|months?|weeks?|days?)\b)"
    r"(?:\s*(?:years?|yrs?)(?:\s+(?:old|of\s+age))?)?",
    re.IGNORECASE,
)
_AGE_SEX = re.compile(r"\b(?P<age>\d{2,3})\s?(?P<sex>[MF])\b")
_FEMALE = re.compile(
    r"\b(?:woman|lady|girl|mother|mom|mum|wife|daughter|sister|grandmother|grandma|aunt|she|"
    r"female\s+patient|niece)\b",
    re.IGNORECASE,
)
_MALE = re.compile(
    r"\b(?:man|gentleman|boy|father|dad|husband|son|brother|grandfather|grandpa|uncle|he|"
    r"male\s+patient|nephew)\b",
    re.IGNORECASE,
)
_ECOG = re.compile(
    r"\b(?:ecog|e\.c\.o\.g\.?|who|zubrod)?\s*(?:performance\s+status|performance\s+score|ps|"
    r"ecog)\s*(?:score|status|grade|level)?\s*(?:of|is|=|:|at)?\s*(?P<n>[0-5])\b(?![.,]\d|\s*[x×]|\s*(?:-|–|to|or|and)\s*[0-5]\b)",
    re.IGNORECASE,
)
_LAB_NAMES = (
    r"platelets?(?:\s+count)?|plt|h(?:a)?emoglobin|hgb|hb|(?:absolute\s+)?neutrophils?"
    r"(?:\s+count)?|anc|creatinine\s+clearance|crcl|creatinine|bilirubin|albumin|wbc|white\s+"
    r"(?:blood\s+)?(?:cell\s+)?count|alt|ast|egfr\s+(?:of|is)|bmi|body\s+mass\s+index"
)
_LAB = re.compile(
    rf"\b(?P<name>{_LAB_NAMES})\b[^0-9?.;]{{0,30}}?(?P<value>\d+(?:\.\d+)?)(?:,\d{{3}})*"
    r"(?:\s*(?:[x×*]\s*10\s*\^?\s*\d+|(?:g|mg|µmol|umol|mmol|ml|iu|u|cells)?\s*/\s*"
    r"(?:l|dl|µl|ul|mm3|min|mm\^3)\b|%|\s*g/dl|\s*g/l)(?:\s*/\s*(?:l|µl|ul))?)*",
    re.IGNORECASE,
)
_LAB_CANONICAL = {
    "plt": "platelets",
    "hb": "hemoglobin",
    "hgb": "hemoglobin",
    "haemoglobin": "hemoglobin",
    "anc": "neutrophils",
    "crcl": "creatinine clearance",
    "wbc": "white blood cells",
    "body mass index": "bmi",
}

# --- filters in the words -------------------------------------------------------------------


def _status_said(words: str) -> str:
    """A pattern for status words said of trials: before 'trials', or after 'are'/'is'."""
    trials = r"(?:trials?|stud(?:y|ies)|ones?|protocols?)"
    return (
        rf"\b(?:{words})\s+(?:(?:[\w-]+\s+){{0,3}}){trials}\b|"
        rf"\b(?:are|is|were|was|been|be|still|currently|now)\s+(?:\w+\s+)?(?:{words})\b"
        rf"(?!\s+(?:chemo|radio|treatment|therapy|hepatitis|infection|disease))|"
        rf"^\s*(?:{words})\b\s*\??\s*$"
    )


_STATUS_WORDS: tuple[tuple[re.Pattern[str], frozenset[str]], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), frozenset(codes))
    for pattern, codes in (
        (r"\bnot\s+yet\s+(?:recruiting|open)\b", {"NOT_YET_RECRUITING"}),
        (
            r"\bactive,?\s+(?:but\s+)?not\s+recruiting\b|\bno\s+longer\s+recruiting\b",
            {"ACTIVE_NOT_RECRUITING"},
        ),
        (
            r"(?<!not\s)(?<!yet\s)\b(?:recruiting|open\s+(?:to|for)\s+(?:enrol\w*|recruitment|"
            r"patients|new)|currently\s+open|open\s+(?:right\s+)?now|open\s+(?:trials|studies)|"
            r"enrolling|accruing|accepting\s+(?:new\s+)?(?:patients|"
            r"participants)|taking\s+(?:new\s+)?(?:patients|participants|people))\b",
            {"RECRUITING"},
        ),
        # A status word describes trials, not the patient: "completed trials", "which are
        # completed", never "completed chemotherapy" or "active hepatitis B".
        (_status_said(r"completed|finished|closed"), {"COMPLETED"}),
        (_status_said(r"terminated|stopped(?:\s+early)?"), {"TERMINATED"}),
        (_status_said(r"withdrawn"), {"WITHDRAWN"}),
        (_status_said(r"suspended|paused|on\s+hold"), {"SUSPENDED"}),
        (r"\bunknown\s+status\b|\bstatus\s+(?:is\s+)?unknown\b", {"UNKNOWN"}),
        (
            _status_said(r"ongoing|active|running|underway"),
            {
                "RECRUITING",
                "ACTIVE_NOT_RECRUITING",
                "NOT_YET_RECRUITING",
                "ENROLLING_BY_INVITATION",
            },
        ),
        (r"\benrolling\s+by\s+invitation\b", {"ENROLLING_BY_INVITATION"}),
    )
)
_PHASE_WORDS = re.compile(
    r"\b(?:early\s+)?phase[\s-]*(?:[1-4]|iv|iii|ii|i|one|two|three|four)\b(?:\s*(?:/|-|and|or)\s*"
    r"(?:phase[\s-]*)?(?:[1-4]|iv|iii|ii|i|one|two|three|four)\b)?",
    re.IGNORECASE,
)
_PHASE_NUMBERS = {"one": "1", "two": "2", "three": "3", "four": "4"}
_TYPE_WORDS = re.compile(r"\b(interventional|observational|expanded\s+access)\b", re.IGNORECASE)
_DESIGN_WORDS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p, re.IGNORECASE), name)
    for p, name in (
        (r"\bnon-?\s?randomi[sz]ed\b", "non-randomized"),
        (r"(?<!non-)(?<!non)\brandomi[sz]ed\b", "randomized"),
        (
            r"\bsingle[- ]?arm\b|\bsingle[- ]group\b|\buncontrolled\b|\b(?:just\s+|only\s+)?"
            r"(?:one|1|a\s+single)\s+(?:treatment\s+)?(?:arm|group)\b",
            "single-arm",
        ),
        (
            r"\bopen[- ]label\b|\bun-?blinded\b|\bun-?masked\b|\bnot\s+(?:blinded|masked)\b|"
            r"\bno\s+(?:blinding|masking)\b|\bdo(?:n't|\s+not)\s+blind\b",
            "open-label",
        ),
        (r"\brandom(?:ly)?\s+(?:assign|allocat|split|divid)\w*", "randomized"),
        (r"\bdouble[- ]blind\w*|\bdouble[- ]mask\w*|\bplacebo[- ]controlled\b", "double-blind"),
        (r"(?<!double[- ])(?<!open[- ])\bblinded\b|\bmasked\b", "blinded"),
        (r"\bcross-?over\b", "crossover"),
        (r"\bretrospective\b", "retrospective"),
        (r"\bprospective\b", "prospective"),
    )
)
_DEMONYMS = {
    "chinese": "china",
    "american": "united states",
    "us": "united states",
    "usa": "united states",
    "u.s.": "united states",
    "uk": "united kingdom",
    "british": "united kingdom",
    "french": "france",
    "german": "germany",
    "japanese": "japan",
    "korean": "korea",
    "canadian": "canada",
    "italian": "italy",
    "spanish": "spain",
    "australian": "australia",
    "brazilian": "brazil",
    "indian": "india",
    "dutch": "netherlands",
}
_SPONSOR_PREDICATE = re.compile(
    r"\b(?:sponsor\w*|run\s+by|funded\s+by|paid\s+for\s+by|backed\s+by|financed\s+by|from|"
    r"by|led\s+by|organi[sz]ed\s+by|conducted\s+by)\b",
    re.IGNORECASE,
)
_INTERVENTION_PREDICATE = re.compile(
    r"\b(?:test\w*|giv\w*|gives|us(?:e|es|ing)|evaluat\w*|administer\w*|combin\w*|receiv\w*|"
    r"drugs?|treat(?:ed|ment)\s+with|with\s+(?:the\s+)?drug)\b",
    re.IGNORECASE,
)
# Words of listing questions that frame rather than say what trials are about.
_LIST_FRAME = FRAME | frozenset(
    """study studies studying test tests testing tested give gives giving given use uses using
    used evaluate evaluates evaluating investigate investigates investigating involve involves
    involving treat treats treating look looking run running ran sponsored sponsor sponsors
    sponsoring funded funding fund led lead conducted conduct organised organized backed paid
    financed recruiting recruit open enrolling accepting currently now moment today ongoing
    active completed finished terminated withdrawn suspended unknown phase early
    interventional observational randomised randomized randomized non-randomized single-arm
    open-label double-blind blinded masked placebo-controlled crossover retrospective
    prospective registered listed available corpus collection database here whose lead
    organisation organization company there exist exists anything something show find name
    search look see kind type sort category one two three four five six seven eight nine ten
    actively really still right presently moment shows show showing appear appears appearing
    part parts mention mentions mentioned involve include includes including included
    rather instead explicitly described labelled
    labeled called marked stated focus focusing focused focuses concern concerning concerned
    aimed aim dedicated specifically connected associated linked related involved group
    groups arm arms single label controlled blind masking design designed set""".split()
)


def understand(
    text: str,
    vocabulary: Vocabulary,
    *,
    trial: str | None = None,
    previous: Question | None = None,
) -> Question:
    """The typed question; `trial` is the trial under discussion, `previous` the last
    question of the conversation (a bare "and the Fudan one?" asks it again)."""
    clean = _SHORTHAND.sub(lambda m: _SHORTHANDS[m.group().casefold()], " ".join(text.split()))
    named, candidates, unknown, masked = _names(clean, vocabulary)
    named = list(dict.fromkeys(named))
    # Words that describe the trial named ("the camrelizumab study that adds radiation") say
    # which trial, not what is asked of it.
    patient, rest = _patient(_DESCRIBES_TRIAL.sub(" ", masked) if named else masked)
    corpus = (
        bool(_CORPUS.search(masked))
        and len(named) <= 1
        and not (named and not re.search(r"\b(?:trials|studies|ones)\b", masked, re.IGNORECASE))
    )
    if not (corpus or named or candidates or unknown):
        implicit, several = _implicit_names(rest, vocabulary)
        # In a conversation only a word that names one trial outright leaves the trial under
        # discussion ("who sponsors camrelizumab?"); "had anlotinib before?" stays with it.
        if trial is None or (implicit and not _ANAPHOR.search(masked)):
            named, candidates = implicit, several
    if (
        not (corpus or named or candidates or unknown)
        and trial is None
        and (patient.age is not None or patient.ecog is not None)
        and _ELIGIBILITY.search(masked)
    ):
        corpus = True  # "can an 81-year-old man with ECOG 0 join?": every trial, for him
    kind: Kind
    if corpus and not named:
        question = _corpus_question(clean, masked, rest, patient, vocabulary)
    else:
        question = _trial_question(clean, masked, rest, patient, named)
    kind = question.kind
    from_conversation = False
    if kind in SINGLE_KINDS and not named and not candidates and not unknown and trial:
        # Named by nothing but the conversation: the trial under discussion.
        named, from_conversation = [trial], True
    if (
        previous is not None
        and not question.fields
        and not question.eligibility
        and re.match(r"^\s*(?:and|what\s+about|how\s+about|same\s+for|also)\b", clean, re.I)
        and (named or candidates)
    ):
        # "and the Fudan one?": the previous question again, about the trial now named.
        question = replace(previous, text=clean, trials=(), candidates=(), unknown=None)
        kind = "compare" if len(named) > 1 else previous.kind
    if kind in SINGLE_KINDS | {"compare"} and not named and not candidates and not unknown:
        if kind != "criterion" and not vocabulary.trials:
            kind = "out_of_scope"
        elif kind == "criterion" and not _names_anything(rest, vocabulary) and not patient.age:
            kind = "out_of_scope"
    if kind == "compare" and len(named) < 2 and not candidates:
        kind = "yes_no" if _YES_NO.match(clean) else ("field" if question.fields else "criterion")
    return replace(
        question,
        kind=kind,
        trials=tuple(dict.fromkeys(named)),
        candidates=tuple(candidates),
        unknown=unknown,
        from_conversation=from_conversation,
    )


# Shorthand people type for the words the grammar reads ("can pts w/ brain mets join?").
_SHORTHANDS = {
    "pt": "patient",
    "pts": "patients",
    "ppl": "people",
    "w/": "with",
    "w/o": "without",
}
# "pt" and "Pt" only: "PT" is the prothrombin time.
_SHORTHAND = re.compile(r"\b(?:(?-i:[Pp]ts?)|pts|ppl)\b|(?<!\S)w/o?(?=\s)", re.IGNORECASE)


def _names_anything(text: str, vocabulary: Vocabulary) -> bool:
    """Does the text hold any word the index knows (as a naming word) or a medical topic?"""
    words = set(tokenize(text)) - FRAME
    return any(vocabulary.known(w) or vocabulary.correct(w) for w in words) or bool(
        bool(expansion_terms(text))
    )


# --- names ----------------------------------------------------------------------------------


def _names(text: str, vocabulary: Vocabulary) -> tuple[list[str], list[str], str | None, str]:
    """Trials the question names outright - by id, quoted or whole title, or a naming phrase
    ("the APEC study", "the study with apatinib", "Fudan local therapy trial - ...", "join
    camrelizumab + RT") - as (trials named, candidates when a name fits several, a name that
    fits none, the text with every name replaced by a placeholder)."""
    named: list[str] = []
    candidates: list[str] = []
    unknown: str | None = None
    spans: list[tuple[int, int]] = []
    for found in _ID.finditer(text):
        key = found.group(1).replace(" ", "")
        trial = _find_id(vocabulary, key)
        if trial is None:
            unknown = unknown or key.upper()
        else:
            named.append(trial)
        spans.append(found.span())
    for found in _QUOTED.finditer(text):
        by_title = vocabulary.by_title(found.group(1))
        fit = by_title if by_title.trials else vocabulary.resolve(_name_words(found.group(1)))
        _take(fit, named, candidates)
        spans.append(found.span())
        if not fit.trials:
            unknown = unknown or found.group(1)
    if not spans:
        by_title = vocabulary.by_title(text)
        _take(by_title, named, candidates)
        if by_title.trials:
            return named, candidates, unknown, text
    unresolved = None
    for found in [*_NAMED.finditer(text), *_CLAUSE_NAMED.finditer(text)]:
        if any(s <= found.start() < e or found.start() <= s < found.end() for s, e in spans):
            continue
        resolved = _phrase_names(found, text, vocabulary)
        if resolved is None:
            continue
        fits, span = resolved
        for fit in fits:
            _take(fit, named, candidates)
        if fits:
            spans.append(span)
        elif unresolved is None:
            unresolved = (found.group(0).strip(), span)
    if not named and not candidates:
        joined = _JOIN.search(text)
        if joined:
            fit = vocabulary.resolve(_name_words(joined.group("name")))
            if fit.trials:
                _take(fit, named, candidates)
                spans.append(joined.span("name"))
    if candidates and not named:
        # A name that fits several, and another naming word that picks one of them ("the
        # apatinib dose in the Shanghai Chest Hospital trial"): that one.
        whole = vocabulary.resolve(_name_words(text))
        if len(whole.trials) == 1 and whole.trials[0] in candidates:
            named, candidates = [whole.trials[0]], []
    if not named and not candidates and unresolved is not None:
        # A naming phrase that fits no trial: the whole question may still name one ("the
        # retrospective study that Jun Liu is responsible for"); else it names none.
        fit = vocabulary.resolve(_name_words(text))
        if len(fit.trials) == 1 and fit.score >= 1.0:
            named.append(fit.trials[0])
        else:
            unknown = unknown or unresolved[0]
        spans.append(unresolved[1])
    return named, candidates, unknown, _mask(text, spans)


def _phrase_names(
    found: re.Match[str], text: str, vocabulary: Vocabulary
) -> tuple[list[Resolution], tuple[int, int]] | None:
    """The trials a naming phrase fits (two for "the Fudan and camrelizumab trials" in a
    comparison), and the span it covers: its words before the noun, and after it as long as
    they name the trial. None when the phrase holds no naming word at all."""
    name, tail = found.group("name") or "", found.group("tail") or ""
    start = found.start()
    several = re.search(r"\s(?:and|vs\.?|versus|or|&)\s", name)
    if _PLURAL_NOUN.search(found.group(0)) and not several:
        return None  # "the phase II trials", "the recruiting studies": a group, not a name
    prefix = re.match(r"^(.*\b(?:for|of|in|on|from|at)\s+)(?=\S)", name, re.IGNORECASE)
    if (
        prefix
        and _fields(prefix.group(1))
        and not vocabulary.resolve(_name_words(prefix.group(1))).trials
    ):
        # "the collaborator list for | Zhejiang Cancer Hospital's camrelizumab study": the
        # words before the preposition ask, the rest names.
        name = name[prefix.end() :]
        start = found.start("name") + prefix.end()
    if not _name_words(name) and not _name_words(tail):
        return None
    fits = [vocabulary.resolve(_name_words(part)) for part in _split_names(name, text)]
    fits = [fit for fit in fits if fit.trials]
    noun_end = found.end()
    weak = len(fits) == 1 and len(fits[0].trials) == 1 and fits[0].score < WEAK_NAME
    if tail and (not fits or (len(fits) == 1 and len(fits[0].trials) > 1) or weak):
        # "the oligometastatic trial | sponsored by Fudan": the tail may settle the name, but
        # only on a trial the name's own words fit too, never on one named by the tail alone;
        # unless the name is only common words ("the skin biopsy study | of fibrillin-1 in
        # systemic sclerosis"), which say less than the tail.
        fitting = vocabulary.scores(_name_words(name))
        whole = vocabulary.resolve(_name_words(name + " " + tail))
        if fitting and not weak:
            among = tuple(t for t in whole.trials if t in fitting)
            whole = Resolution(among, whole.score if among else 0.0)
        if whole.trials and (not fits or len(whole.trials) < len(fits[0].trials) or weak):
            fits = [whole]
    if not fits:
        if not _meaningful(name + " " + tail):
            return None
        return [], (start, found.end() + len(tail))
    # Extend over the tail's words while they name the trial ("... study on local therapy for
    # oligorecurrent ESCC | recruiting?").
    names = set().union(*(vocabulary.names(t) for f in fits for t in f.trials))
    stop = noun_end
    for word in re.finditer(r"[\w+/&'-]+", tail):
        if word.group().casefold() in _CONNECTORS:
            continue
        tokens = _name_words(word.group())
        if tokens and set(tokens) <= GENERIC:
            continue  # "the trial of local | treatment | for oligometastatic ...": generic
        if not tokens or not set(tokens) <= names:
            role = _ROLE.match(tail, word.start())
            if role and stop > noun_end:  # "... with Jun Liu | as principal investigator"
                stop = noun_end + role.end()
            break
        stop = noun_end + word.end()
    return fits, (start, stop)


# The role a name in a naming phrase has ("the trial that has Jianwei Zhou | as central
# contact"): part of the name, not a field asked.
_ROLE = re.compile(
    r"(?:(?:is|are|was|as|serves\s+as|acts\s+as)\s+)(?:the\s+|its\s+|a\s+|an\s+)?(?:central\s+|"
    r"main\s+|principal\s+|lead\s+|overall\s+|study\s+|trial\s+)*(?:contacts?|investigators?|"
    r"PI|sponsors?|collaborators?|funders?|sites?|chairs?|directors?|officials?)\b",
    re.IGNORECASE,
)


# Words that join a trial's name to the noun ("the study | combining anlotinib with ...").
_CONNECTORS = frozenset(
    """on of for with in plus and or without versus vs + ± and/or testing using about where whose
    that which led run sponsored by from at comparing combining involving has have had lists
    names pairs pairing combines tests gives giving uses evaluates""".split()
)


def _implicit_names(text: str, vocabulary: Vocabulary) -> tuple[list[str], list[str]]:
    """With no naming phrase: the rare words of the question that name trials ("who sponsors
    camrelizumab?"), one trial or a few that fit equally."""
    fit = vocabulary.resolve(_name_words(text))
    if len(fit.trials) == 1 and fit.score >= 1.0:
        return list(fit.trials), []
    if 1 < len(fit.trials) <= MAX_CANDIDATES and fit.score >= 1.0 / MAX_CANDIDATES:
        return [], list(fit.trials)
    return [], []


def _find_id(vocabulary: Vocabulary, typed: str) -> str | None:
    key = trial_key(typed)
    return key if key in vocabulary.trials else vocabulary.aliases.get(key)


def _name_words(name: str) -> list[str]:
    """The words of a name as matched against trial names (spellings folded)."""
    return [
        SPELLINGS.get(w, w)
        for w in tokenize(name)
        if w not in FRAME and (not w.isdigit() or len(w) > 3)
    ]


def _meaningful(name: str) -> bool:
    """Is this a name someone gave (a word no field, topic or frame explains)?"""
    words = [w for w in _name_words(name) if not w.isdigit()]
    generic = {
        "clinical", "research", "same", "other", "first", "second", "new", "big", "small",
        "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "both", "these",
        "those", "all", "remaining", "last", "previous", "main", "various",
    }  # fmt: skip
    return any(w not in generic and not _FIELD_OR_TOPIC.search(w) for w in words)


_FIELD_OR_TOPIC = re.compile(
    r"^(?:phase|recruit\w*|randomi[sz]ed|observational|interventional|retrospective|"
    r"prospective|open|label|blind\w*|single|arm|multicent\w*|multi|center|centre|pilot|"
    r"cancer|tumou?r|disease|drug|treatment|therapy)$",
    re.IGNORECASE,
)


def _split_names(name: str, text: str) -> list[str]:
    """'Fudan and camrelizumab' -> two names when the question compares trials."""
    if _COMPARE.search(text) and re.search(r"\s(?:and|vs\.?|versus|or|&)\s", name, re.I):
        return [p for p in re.split(r"\s(?:and|vs\.?|versus|or|&)\s", name, flags=re.I) if p]
    return [name]


def _take(fit: Resolution, named: list[str], candidates: list[str]) -> None:
    if len(fit.trials) == 1:
        named.append(fit.trials[0])
    elif fit.trials:
        candidates.extend(t for t in fit.trials if t not in candidates)


def _mask(text: str, spans: list[tuple[int, int]]) -> str:
    out, last = [], 0
    for start, end in sorted(spans):
        if start < last:
            continue
        out.append(text[last:start])
        out.append(" <trial> ")
        last = end
    out.append(text[last:])
    return " ".join("".join(out).split())


# --- patient facts --------------------------------------------------------------------------


def _patient(text: str) -> tuple[Patient, str]:
    """The patient's facts, and the text with them taken out."""
    spans: list[tuple[int, int]] = []
    age = None
    bound = _AGE_BOUND.search(text)  # first: "people over 75 years old" is no 75-year-old
    found = None if bound else _AGE.search(text)
    if bound and 0 < int(bound.group("n")) <= 120:
        below = bound.group("dir").lower() in ("under", "below") or "younger" in bound.group("dir")
        age = float(int(bound.group("n")) + (-1 if below else 1))
        spans.append(bound.span())
    if found:
        digits = next(g for g in found.groups() if g)
        value = float(digits) * (10 if found.group("e") else 1) + (5 if found.group("e") else 0)
        if 0 < value <= 120:
            age = value
            tail = _AGE_TAIL.match(text, found.end())
            spans.append((found.start(), tail.end() if tail else found.end()))
    sex = None
    female, male = _FEMALE.search(text), _MALE.search(text)
    short = _AGE_SEX.search(text)  # "62F", "45 M": a clinician's age and sex
    if short and age is None:
        age = float(short.group("age"))
        spans.append(short.span())
    if short:
        female, male = (short, None) if short.group("sex") == "F" else (None, short)
    if female and not male:
        sex = "FEMALE"
        spans.append(female.span())
    elif male and not female:
        sex = "MALE"
        spans.append(male.span())
    ecog = None
    found = _ECOG.search(text)
    if found and re.search(r"ecog|performance|\bps\b|zubrod", found.group(), re.IGNORECASE):
        ecog = int(found.group("n"))
        spans.append(found.span())
    labs = []
    for found in _LAB.finditer(text):
        name = re.sub(r"\s+(?:count|of|is)$", "", found.group("name").casefold())
        name = _LAB_CANONICAL.get(name, name)
        name = "platelets" if name.startswith("platelet") else name
        labs.append(Lab(name, float(found.group("value"))))
        spans.append(found.span())
    rest = _mask(text, spans).replace("<trial>", " ")
    return Patient(age=age, sex=sex, ecog=ecog, labs=tuple(labs)), " ".join(rest.split())


# --- questions over the corpus --------------------------------------------------------------


def _corpus_question(
    text: str, masked: str, rest: str, patient: Patient, vocabulary: Vocabulary
) -> Question:
    kind: Kind
    if _COUNT.search(masked):
        kind = "count"
    elif _EXISTS.search(masked):
        kind = "exists"
    else:
        kind = "list"
    filters, unfiltered = _word_filters(rest, vocabulary)
    eligible = bool(_ELIGIBILITY.search(_FOR_PATIENTS.sub(" ", unfiltered))) or not patient.empty
    fields = _fields(unfiltered)
    if eligible:
        topic, conditions = _topic(_without_labs(unfiltered, patient))
        if not topic and patient.empty and "healthy_volunteers" not in fields:
            eligible = False  # "which of these qualify?" with no trait: a listing
    if eligible:
        if "healthy_volunteers" in fields:
            topic, conditions = "", ()
        patient = replace(patient, conditions=conditions)
        kind = "scan" if kind == "list" else kind
        return Question(
            text,
            kind,
            stance=_stance(unfiltered),
            fields=tuple(f for f in fields if f in ("healthy_volunteers",)),
            topic=topic,
            patient=patient,
            filters=filters,
        )
    filters = _about_filters(unfiltered, filters, vocabulary)
    about = filters.about
    if (
        about
        and not fields
        and _CRITERIA_PREDICATE.search(unfiltered)
        and not any(filters.about_fits(t) for t in vocabulary.trials.values())
    ):
        # No trial's values or titles hold the words ("which trials spell out a minimum life
        # expectancy of 12 weeks?"): what the criteria say decides, trial by trial.
        topic, _ = _topic(about)
        if topic:
            return Question(
                text,
                "scan" if kind == "list" else kind,
                stance=_stance(unfiltered),
                topic=topic,
                patient=patient,
                filters=replace(filters, about=None),
            )
    return Question(text, kind, fields=(), filters=filters, patient=patient)


# Verbs that ask what trials' criteria say, not what the trials study ("which trials mention
# tuberculosis?" against "which trials study metformin?").
_CRITERIA_PREDICATE = re.compile(
    r"\b(?:mention\w*|say|says|said|state|states|stated|spell\w*|specif\w*|set|sets|ask\w*\s+for|"
    r"demand\w*|insist\w*|criteri\w*|requir\w*|need\w*|exclu\w*|inclu\w*)\b",
    re.IGNORECASE,
)
_EXCLUDES = re.compile(
    r"\b(?:exclu\w*|bar\w*|ban\w*|rule\w*\s+(?:\w+\s+)?out|disqualif\w*|prohibit\w*|say\s+no|turn\w*\s+"
    r"away|reject\w*|refus\w*|keep\w*\s+(?:\w+\s+)?(?:out|away))|(?:not|n't|never)\s+(?:accept|allow|take|"
    r"let|admit|permit|welcome)|\btoo\s+(?:old|young|sick|ill|frail|weak|big|large|many|much|high|"
    r"low|advanced|late)\b|\b(?:a|an|any)\s+(?:problem|issue|obstacle|barrier|deal-?breaker|"
    r"exclusion)\b|\b(?:stop|keep|prevent|bar)\w*\s+(?:\w+\s+)?from\b",
    re.IGNORECASE,
)
_ALLOWS_FIRST = re.compile(
    r"\b(?:join|take\s+part|participate|enrol+|enter|qualify|be\s+(?:accepted|allowed|eligible|"
    r"included)|sign\s+up|get\s+in)\b",
    re.IGNORECASE,
)
_REQUIRES = re.compile(r"\b(?:requir\w*|need\w*|must|mandatory|necessary)\b", re.IGNORECASE)


def _stance(text: str) -> Stance:
    excluded = _EXCLUDES.search(text)
    if excluded and not _ALLOWS_FIRST.search(text[: excluded.start()]):
        return "excludes"  # "could he take part, or is he too old?" asks whether he may join
    if _REQUIRES.search(text):
        return "requires"
    return "allows"


# "trials for patients with influenza" names a condition, not whom a trial takes.
_FOR_PATIENTS = re.compile(
    r"\b(?:for|in|of|on|among|about)\s+(?:patients|people|adults|children|participants|"
    r"subjects|those|individuals|women|men)\s+(?:with|who\s+have|suffering\s+from|"
    r"diagnosed\s+with)\b",
    re.IGNORECASE,
)


def _word_filters(text: str, vocabulary: Vocabulary) -> tuple[Filters, str]:
    """The structured filters the words state, and the text without them."""
    values: dict[str, Any] = {}
    spans: list[tuple[int, int]] = []
    for pattern, codes in _STATUS_WORDS:
        found = pattern.search(text)
        if found and not any(s <= found.start() < e for s, e in spans):
            values["status"] = values.get("status", frozenset()) | codes
            spans.append(found.span())
    phases = set()
    for found in _PHASE_WORDS.finditer(text):
        words = re.sub(
            r"\b(one|two|three|four)\b",
            lambda m: _PHASE_NUMBERS[m[1].lower()],
            found.group(),
            flags=re.I,
        )
        phase = normalize.phase(words.replace("-", " "))
        if phase:
            phases.update(phase.split("/"))
            spans.append(found.span())
    if phases:
        values["phase"] = frozenset(phases)
    found = _TYPE_WORDS.search(text)
    if found:
        study_type = normalize.study_type(found.group(1))
        if study_type:
            values["study_type"] = frozenset({study_type})
            spans.append(found.span())
    designs = set()
    for pattern, name in _DESIGN_WORDS:
        found = pattern.search(text)
        if found and not any(s <= found.start() < e for s, e in spans):
            designs.add(name)
            spans.append(found.span())
    if designs:
        values["design"] = frozenset(d for d in designs if d in DESIGNS)
    country = _country(text, vocabulary)
    if country:
        values["country"], span = country
        spans.append(span)
    rest = _mask(text, spans).replace("<trial>", " ")
    return Filters(**values), " ".join(rest.split())


_PLACE = re.compile(r"\b(?:in|from|at)\s+(?:the\s+)?([A-Z][\w.]*(?:[\s,]+[A-Z][\w.]*){0,3})")


def _country(text: str, vocabulary: Vocabulary) -> tuple[str, tuple[int, int]] | None:
    """A place the trials are to be in: a country the index knows, or any place named after
    "in"/"at" ("at hospitals in São Paulo"), matched against countries and sites."""
    for found in _PLACE.finditer(text):
        name = found.group(1).casefold()
        name = _DEMONYMS.get(name, name)
        if name in vocabulary.countries or re.search(
            r"\b(?:hospitals?|sites?|centres?|centers?|clinics?|cities|city|country|countries|"
            r"located|based|run|held)\s+(?:in|at)\s+$",
            text[: found.start(1)],
            re.IGNORECASE,
        ):
            return name, found.span()
    for found in re.finditer(r"\b(\w+)\s+(?:trials|studies)\b", text, re.IGNORECASE):
        name = _DEMONYMS.get(found.group(1).casefold())
        if name and name in vocabulary.countries:
            return name, found.span(1)
    return None


def _about_filters(text: str, filters: Filters, vocabulary: Vocabulary) -> Filters:
    """What a listing question says trials are about: sponsor, an organisation, intervention
    or condition, decided by its verb and by which of the index's values hold its words; a
    word that only frames ("disease", "patients") is dropped when the words fit nothing."""
    words = [
        w
        for w in tokenize(text)
        if (w not in _LIST_FRAME and not w.isdigit() and w != "s") or _is_code(w)
    ]
    if len(_roles(text)) > 1:
        # "linked to X, as sponsor or through its investigators": X in any role it has.
        words = [w for w in words if w not in _ROLE_WORDS]
    if not words:
        return filters
    known = [w for w in words if w not in _GENERIC_ABOUT and vocabulary.known_value(w)]
    # The words as asked; without words that only frame ("disease"); then only the words some
    # trial's values hold ("anlotinib | shows up in how many?").
    for attempt in (words, [w for w in words if w not in _GENERIC_ABOUT], known):
        found = _about(text, attempt, filters, vocabulary) if attempt else None
        if found is not None:
            return found
    if filters.active and not known:
        # "which of these are actively enrolling?": the filters say it; no trial's values
        # hold the other words, so they name nothing to filter on.
        return filters
    return replace(filters, about=_phrase(text, words))


# Words a listing may add that no field value needs to hold ("trials for X disease").
_GENERIC_ABOUT = frozenset(
    """disease diseases condition conditions illness disorder disorders patients people
    participants cancer cancers treatment treatments therapy therapies drug drugs""".split()
)
_ROLE_KIND = re.compile(
    r"\b(?:(?P<sponsor>sponsor\w*|fund\w*)|(?P<investigator>investigators?|PI|doctors?|"
    r"physicians?)|(?P<collaborator>collaborat\w*|partner\w*)|(?P<site>sites?))\b",
    re.IGNORECASE,
)
_ROLE_WORDS = frozenset(
    """sponsor sponsors sponsored sponsoring funder funders funded funding investigator
    investigators principal pi doctor doctors physician physicians collaborator collaborators
    collaborating partner partners site sites either through via its their""".split()
)


def _roles(text: str) -> set[str]:
    """The roles an organisation is said to have ("as sponsor or through the PI")."""
    return {found.lastgroup or "" for found in _ROLE_KIND.finditer(text)}


_ORGANISATION_PREDICATE = re.compile(
    r"\b(?:connect\w*|affiliat\w*|associat\w*|link\w*|tied|ties|involv\w*|at|partner\w*|"
    r"collaborat\w*|participat\w*|relat\w*)\b",
    re.IGNORECASE,
)


def _about(text: str, words: list[str], filters: Filters, vocabulary: Vocabulary) -> Filters | None:
    phrase = _phrase(text, words)
    wanted = terms(" ".join(words))

    def fits(kind: str) -> bool:
        return any(wanted <= value for value in vocabulary.field_values[kind])

    def kept(kind: str) -> Filters:
        # The user's exact term when some trial's value is that term, else the phrase, else
        # its words: "Sanofi" is the sponsor Sanofi, not every "... a Sanofi Company".
        match = vocabulary.match(kind, phrase)
        return replace(filters, **{kind: phrase}, match=match)  # type: ignore[arg-type]

    if fits("organisation") and (
        _roles(text) - {"sponsor"}
        or (
            _ORGANISATION_PREDICATE.search(text)
            and not re.search(r"sponsor|fund|pa(?:y|id)|financ", text, re.IGNORECASE)
        )
    ):
        return kept("organisation")
    if _SPONSOR_PREDICATE.search(text) and (fits("sponsor") or re.search(r"sponsor", text, re.I)):
        return kept("sponsor")
    treating = bool(_INTERVENTION_PREDICATE.search(text))
    for_patients = bool(_FOR_PATIENTS.search(text))
    if fits("intervention") and fits("condition") and not treating and not for_patients:
        # "trials of physical activity": what they are about, as condition or treatment.
        return replace(filters, about=phrase, match=vocabulary.match("about", phrase))
    order = ["condition", "intervention"] if for_patients or not treating else ["intervention"]
    for kind in [*order, "condition", "intervention"]:
        if fits(kind):
            return kept(kind)
    for kind in ("sponsor", "organisation"):
        if fits(kind):
            return kept(kind)
    return None


# The Filters keys a listing's words may fill.
_LISTING_KEYS = ("sponsor", "organisation", "condition", "intervention")


def _is_code(word: str) -> bool:
    return bool(re.fullmatch(r"[a-z]+-?\d+[a-z0-9]*", word))


def _phrase(text: str, words: list[str]) -> str:
    """The stretch of the text from the first to the last of the words, as written."""
    low = text.casefold()
    found = [m for w in words if (m := re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", low))]
    starts, ends = [m.start() for m in found], [m.end() for m in found]
    if not starts or not ends:
        return " ".join(words)
    return text[min(starts) : max(ends)].strip(" ,;:")


# --- questions about named trials -----------------------------------------------------------


_DESCRIBES_TRIAL = re.compile(
    r"(?i)(?:<trial>|\b(?:study|trial|protocol))\s+(?:that|which|where|using|testing|comparing|"
    r"combining|adding|giving)\b(?:(?!\s[-–—]\s)[^?.!;(),:])*"
)
# An asking sentence about what the sentences before it said: its topic is theirs.
_POINTS_BACK = re.compile(
    r"(?i)^\W*(?:so\s+|and\s+|but\s+)?(?:does|do|will|would|is|could|can|might|should)\s+"
    r"(?:that|this|it|these|those|any\s+of\s+(?:that|this))\s+(?:disqualif\w*|rule\w*|stop\w*|"
    r"keep\w*|prevent\w*|exclud\w*|count\w*|matter\w*|affect\w*|mean\w*|make\w*|bar\w*|"
    r"allow\w*|let\w*|chang\w*|an?|problem|issue|ok|okay|fine|be)\b"
)


def _trial_question(
    text: str, masked: str, rest: str, patient: Patient, named: list[str]
) -> Question:
    # The asking sentence says what is asked; sentences before it give context ("My dad's
    # doctor mentioned the X study. Is it randomised?").
    asked_part = _last_sentence(rest)
    asking_sentences = [s for s in re.split(r"(?<=[.!?])\s+", rest) if s.rstrip().endswith("?")]
    asked_fields = _fields(" ".join([*asking_sentences, asked_part]))
    fields = asked_fields or ([] if asking_sentences else _fields(rest))
    # Words that ask for a field ("youngest", "start") are not an eligibility topic.
    plain = _without_fields(rest) if fields else rest
    topic, conditions = _topic(_without_labs(plain, patient))
    asking = _topic(_without_labs(_last_sentence(plain), patient))
    facts = replace(patient, sex=None) != Patient()  # a sex alone ("my mum") is no trait
    eligible = bool(_ELIGIBILITY.search(_without_status(asked_part))) or facts
    asking_clause = re.split(r"[,:;]\s+|\s[-–—]\s", asked_part)[-1]
    wh = _WH.match(text) or (asked_fields and _WH.match(asking_clause))
    if fields and not facts and (wh or not topic):
        eligible = False  # "which sexes can take part?", "can patients sign up yet?": a field
    asks_yes_no = _asks_yes_no(text, rest)
    there = re.match(r"^\s*(?:is|are)\s+there\b", _last_sentence(text), re.I)
    has_criterion = _HAS_CRITERION.search(_last_sentence(rest))  # asked, not in the context
    kind: Kind
    if len(named) > 1:
        kind = "compare"
    elif there or (asks_yes_no and has_criterion and not facts):
        # "Is there a BMI cut-off?": a criterion; "is there a minimum age?": a field.
        kind = "criterion" if not fields or has_criterion else "field"
    elif asks_yes_no:
        kind = "yes_no"
    elif fields and not eligible:
        kind = "field"
    else:
        kind = "criterion"
    if kind == "yes_no" and fields and not eligible and _ALTERNATIVES.search(text):
        kind = "field"  # "does it enrol men, women, or both?" asks for the value
    if kind in ("yes_no", "compare") and eligible:
        fields = [f for f in fields if f in ("sex", "healthy_volunteers", "ages")]
    if kind == "criterion" or eligible:
        several = len(re.split(r"(?<=[.!?])\s+", plain.strip())) > 1
        points_back = _POINTS_BACK.match(_last_sentence(plain))  # "Does that rule me out?"
        if (
            asking[0]
            and not points_back
            and (kind == "criterion" or (kind == "yes_no" and several))
        ):
            # "My dad is thin. Is there a BMI cut-off in X?", "She has had diabetes since a
            # child. Will her diabetes stop her from getting in?": the asking sentence says.
            topic, conditions = asking
        if kind == "field" or (kind in ("yes_no", "compare") and fields and not conditions):
            topic, conditions = "", ()
        return Question(
            text,
            kind,
            fields=tuple(fields) if kind != "criterion" else (),
            topic=topic,
            patient=replace(patient, conditions=conditions),
            # "Is he too old for it?", "would hepatitis B rule me out?": yes means excluded.
            stance=_stance(asked_part) if kind == "yes_no" else "allows",
        )
    filters = Filters()
    value = ""
    if kind == "yes_no":
        filters, unfiltered = _word_filters(rest, Vocabulary({}))
        value = _topic_words(_without_fields(unfiltered))
    # A field question: a patient's sex alone ("my mum") asks nothing of the criteria.
    return Question(text, kind, fields=tuple(fields), filters=filters, value=value)


# "Does it have a BMI limit?", "does it say anything about tattoos?": is there a criterion.
_HAS_CRITERION = re.compile(
    r"\b(?:have|has|had|mention\w*|say|says|specify|specifies|set|sets|list|lists|include|"
    r"includes|impose\w*)\s+(?:a|an|any|anything|something|some)?\s*(?:\w+\s+){0,3}?"
    r"(?:limits?|cut-?offs?|thresholds?|requirements?|criteri\w+|restrictions?|rules?|"
    r"polic(?:y|ies)|about|on|regarding|concerning)\b",
    re.IGNORECASE,
)


def _asks_yes_no(text: str, rest: str) -> bool:
    """Does a sentence or clause of the question ask yes or no ("Patient has a BMI of 17 -
    can they join?", "If I had X, could I join?")?"""
    if _WH.match(text):
        return False
    asking = _last_sentence(text)
    if _YES_NO.match(asking) or _CLAUSE_YES_NO.search(asking) or _OR_NOT.search(text):
        return True
    # "apatinib study - only one arm?", "X: interventional study?", "X - healthy volunteers
    # ok?": a bare value to check, asked with a question mark (the trial's name left out).
    clause = re.split(r"\s[-–—:]\s|:\s", _last_sentence(rest))[-1]
    if not clause.rstrip().endswith("?") or _ASKS_VALUE.search(text):
        return False
    return any(p.search(clause) for p, _ in _DESIGN_WORDS) or bool(_BARE_VALUE.search(clause))


# Words that ask for a value, not for yes or no ("which phase", "the max bilirubin allowed?").
_ASKS_VALUE = re.compile(
    r"\b(?:what|which|who|whom|whose|when|where|how|max|maximum|min|minimum|limit|cut-?off|"
    r"threshold|level|lowest|highest)\b",
    re.IGNORECASE,
)
_BARE_VALUE = re.compile(
    r"\b(?:interventional|observational|recruiting|enrolling|open|closed|accepted|ok|okay|allowed|"
    r"excluded|ruled\s+out|"
    r"yet|still|randomi[sz]ed|blinded|phase\s*\w+|(?:eligible|qualif\w*)(?=(?:\s+(?:by|on|for|as\s+to)\s+\w+)?\s*\?))\b",
    re.IGNORECASE,
)


_OR_NOT = re.compile(
    r"\b(?:ok|okay|allowed|fine|acceptable|possible|eligible|a\s+problem)\s+or\s+not\b|"
    r"\bor\s+not\s*\??\s*$|\b(?:yes|y)\s*(?:or|/)\s*(?:no|n)\b",
    re.IGNORECASE,
)
_CLAUSE_YES_NO = re.compile(
    r"(?:[-–,;:]|\bso)\s+(?:can|could|may|might|is|are|does|do|would|will|should)\b",
    re.IGNORECASE,
)


def _without_labs(text: str, patient: Patient) -> str:
    """The text without the words that name the patient's lab values (already facts)."""
    for lab in patient.labs:
        for word in {lab.name, lab.name.rstrip("s"), *_LAB_WORDS.get(lab.name, ())}:
            text = re.sub(
                rf"\b{re.escape(word)}\w*(?:\s+(?:count|level|value))?", " ", text, flags=re.I
            )
    return text


_LAB_WORDS = {
    "platelets": ("plt", "platelet"),
    "hemoglobin": ("hb", "hgb", "haemoglobin"),
    "neutrophils": ("anc", "neutrophil"),
}


# "men, women, or both?", "interventional or observational?": a choice of values, not yes/no
# ("... or is it not open yet?", "yes or no?" are still yes/no).
_ALTERNATIVES = re.compile(
    r"(?<!\byes\s)(?<!\bwith\s)\bor\s+(?!(?:is|are|was|does|do|did|can|could|will|would|not|no|"
    r"it|they|has|have|without)\b)"
    r"\w+",
    re.IGNORECASE,
)


def _without_status(text: str) -> str:
    """The text without its words of trial status ("still taking patients", "recruiting")."""
    for pattern, _ in _STATUS_WORDS:
        text = pattern.sub(" ", text)
    return text


def _without_fields(text: str) -> str:
    for _, pattern in _FIELD_RES:
        text = pattern.sub(" ", text)
    return text


def _last_sentence(text: str) -> str:
    """The asking sentence of "My mother is 78. Could she join ...?", or the asking clause of
    "Her white cells run low - what neutrophil count do they need?"."""
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s.strip()]
    asking = [s for s in sentences if s.rstrip().endswith("?")]
    last = (asking or sentences or [text])[-1]
    clauses = [
        c
        for c in re.split(
            r"\s[-–—]\s|;\s|,\s+(?=(?:what|which|who|how|when|where|is|are|"
            r"can|could|does|do)\b)",
            last,
        )
        if c.strip()
    ]
    if len(clauses) > 1 and (_WH.match(clauses[-1]) or _YES_NO.match(clauses[-1])):
        return clauses[-1]
    return last


def _fields(text: str) -> list[str]:
    """The Trial fields the words ask for, in the order of the card."""
    found = [name for name, pattern in _FIELD_RES if pattern.search(text)]
    if _WHEN.search(text) or re.search(r"\b(?:start|end|completion)\s+date\b", text, re.I):
        dates = []
        if _START.search(text):
            dates.append("start_date")
        if _END.search(text) or not dates:
            dates.append("completion_date")
        found = [f for f in found if f not in ("status", "enrollment")] + dates
    if "design" in found:
        found = [f for f in found if f != "design"] + [f for f in _DESIGN_FIELDS if f not in found]
    if "interventions" in found and (_TREATMENT_HISTORY.search(text) or _SCHEDULE.search(text)):
        # "off anti-tumour medication before starting", "prior therapies", "how often is it
        # given": criteria or the description, not the list of treatments.
        found = [f for f in found if f != "interventions"]
    if "allocation" in found and _BY_RANDOMISATION.search(text):
        found = [f for f in found if f != "allocation"]  # "a test within 72 h of randomisation"
    if "secondary_outcomes" in found:
        found = [f for f in found if f != "primary_outcomes"]
    if "official_title" in found:
        found = [f for f in found if f != "title"]
    if "enrollment" in found and "status" in found:
        # "enrolment status", "open for enrolment": the status; "how many will enrol": a count.
        if re.search(_STATUS_NOT_COUNT, text, re.IGNORECASE):
            found = [f for f in found if f != "enrollment"]
        elif not re.search(r"\bstatus\b", text, re.I):
            found = [f for f in found if f != "status"]
    if "ages" in found and "sex" in found and not re.search(r"\bsex|gender", text, re.I):
        found = [f for f in found if f != "sex"]
    order = list(_FIELD_ORDER)
    return sorted(dict.fromkeys(found), key=lambda f: order.index(f) if f in order else 99)


# Treatment words said of the patient's history, not of what the trial gives.
_TREATMENT_HISTORY = re.compile(
    r"\b(?:prior|previous|previously|earlier|past|last|off|stop(?:ped|ping)?|discontinu\w*|"
    r"washout|wash-out)\s+(?:\S+\s+){0,2}?(?:drugs?|medications?|medicines?|treatments?|"
    r"therap(?:y|ies)|regimens?|agents?)\b|\b(?:drugs?|medications?|medicines?|treatments?|"
    r"therap(?:y|ies)|regimens?)\s+(?:\S+\s+){0,2}?(?:before|prior\s+to)\s+(?:starting|"
    r"enrol\w*|joining|entering|randomi[sz]\w*|the\s+(?:trial|study))\b",
    re.IGNORECASE,
)


_SCHEDULE = re.compile(
    r"\bhow\s+(?:often|frequently|long|much|many\s+(?:cycles|doses|courses|times))\b|"
    r"\bdos(?:e|es|age|ing)\b|\bschedules?\b|\bfrequency\b|\bcycles?\b|\bevery\s+\d",
    re.IGNORECASE,
)
# Randomisation as a point in time ("within 72 hours before randomisation"), not the design.
_BY_RANDOMISATION = re.compile(
    r"\b(?:before|to|prior\s+to|after|of|until|from|at)\s+randomi[sz]\w*", re.IGNORECASE
)


_FIELD_ORDER = (
    "title",
    "official_title",
    "acronym",
    "status",
    "phase",
    "study_type",
    "enrollment",
    "start_date",
    "completion_date",
    "last_update",
    "ages",
    "sex",
    "healthy_volunteers",
    "sponsor",
    "collaborators",
    "investigators",
    "contacts",
    "conditions",
    "interventions",
    "arms",
    *_DESIGN_FIELDS,
    "primary_outcomes",
    "secondary_outcomes",
    "locations",
)


# Words around an eligibility topic that frame it ("which trials would accept patients with
# ... to join"), beyond the frame words of every question.
_TOPIC_FRAME = FRAME | frozenset(
    """accepting accepted accepts admit admits admitted permitted permitting exclusion
    inclusion excluding including allowing taking welcome welcomes rule ruled out bar barred
    ban banned prohibit prohibits prohibited disqualify disqualifies restrict restricts
    contraindicated whose having suffering diagnosed policy rules rule say says said mention
    mentions anything something situation case okay ok fine possible able allowed join joining
    entering enrolling enrolment participate participating part qualifies qualified sign
    apply s high low much long big enough new still central contact person responsible party
    main ago because reason due some years months weeks days meet meets satisfy satisfies
    fulfil fulfill fulfils fulfills requirement requirements criteria acceptable ok okay fine
    possible eligible please things thing already yet sign up register apply open yes today now
    tomorrow currently too old young older younger based spring summer autumn winter season
    turned turning screening screened spell spells spelled spelt out minimum maximum
    least stop stops stopped prevent prevents getting female male woman man lady gentleman
    age ages aged cutoff cutoffs limit limits given doctor doctors
    oncologist calls called fully hi hello hey thanks right""".split()
)
_TOPIC_WORD = re.compile(r"[^\W_][\w'+/.^×≥≤<>=-]*")
_PART_SPLIT = re.compile(
    r",|;|\bas\s+well\s+as\b|\band\s+(?:also\s+)?(?=(?:has|had|have|is|was|with|on|takes?|"
    r"took|previously|prior|a\s|an\s)\b)|\band\s+(?=\w+\s+\w+)|\bwho\s+(?:has|had|is|was)\b|"
    r"\bbut\b",
    re.IGNORECASE,
)


def _topic(text: str) -> tuple[str, tuple[str, ...]]:
    """The eligibility topic in the question's own words (in each sentence, from its first to
    its last word that is not framing), and the patient conditions it lists when several."""
    sentences = [_topic_words(s) for s in re.split(r"(?<=[.!?])\s+", text.strip())]
    topic = "; ".join(s for s in sentences if s)
    if not topic:
        return "", ()
    parts: list[str] = []
    for part in _PART_SPLIT.split(topic):
        p = _topic_words(part)
        if not (p and set(tokenize(p)) - GENERIC - _TOPIC_FRAME):
            continue
        if parts and _QUALIFYING.fullmatch(p):
            parts[-1] += f", {p}"  # "brain metastases, but no symptoms": how, not another trait
        else:
            parts.append(p)
    return topic, tuple(parts) if len(parts) > 1 else ()


# A part that only says how the trait before it is (its state, not another trait).
_QUALIFYING = re.compile(
    r"(?i)(?:(?:now|still|currently|fully|well|radiologically|clinically|all|at|from|it|any)\s+)*"
    r"(?:a?symptom(?:s|atic)?|stable|controlled|treated|untreated|active|inactive|resolved|"
    r"cured|in\s+remission)(?:\s+(?:from\s+it|at\s+all|now))*"
)


_NUMBERED_TYPE = re.compile(r"type\s*(?:[0-9]|i{1,3}|iv)\b", re.IGNORECASE)  # "type 1 diabetes"


def _topic_words(text: str) -> str:
    text = text.replace("<trial>", " ")
    kept = [
        m
        for m in _TOPIC_WORD.finditer(text)
        if (words := tokenize(m.group()))
        and (not set(words) <= _TOPIC_FRAME or _NUMBERED_TYPE.match(text, m.start()))
    ]
    if not kept:
        return ""
    end = kept[-1].end()
    ago = _AGO.match(text, end)  # "chemo 6 weeks ago": how long ago is a fact of the patient
    return text[kept[0].start() : ago.end() if ago else end].strip(" ,;:-?.!")


_AGO = re.compile(r"\s*(?:days?|weeks?|wks?|months?|mos?|years?|yrs?)\s+(?:ago|back)\b", re.I)


def plan_schema() -> dict[str, Any]:
    """The JSON schema a model's plan must follow (rag.answer asks an LLM backend for one)."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["kind"],
        "properties": {
            "kind": {"enum": list(KINDS)},
            "trials": {"type": "array", "items": {"type": "string"}},
            "fields": {"type": "array", "items": {"enum": list(_FIELD_ORDER)}},
            "topic": {"type": "string"},
            "patient": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "age": {"type": ["number", "null"]},
                    "sex": {"enum": ["FEMALE", "MALE", None]},
                    "ecog": {"type": ["integer", "null"], "minimum": 0, "maximum": 5},
                    "conditions": {"type": "array", "items": {"type": "string"}},
                },
            },
            "filters": {"type": "object"},
        },
    }
