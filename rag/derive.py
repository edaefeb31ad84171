"""Fields a record leaves empty but states in its own words: read them, and keep where.

A registry page often has no labelled age, phase or treatment, while its criteria say
"18~80 years, both men and women" and its summary "a single-arm, open-label phase Ⅱ trial of
anlotinib combined with sindilimab". `derive` reads such values, only for fields the record
leaves empty, and only from words that speak of this trial:

- ages and sex from an inclusion criterion;
- phase, design (randomised, single-arm, open-label, double-blind), treatments, the disease
  and an acronym from the title, or from a summary or description sentence about this study
  ("The aim of this study ...", "The APEC study is ...", "We designed ..."), never from
  background sentences about other studies;
- the primary endpoint from "the primary end point was ...".

Each value is a `Derived` with the text it came from and its span there, so that answers cite
the very words. Stated fields always win; a derived value never fills the field itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace

from rag import normalize
from rag.types import Derived, DerivedSource, Trial

Value = float | str | tuple[str, ...]
_PROSE: tuple[DerivedSource, ...] = ("title", "official_title", "brief_summary", "description")
_TITLES = ("title", "official_title")

# --- ages and sex in an inclusion criterion --------------------------------------------------

MIN_AGE, MAX_AGE = 10, 120  # numbers outside this are durations, not ages of trial participants
_AGE_WORDS = re.compile(
    r"\bage[ds]?\b|\byears?\s+(?:old|of\s+age)\b|\byrs?\s+old\b|\badults?\b|\bolder\b|"
    r"\byounger\b|\belderly\b",
    re.IGNORECASE,
)
_YEARS = r"\s*(?:years?|yrs?|y)?(?:\s*old|\s*of\s+age)?"
_AGE_RANGE = re.compile(
    rf"\b(?:between\s+)?(\d{{2,3}}){_YEARS}\s*(?:~|-|–|—|to|and)\s*(\d{{2,3}})\s*(?:years?|yrs?)\b",
    re.IGNORECASE,
)
# "Age: 18 to 70", "Age 18-60": a range right after the word age, with no unit
_AGE_NAMED_RANGE = re.compile(
    r"\bage[sd]?\s*:?\s*(?:between\s+|from\s+|over\s+)?(\d{2,3})\s*(?:~|-|–|—|to|and)\s*"
    r"(\d{2,3})\b(?!\s*(?:%|weeks?|months?|days?|hours?|kg|cm|mg))",
    re.IGNORECASE,
)
_AGE_BOUND = re.compile(
    r"(?P<op>≥|>=|>|≤|<=|<|=<|=>|over|older\s+than|more\s+than|above|at\s+least|"
    r"not\s+(?:less|younger)\s+than|no\s+(?:less|younger)\s+than|under|younger\s+than|below|"
    r"less\s+than|up\s+to|at\s+most|no\s+(?:more|older)\s+than|not\s+(?:more|older)\s+than)"
    rf"\s*(?P<n>\d{{2,3}}){_YEARS}",
    re.IGNORECASE,
)
_AGE_OPEN = re.compile(
    rf"\b(?P<n>\d{{2,3}}){_YEARS}\s*(?:or|and)\s+(?P<dir>older|above|over|more|younger|under|below)",
    re.IGNORECASE,
)
_LOWER = re.compile(
    r"^(?:≥|>=|>|=>|over|older|more|above|at\s+least|not\s+(?:less|younger)|no\s+(?:less|younger))",
    re.IGNORECASE,
)
_BOTH_SEXES = re.compile(
    r"\b(?:both\s+(?:men\s+and\s+women|males?\s+and\s+females?|sexes|genders)|"
    r"regardless\s+of\s+(?:gender|sex)|(?:male|man|men)\s+(?:or|and)\s+(?:female|woman|women)|"
    r"(?:female|woman|women)\s+(?:or|and)\s+(?:male|man|men)|either\s+(?:sex|gender))\b",
    re.IGNORECASE,
)
_ONE_SEX = re.compile(
    r"\b(?:only\s+(?P<a>women|females?|men|males?)|(?P<b>women|females?|men|males?)\s+only)\b",
    re.IGNORECASE,
)


def age_limits(text: str) -> tuple[float | None, float | None, tuple[int, int] | None]:
    """(minimum, maximum, span of the words) of the participant ages a criterion states.

    '18~80 years' -> (18, 80); 'Age ≥18 years old and ≤75 years old' -> (18, 75); 'over 18
    years old' -> (18, None). Durations ('within 5 years') and numbers outside 10-120 are not
    ages; a bound needs an age word near it ('age', 'aged', 'years old', 'adults').
    """
    for found in (_AGE_RANGE.search(text), _AGE_NAMED_RANGE.search(text)):
        if found and MIN_AGE <= int(found.group(1)) < int(found.group(2)) <= MAX_AGE:
            return float(found.group(1)), float(found.group(2)), found.span()
    if not _AGE_WORDS.search(text):
        return None, None, None
    low = high = None
    start, end = len(text), 0
    for bound in _AGE_BOUND.finditer(text):
        n = int(bound.group("n"))
        if not MIN_AGE <= n <= MAX_AGE or not _is_age(text, bound):
            continue
        if _LOWER.match(bound.group("op")):
            low = float(n) if low is None else low
        else:
            high = float(n) if high is None else high
        start, end = min(start, bound.start()), max(end, bound.end())
    for bound in _AGE_OPEN.finditer(text):
        n = int(bound.group("n"))
        if not MIN_AGE <= n <= MAX_AGE or not _is_age(text, bound):
            continue
        if bound.group("dir").lower() in {"older", "above", "over", "more"}:
            low = float(n) if low is None else low
        else:
            high = float(n) if high is None else high
        start, end = min(start, bound.start()), max(end, bound.end())
    if low is None and high is None:
        return None, None, None
    return low, high, (start, end)


AGE_WORD_REACH = 30  # characters between "Age:" / "aged" and the bound it introduces
_UNIT_AFTER = re.compile(
    r"\s*(?:weeks?|months?|days?|hours?|%|[a-zµμ]*/|mg|g\b|kg|cm|mm|ml|x\s?10)", re.I
)


def _is_age(text: str, bound: re.Match[str]) -> bool:
    """Is this bound an age: 'years' in it, or an age word just before it, and no other unit
    after it ('at least 12 weeks', 'at least 10 g/dL' are not ages)?"""
    if re.search(r"years?|yrs?", bound.group(), re.IGNORECASE):
        return True
    if _UNIT_AFTER.match(text, bound.end()):
        return False
    before = text[max(0, bound.start() - AGE_WORD_REACH) : bound.start()]
    return _AGE_WORDS.search(before) is not None


def _ages_and_sex(trial: Trial) -> Iterator[Derived]:
    want_ages = trial.min_age_years is None and trial.max_age_years is None
    want_sex = trial.sex is None
    for criterion in trial.criteria_in("inclusion"):
        text = criterion.text
        if want_ages:
            low, high, span = age_limits(text)
            if span is not None:
                want_ages = False
                for name, value in (("min_age_years", low), ("max_age_years", high)):
                    if value is not None:
                        yield _from_criterion(name, value, criterion.id, text, span)
        if want_sex:
            both = _BOTH_SEXES.search(text)
            one = _ONE_SEX.search(text)
            if both or one:
                want_sex = False
                match = both or one
                assert match is not None
                sex = "ALL" if both else normalize.sex(match.group("a") or match.group("b"))
                if sex:
                    yield _from_criterion("sex", sex, criterion.id, text, match.span())


def _from_criterion(
    name: str, value: float | str, criterion_id: str, text: str, span: tuple[int, int]
) -> Derived:
    return Derived(
        field=name,
        value=value,
        source="criterion",
        span=span,
        quote=text[span[0] : span[1]],
        criterion_id=criterion_id,
    )


# --- prose about this study -----------------------------------------------------------------

# Sentence ends, also where a page runs sentences together ("metastasis.The aim ...").
_SENTENCE_END = re.compile(r"[.!?](?=\s)|(?<=[a-z)\]])[.!?](?=[A-Z])|\n")
# A sentence about this trial, not background about others ("Previous studies have ...").
_ABOUT_THIS = re.compile(
    r"\b(?:this|the\s+present|the\s+current|our|the\s+proposed)\s+(?:[\w-]+\s+){0,4}?"
    r"(?:study|trial|research|project)\b|"
    r"\b(?:aim|purpose|objective|goal)s?\s+of\s+(?:this|the)\s+(?:study|trial)\b|"
    r"\b(?:we|investigators?)\s+(?:\w+\s+){0,2}?(?:design|conduct|perform|propose|plan|initiat|"
    r"carr(?:y|ied)\s+out)\w*|"
    r"^\s*(?:an?|the)\s+(?![^.]{0,80}\b(?:previous|prior|earlier|other|recent|published|"
    r"ongoing|several|many|some)\b)[^.]{0,120}?\b(?:study|trial)\b|"
    r"^\s*patients\s+(?:will\s+)?(?:receive|received|are\s+treated|were\s+treated)\b",
    re.IGNORECASE,
)
# A cheap first look: a sentence without any of these words cannot be about this study.
_CUES = re.compile(
    r"\b(?:this|present|current|our|proposed|aim|aims|purpose|objective|goal|we|investigators?|"
    r"patients)\b|^\s*(?:an?|the)\s",
    re.IGNORECASE,
)
_PHASE = re.compile(
    r"\bphase\s*(?:[1-4]|iv|iii|ii|i|[ⅠⅡⅢⅣ])(?:\s*(?:/|-|and|or)\s*(?:phase\s*)?"
    r"(?:[1-4]|iv|iii|ii|i|[ⅠⅡⅢⅣ]))?(?![\w])",
    re.IGNORECASE,
)
_DESIGN_WORDS: tuple[tuple[str, str, re.Pattern[str]], ...] = tuple(
    (name, value, re.compile(pattern, re.IGNORECASE))
    for name, value, pattern in (
        ("allocation", "NON_RANDOMIZED", r"\bnon-?\s?randomi[sz]ed\b"),
        ("allocation", "RANDOMIZED", r"(?<!non-)(?<!non)\brandomi[sz]ed\b"),
        ("intervention_model", "SINGLE_GROUP", r"\bsingle[- ](?:arm|group)\b"),
        ("intervention_model", "CROSSOVER", r"\bcross-?over\b"),
        ("intervention_model", "PARALLEL", r"\bparallel[- ](?:group|arm|assignment)\b"),
        ("masking", "NONE", r"\bopen[- ]label\b|\bopen(?=,|\s+(?:randomi|controlled|study|trial))"),
        ("masking", "DOUBLE", r"\bdouble[- ](?:blind|mask)\w*"),
        ("masking", "SINGLE", r"\bsingle[- ](?:blind|mask)\w*"),
        ("masking", "TRIPLE", r"\btriple[- ](?:blind|mask)\w*"),
        ("time_perspective", "RETROSPECTIVE", r"\bretrospective\b"),
        ("time_perspective", "PROSPECTIVE", r"\bprospective\b"),
    )
)
# International nonproprietary name stems of drugs, and the classic chemotherapy names that
# carry none: a word ending so is a drug name.
_DRUG_STEMS = (
    "mab", "nib", "ciclib", "parib", "platin", "taxel", "rubicin", "tecan", "citabine",
    "trexed", "trexate", "mustine", "limus", "fenib", "zomib", "lisib", "degib", "relbine",
    "phosphamide", "zolomide", "poside", "uracil", "cept", "formin", "statin",
    "cycline", "mycin", "vir", "interferon", "leukin", "sertib", "metinib", "glutide",
    "enatide",
)  # fmt: skip
_DRUG = re.compile(
    r"\b(?:[a-z]{3,}(?:" + "|".join(_DRUG_STEMS) + r")|interferon(?:\s+alfa)?|"
    r"(?:anti-)?(?:pd-?l?1|ctla-?4)(?:\s+(?:inhibitors?|antibod(?:y|ies)|blockade))|"
    r"(?:immune\s+)?checkpoint\s+inhibitors?)\b",
    re.IGNORECASE,
)
_THERAPY = re.compile(
    r"\b(?:(?:local|systemic|targeted|adjuvant|neoadjuvant|consolidation|maintenance|salvage|"
    r"palliative|stereotactic(?:\s+body)?|concurrent|definitive|induction|first-line|"
    r"second-line)\s+)?(?:chemo-?radio-?therapy|chemoradiation|radio-?chemotherapy|"
    r"chemotherapy|radio-?therapy|radiation\s+therapy|immunotherapy|surgery|resection|"
    r"(?<=local\s)therapy)\b",
    re.IGNORECASE,
)
_NOT_A_TREATMENT = re.compile(r"^(?:first|second)-line\s+", re.IGNORECASE)
_DISEASE_HEAD = re.compile(
    r"\b(?:carcinomas?|cancers?|tumou?rs?|neoplasms?|lymphomas?|leuka?emias?|melanomas?|"
    r"sarcomas?|myelomas?|gliomas?|metastas[ie]s|diabetes|syndromes?|diseases?|infections?|"
    r"disorders?|failure|fibrosis|hypertension|asthma|arthritis|hepatitis|obesity)\b"
    r"(?:\s*\((?P<abbr>[A-Z][A-Za-z0-9-]{1,9})\))?",
    re.IGNORECASE,
)
# Words that end a disease name on its left ("treatment for | advanced esophageal ...").
_NAME_STOP = frozenset(
    """for of in with to the a an treatment treatments treating treat patients patient people
    subjects as by on at from who whose study trial therapy therapies versus vs line efficacy
    safety evaluate evaluating determine if whether combined plus alone prior after before
    participants having has have had is are was were be been this that these those
    chemotherapy radiotherapy camrelizumab""".split()
)
_MAX_NAME_WORDS = 8
_ENDPOINT = re.compile(
    r"\bprimary\s+(?:end\s*-?\s*points?|outcomes?(?:\s+measures?)?|objectives?)\s+"
    r"(?:was|is|will\s+be|were|are|includes?|included)\s+(?:the\s+|to\s+(?:evaluate|assess)\s+"
    r"(?:the\s+)?)?(?P<what>[^.;]{3,120}?)"
    r"(?=(?:\s+|(?<=\)))(?:among|in|of\s+all|for\s+all|at)\b|[.;]|$)",
    re.IGNORECASE,
)
_ACRONYM = re.compile(
    r"\b[Tt]he\s+(?P<a>[A-Z][A-Z0-9]{2,}(?:-[A-Z0-9]+)*)\s+(?:study|trial)\b|"
    r"^(?P<b>[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+)\s*:|"
    r"\((?![Pp]hase\b)(?P<c>[A-Z][A-Za-z]*[- ]?\d+[A-Za-z0-9]*|"
    r"[A-Z]{2,}[A-Za-z]*-\d+[A-Za-z0-9]*)\)\s*$"
)


def about_sentences(trial: Trial) -> Iterator[str]:
    """The summary's and description's sentences that speak of this study."""
    for source, text, (start, end) in _sentences(trial):
        if source not in _TITLES:
            yield text[start:end]


def _sentences(
    trial: Trial, *, about_this: bool = True
) -> Iterator[tuple[DerivedSource, str, tuple[int, int]]]:
    """(source, its text, sentence span) for the titles whole and each sentence of the summary
    and description (only those that speak of this study, unless about_this is False)."""
    for source in _PROSE:
        text = getattr(trial, source)
        if not text:
            continue
        if source in _TITLES:
            yield source, text, (0, len(text))
            continue
        for start, end in _sentence_spans(text):
            words = text[start:end]
            if not about_this or (_CUES.search(words) and _ABOUT_THIS.search(words)):
                yield source, text, (start, end)


def _sentence_spans(text: str) -> Iterator[tuple[int, int]]:
    """[start, end) of each sentence or line of the text, without surrounding white space."""
    start = 0
    for end in [m.end() for m in _SENTENCE_END.finditer(text)] + [len(text)]:
        piece = text[start:end]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            yield start + lead, start + len(piece.rstrip())
        start = end


def _prose(trial: Trial) -> Iterator[Derived]:
    wanted = {
        name
        for name in (
            "phase",
            "allocation",
            "intervention_model",
            "masking",
            "time_perspective",
            "interventions",
            "conditions",
            "primary_outcomes",
            "acronym",
        )
        if getattr(trial, name) is None
    }
    if not wanted:
        return
    # Treatments: those of the sentence (or title) naming the most, cited as one stretch.
    treatments: tuple[tuple[str, ...], DerivedSource, tuple[int, int]] | None = None
    for source, text, (start, end) in _sentences(trial):
        part = text[start:end]

        if "phase" in wanted:
            found = _PHASE.search(part)
            phase = normalize.phase(found.group()) if found else None
            if found and phase:
                wanted.discard("phase")
                yield _quoted(source, text, start, "phase", phase, *found.span())
        for name, value, pattern in _DESIGN_WORDS:
            if name in wanted and (found := pattern.search(part)):
                wanted.discard(name)
                yield _quoted(source, text, start, name, value, *found.span())
                if value == "SINGLE_GROUP" and "allocation" in wanted:
                    # One arm: nobody is allocated, as registries record it ("N/A").
                    wanted.discard("allocation")
                    yield _quoted(source, text, start, "allocation", "NA", *found.span())
        if "acronym" in wanted and (found := _ACRONYM.search(part)):
            group = next(g for g in ("a", "b", "c") if found.group(g))
            wanted.discard("acronym")
            yield _quoted(source, text, start, "acronym", found.group(group), *found.span(group))
        if "conditions" in wanted and (disease := _disease(part)):
            wanted.discard("conditions")
            yield _quoted(
                source, text, start, "conditions", (part[disease[0] : disease[1]],), *disease
            )
        if "interventions" in wanted:
            names, s, e = _treatments(part)
            if names and (treatments is None or len(names) > len(treatments[0])):
                treatments = (names, source, (start + s, start + e))
    if "primary_outcomes" in wanted:
        # "The primary end point was ..." speaks of this study wherever it stands.
        for source, text, (start, end) in _sentences(trial, about_this=False):
            found = _ENDPOINT.search(text, start, end)
            if found:
                what = found.group("what").strip()
                yield _quoted(
                    source,
                    text,
                    0,
                    "primary_outcomes",
                    (what,),
                    found.start("what"),
                    found.end("what"),
                )
                break
    if treatments is not None:
        names, source, (s, e) = treatments
        yield Derived("interventions", names, source, (s, e), getattr(trial, source)[s:e])


# Treatments named after the population ("... in patients who had radical resection") are
# the patients' history, not what the trial gives.
_POPULATION = re.compile(
    r"\b(?:in|for|among)\s+(?:the\s+treatment\s+of\s+)?(?:patients|subjects|participants|"
    r"people|adults|children|women|men)\b",
    re.IGNORECASE,
)


def _treatments(text: str) -> tuple[tuple[str, ...], int, int]:
    """The drugs and therapies a sentence names before its population, and their stretch."""
    cut = _POPULATION.search(text)
    head = text[: cut.start()] if cut else text
    names: list[str] = []
    start = end = 0
    for found in sorted([*_DRUG.finditer(head), *_THERAPY.finditer(head)], key=lambda m: m.start()):
        name = _NOT_A_TREATMENT.sub("", found.group())
        if name.casefold() not in {n.casefold() for n in names}:
            start = found.start() if not names else start
            names.append(name)
            end = found.end()
    return tuple(names), start, end


def _quoted(
    source: DerivedSource, text: str, at: int, name: str, value: Value, start: int, end: int
) -> Derived:
    """A value read from text[at + start : at + end] (a span of a sentence starting at `at`)."""
    span = (at + start, at + end)
    return Derived(name, value, source, span, text[span[0] : span[1]])


def _disease(text: str) -> tuple[int, int] | None:
    """The span of the first disease name in the text: its head word ('carcinoma', 'cancer')
    with the modifiers before it and an abbreviation in brackets after it."""
    for head in _DISEASE_HEAD.finditer(text):
        words = list(re.finditer(r"[\w'-]+", text[: head.start()]))
        start, taken = head.start(), 0
        for word in reversed(words):
            low = word.group().casefold()
            if low in _NAME_STOP or taken >= _MAX_NAME_WORDS or text[word.end() : start].strip():
                break
            start, taken = word.start(), taken + 1
        if taken:
            while text[start : start + 4].casefold() in {"and ", "or "}:
                start = text.index(" ", start) + 1
            return start, head.end()
    return None


def derive(trial: Trial) -> Trial:
    """The trial with `derived` holding what its own words state for its empty fields."""
    found = (*_ages_and_sex(trial), *_prose(trial))
    return replace(trial, derived=found) if found else trial
