"""The offline default backend: answers built from the retrieved passages themselves.

No model writes anything here. For a question about one trial it states the asked value
(a field of the trial's card, or the threshold in the best-matching criterion) in a sentence
that cites its passage. For a "which trials ..." question it gives each trial a verdict from
the deciding criterion's section and negation ("have not received", "no prior", "without",
"other than"), or from the structured ages, or from an ECOG range.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from rag.lexical import EXPANSIONS, expansion_terms, token_set, tokenize, whole_tokens
from rag.llm.base import Passage, Task
from rag.types import Chunk

_NEGATION = re.compile(
    r"\b(?:not|never|no|without|naive|naïve|free of|other than|except)\b", re.IGNORECASE
)
_ALLOWED = re.compile(r"\b(?:allowed|permitted|acceptable|may have|can have|eligible)\b", re.I)
_AGE = re.compile(
    r"\b(\d{1,3})\s*(?:-|\s)?\s*(?:years?|yrs?)(?:\s*-?\s*old)?\b|\baged?\s+(\d{1,3})\b", re.I
)
_ECOG = re.compile(r"\b(?:ecog|performance status|ps)\D{0,12}?(\d)\b", re.IGNORECASE)
_THRESHOLD = re.compile(
    r"(?:[≥≤<>]=?|>=|<=|\bat least\b|\bmore than\b|\bless than\b|\bover\b|\bunder\b|\babove\b|"
    r"\bbelow\b)\s*[\d.,]+(?:\s*(?:[×x*]|times)\s*(?:10\s*\^?\s*\d+|UNL|ULN))?"
    r"(?:\s*(?:/\s*)?[A-Za-zμ/%^\d.]+)?(?:\s*/\s*[A-Za-zμ]+)?",
    re.IGNORECASE,
)
# Words of a topic that frame it rather than name what it is about.
GENERIC = frozenset(
    """prior previous previously treatment treatments therapy therapies inhibitor inhibitors
    history received receive receiving use used drug drugs agent agents past any already
    had have having been patients patient people person someone accepted""".split()
)


class ExtractiveBackend:
    """Answers from passages: no server, no key, the same answer every time."""

    name = "extractive"

    def __init__(self, **options: Any) -> None:
        self.options = options

    def generate(self, task: Task) -> Iterator[str]:
        if task.kind == "verdicts":
            yield from self._verdicts(task)
        else:
            yield self._answer(task)

    # --- one trial --------------------------------------------------------------------------

    def _answer(self, task: Task) -> str:
        asked = set(task.options.get("asked", ())) or set(tokenize(task.question))
        card = next((p for p in task.passages if p.chunk.kind == "card"), None)
        fields = _card_fields(card, task.question) if card else []
        if card is not None and fields:
            stated = "; ".join(f"{label.lower()} {value}" for label, value in fields)
            return f"{_trial_name(card.chunk)}: {stated} [{card.marker}]."
        ranked = sorted(
            (p for p in task.passages if p.chunk.kind != "card"),
            key=lambda p: -_overlap(asked, p.chunk),
        )
        if not ranked:
            return ""
        return _state(ranked[0], asked)

    # --- which trials -----------------------------------------------------------------------

    def _verdicts(self, task: Task) -> Iterator[str]:
        by_marker = {p.marker: p for p in task.passages}
        topic = task.topic or task.question
        terms = set(task.options.get("terms", ())) or topic_terms(topic)
        for trial in task.options.get("trials", []):
            passages = [by_marker[m] for m in trial["markers"] if m in by_marker]
            verdict, marker, why = decide(topic, terms, passages)
            cite = f" [{marker}]" if marker else ""
            reason = f" - {why}" if why else ""
            yield f"- {trial['id']} ({trial['title']}): {verdict}{cite}{reason}\n"
        # The summary line is rag.answer's, counted from the parsed verdicts.


def _overlap(asked: set[str], chunk: Chunk) -> int:
    """Asked words in the chunk's text that are not just its trial's title words."""
    return len((asked & token_set(chunk.text)) - token_set(chunk.title))


def topic_terms(topic: str) -> set[str]:
    """The words that a criterion must contain to speak to the topic."""
    terms = set(whole_tokens(topic))
    terms.update(t for term in expansion_terms(topic) for t in whole_tokens(term))
    terms -= GENERIC
    if _AGE.search(topic):
        terms = {"age", "aged", "years", "old"}
    if _ECOG.search(topic):
        terms = {"ecog", "performance"}
    return {t for t in terms if len(t) > 2 or "-" in t}


def decide(topic: str, terms: set[str], passages: list[Passage]) -> tuple[str, int | None, str]:
    """(verdict, marker of the deciding passage, short reason) for one trial."""
    labels = [label for label in card_fields_asked(topic) if label == "Healthy volunteers"]
    if labels:
        return _decide_card(labels[0], passages)
    lab = _LAB_TOPIC.search(topic)
    if lab and not _AGE.search(topic):
        return _decide_lab(lab.group("term"), float(lab.group("value")), passages)
    age = _AGE.search(topic)
    if age:
        return _decide_age(float(age.group(1) or age.group(2)), passages)
    ecog = _ECOG.search(topic)
    if ecog:
        return _decide_ecog(int(ecog.group(1)), passages)
    matching = [
        p for p in passages if p.chunk.kind == "criterion" and terms & token_set(p.chunk.text)
    ]
    exclusion = [p for p in matching if p.chunk.section == "exclusion"]
    inclusion = [p for p in matching if p.chunk.section == "inclusion"]
    for p in exclusion:
        if _ALLOWED.search(p.chunk.text) and not _NEGATION.search(p.chunk.text):
            continue
        return "excludes", p.marker, ""
    for p in inclusion:
        text = p.chunk.text
        if _NEGATION.search(_near(text, terms)):
            return "excludes", p.marker, ""
        if _ALLOWED.search(text):
            return "allows", p.marker, ""
        return "requires", p.marker, ""
    for p in exclusion:
        return "allows", p.marker, "listed as allowed in an exclusion criterion"
    return "not stated", None, ""


_LAB_TOPIC = re.compile(
    r"(?P<term>platelets?|plt|hemoglobin|haemoglobin|hb|neutrophils?|anc|creatinine|bilirubin|"
    r"albumin|wbc|white blood cells?)\D{0,30}?(?P<value>\d+(?:\.\d+)?)",
    re.IGNORECASE,
)
_COMPARE = re.compile(r"(≥|>=|>|≤|<=|<)\s*(\d+(?:\.\d+)?)")


def _decide_card(label: str, passages: list[Passage]) -> tuple[str, int | None, str]:
    """A yes/no card field: yes allows, no excludes, unstated is not stated."""
    for p in passages:
        if p.chunk.kind != "card":
            continue
        line = re.search(rf"^{re.escape(label)}: (\w+)", p.chunk.text, re.MULTILINE)
        if line:
            return ("allows" if line.group(1) == "yes" else "excludes"), p.marker, ""
    return "not stated", None, ""


def _decide_lab(term: str, value: float, passages: list[Passage]) -> tuple[str, int | None, str]:
    """A lab value against the criterion that sets its threshold ('PLT ≥ 80 × 109 / L')."""
    key = term.lower()
    names = {key, key.rstrip("s")} | {
        t for k in (key, key.rstrip("s")) for x in EXPANSIONS.get(k, ()) for t in whole_tokens(x)
    }
    for p in passages:
        if p.chunk.kind != "criterion":
            continue
        for match in re.finditer(
            rf"\b(?:{'|'.join(map(re.escape, names))})\w*", p.chunk.text, re.I
        ):
            bound = _COMPARE.search(p.chunk.text, match.end(), match.end() + 25)
            if not bound:
                continue
            op, limit = bound.group(1), float(bound.group(2))
            inside = {
                "≥": value >= limit, ">=": value >= limit, ">": value > limit,
                "≤": value <= limit, "<=": value <= limit, "<": value < limit,
            }[op]  # fmt: skip
            if p.chunk.section == "exclusion":
                inside = not inside
            return ("allows" if inside else "excludes"), p.marker, ""
    return "not stated", None, ""


def _near(text: str, terms: set[str]) -> str:
    """The clause of the text that holds the first topic term."""
    clauses = re.split(r"[;:]|\.\s", text)
    for clause in clauses:
        if terms & set(tokenize(clause)):
            return clause
    return text


def _decide_age(age: float, passages: list[Passage]) -> tuple[str, int | None, str]:
    card = next((p for p in passages if p.chunk.kind == "card"), None)
    if card is not None:
        low, high = _card_ages(card.chunk.text)
        if (low is not None and age < low) or (high is not None and age > high):
            return "excludes", card.marker, ""
        if high is not None:
            return "allows", card.marker, ""
    for p in passages:
        if p.chunk.kind != "criterion":
            continue
        low, high = _age_limits(p.chunk.text)
        if low is None and high is None:
            continue
        inside = (low is None or age >= low) and (high is None or age <= high)
        if p.chunk.section == "exclusion":  # the limits say whom it excludes
            return ("excludes" if inside else "allows"), p.marker, ""
        return ("allows" if inside else "excludes"), p.marker, ""
    if card is not None and re.search(r"^Ages: ", card.chunk.text, re.MULTILINE):
        return "allows", card.marker, "no maximum age stated"
    return "not stated", None, ""


def _card_ages(card: str) -> tuple[float | None, float | None]:
    """'Ages: 18 to 75 years', '18 years and older', 'up to 75 years' -> (low, high)."""
    line = re.search(r"^Ages: (.+)$", card, re.MULTILINE)
    if not line:
        return None, None
    text = line.group(1)
    both = re.fullmatch(r"([\d.]+) to ([\d.]+) years", text)
    if both:
        return float(both.group(1)), float(both.group(2))
    low = re.fullmatch(r"([\d.]+) years and older", text)
    if low:
        return float(low.group(1)), None
    high = re.fullmatch(r"up to ([\d.]+) years", text)
    return (None, float(high.group(1))) if high else (None, None)


_BOUND = re.compile(
    r"(?P<op>≥|>=|>|≤|<=|<|over|older than|more than|above|at least|under|younger than|"
    r"below|up to|at most)\s*(?P<n>\d{1,3})\s*(?:years?|yrs?)?",
    re.IGNORECASE,
)
_RANGE = re.compile(r"\b(\d{1,3})\s*(?:~|-|–|to)\s*(\d{1,3})\s*(?:years?|yrs?)", re.IGNORECASE)


def _age_limits(text: str) -> tuple[float | None, float | None]:
    if not re.search(r"\bage|\baged\b|years? old|\byears\b", text, re.IGNORECASE):
        return None, None
    found = _RANGE.search(text)
    if found:
        return float(found.group(1)), float(found.group(2))
    low = high = None
    for bound in _BOUND.finditer(text):
        op, n = bound.group("op").lower(), float(bound.group("n"))
        if op in {"≥", ">=", ">", "over", "older than", "more than", "above", "at least"}:
            low = n if low is None else low
        else:
            high = n if high is None else high
    return low, high


def _decide_ecog(score: int, passages: list[Passage]) -> tuple[str, int | None, str]:
    for p in passages:
        text = p.chunk.text
        if p.chunk.kind != "criterion" or not re.search(r"ecog|performance status", text, re.I):
            continue
        allowed = _ecog_values(text)
        if not allowed:
            continue
        inside = score in allowed
        if p.chunk.section == "exclusion":
            return ("excludes" if inside else "allows"), p.marker, ""
        return ("allows" if inside else "excludes"), p.marker, ""
    return "not stated", None, ""


def _ecog_values(text: str) -> set[int]:
    """The ECOG scores a criterion names: '0-2', '0~1', '0 or 1', '≤ 2', '> 2'."""
    start = re.search(r"ecog|performance status", text, re.IGNORECASE)
    tail = text[start.start() :] if start else text
    span = re.search(r"(\d)\s*(?:-|~|–|to)\s*(\d)", tail)
    if span:
        return set(range(int(span.group(1)), int(span.group(2)) + 1))
    bound = re.search(r"(≤|<=|<|≥|>=|>)\s*(\d)", tail)
    if bound:
        op, n = bound.group(1), int(bound.group(2))
        return {
            "≤": set(range(0, n + 1)),
            "<=": set(range(0, n + 1)),
            "<": set(range(0, n)),
            "≥": set(range(n, 6)),
            ">=": set(range(n, 6)),
            ">": set(range(n + 1, 6)),
        }[op]
    listed = re.findall(r"\b([0-5])\b", tail[:60])
    return {int(n) for n in listed}


# --- one trial: sentences ------------------------------------------------------------------

# What a question asks of the card, by its own words (not by query expansions).
_CARD_FIELDS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (label, re.compile(pattern, re.IGNORECASE))
    for label, pattern in (
        ("Title", r"\b(?:title|called)\b"),
        ("Sponsor", r"\b(?:sponsor\w*|who runs|funds|funded|funding)\b"),
        ("Collaborators", r"\bcollaborat\w*"),
        ("Investigators", r"\b(?:investigators?|principal investigator|\bPI\b)"),
        ("Phase", r"\bphase\b"),
        (
            "Enrollment",
            r"\benrol+ment\b|\bhow many (?:participants|patients|people|subjects)\b|"
            r"\bsample size\b|\b(?:plan|plans|planned|will|to) (?:to )?enrol+\b",
        ),
        ("Start date", r"\b(?:start|begin)\w*"),
        ("Completion date", r"\b(?:end|ends|complet\w*|finish\w*)\b"),
        ("Status", r"\b(?:status|recruiting|still open|open to)\b"),
        ("Study type", r"\b(?:study type|observational|interventional)\b"),
        ("Primary outcomes", r"\b(?:endpoint|outcome)s?\b"),
        ("Sex", r"\b(?:sex(?:es)?|genders?|women|men|females?|males?)\b"),
        ("Healthy volunteers", r"\bhealthy volunteers?\b"),
        ("Conditions", r"\b(?:conditions?|diseases?)\b"),
        ("Interventions", r"\b(?:interventions?|drugs?|treatments? (?:given|studied))\b"),
        ("Ages", r"\b(?:ages?|how old|years old)\b"),
    )
)


def card_fields_asked(question: str) -> list[str]:
    """The card labels a question asks for ("who sponsors ..." -> ["Sponsor"])."""
    return [label for label, asks in _CARD_FIELDS if asks.search(question)]


def _card_fields(card: Passage, question: str) -> list[tuple[str, str]]:
    """(label, "is value") for every card field the question asks that the card states."""
    found = []
    for label in card_fields_asked(question):
        line = re.search(rf"^{re.escape(label)}: (.+)$", card.chunk.text, re.MULTILINE)
        if line:
            found.append((label, ("" if label == "Ages" else "is ") + line.group(1)))
    return found


def _trial_name(chunk: Chunk) -> str:
    return f"{chunk.trial_id} ({chunk.title})"


def _state(passage: Passage, asked: set[str]) -> str:
    """One sentence: the asked threshold if the criterion gives one, else the criterion."""
    chunk = passage.chunk
    where = (
        f"{chunk.section} criterion {chunk.criterion_id.rsplit('/', 1)[-1]}"
        if chunk.criterion_id
        else chunk.section
    )
    text = chunk.text.rstrip(" ;,.")
    value = _value(text, asked)
    if value and chunk.section == "inclusion":
        return f'{_trial_name(chunk)} requires {value} ({where}: "{text}") [{passage.marker}].'
    if value and chunk.section == "exclusion":
        return f'{_trial_name(chunk)} excludes {value} ({where}: "{text}") [{passage.marker}].'
    return f'{_trial_name(chunk)}, {where}: "{text}" [{passage.marker}].'


def _value(text: str, asked: set[str]) -> str | None:
    """'platelets ≥ 100 × 10^9 / L' out of a criterion, for the asked word."""
    for word in sorted(asked, key=len, reverse=True):
        if len(word) < 2 or word.isdigit():
            continue
        at = re.search(rf"\b{re.escape(word)}\w*", text, re.IGNORECASE)
        if not at:
            continue
        threshold = _THRESHOLD.search(text, at.end(), min(len(text), at.end() + 60))
        if threshold:
            return f"{text[at.start() : at.end()]} {threshold.group(0).strip()}"
    return None
