"""Trial values -> the words a person reads: "Phase 2", "Not yet recruiting", "1 August 2021".

The Trial model keeps the registry's codes (PHASE2, NOT_YET_RECRUITING, ISO dates) so that
filters and exports stay exact; everything shown to a person (the card, answers in the CLI,
REPL and API, the eval report) goes through here. `--json` outputs keep the codes.
"""

from __future__ import annotations

import re
from typing import Any

from rag.citations import inert
from rag.normalize import DESIGN_VALUES
from rag.types import Derived, Trial

# Every field a question can ask of a trial, with the label a person reads, in card order.
FIELD_LABELS: dict[str, str] = {
    "nct_id": "Trial",
    "acronym": "Acronym",
    "title": "Title",
    "official_title": "Official title",
    "status": "Status",
    "phase": "Phase",
    "study_type": "Study type",
    "enrollment": "Enrollment",
    "start_date": "Start date",
    "completion_date": "Completion date",
    "last_update": "Last update",
    "ages": "Ages",
    "sex": "Sex",
    "healthy_volunteers": "Accepts healthy volunteers",
    "sponsor": "Sponsor",
    "collaborators": "Collaborators",
    "investigators": "Investigators",
    "contacts": "Contacts",
    "conditions": "Conditions",
    "interventions": "Interventions",
    "arms": "Arms",
    "allocation": "Allocation",
    "intervention_model": "Intervention model",
    "masking": "Masking",
    "primary_purpose": "Primary purpose",
    "observational_model": "Observational model",
    "time_perspective": "Time perspective",
    "primary_outcomes": "Primary outcomes",
    "secondary_outcomes": "Secondary outcomes",
    "countries": "Countries",
    "locations": "Locations",
}
MAX_LISTED = 10  # locations and other long lists: the first ten, then "and N more"

_STATUS = {
    "ACTIVE_NOT_RECRUITING": "Active, not recruiting",
    "UNKNOWN": "Unknown status",
    "ENROLLING_BY_INVITATION": "Enrolling by invitation",
}
_DESIGN = {
    ("allocation", "NA"): "Not applicable (one group)",
    ("allocation", "NON_RANDOMIZED"): "Non-randomized",
    ("intervention_model", "SINGLE_GROUP"): "Single group (single-arm)",
    ("masking", "NONE"): "None (open label)",
    ("masking", "SINGLE"): "Single-blind",
    ("masking", "DOUBLE"): "Double-blind",
    ("masking", "TRIPLE"): "Triple-blind",
    ("masking", "QUADRUPLE"): "Quadruple-blind",
    ("primary_purpose", "ECT"): "Educational/counseling/training",
}
_MONTHS = (
    "January February March April May June July August September October November December"
).split()
_FROM = {
    "title": "the title",
    "official_title": "the official title",
    "brief_summary": "the summary",
    "description": "the description",
}


def words(code: str) -> str:
    """An enum as words: NOT_YET_RECRUITING -> 'Not yet recruiting'."""
    return code.replace("_", " ").capitalize()


def phase(code: str) -> str:
    """PHASE2 -> 'Phase 2', PHASE1/PHASE2 -> 'Phase 1/Phase 2', NA -> 'Not applicable'."""
    parts = []
    for part in code.split("/"):
        if part == "NA":
            parts.append("Not applicable")
        else:
            parts.append(re.sub(r"^(EARLY_)?PHASE(\d)$", _phase_words, part))
    return "/".join(parts)


def _phase_words(match: re.Match[str]) -> str:
    return ("Early Phase " if match.group(1) else "Phase ") + match.group(2)


def date(iso: str) -> str:
    """'2021-08-01' -> '1 August 2021', '2021-08' -> 'August 2021'."""
    found = re.fullmatch(r"(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?", iso)
    if not found:
        return iso
    year, month, day = found.groups()
    if month is None:
        return year
    name = _MONTHS[int(month) - 1]
    return f"{int(day)} {name} {year}" if day else f"{name} {year}"


def ages(low: float | None, high: float | None) -> str | None:
    if low is not None and high is not None:
        return f"{low:g} to {high:g} years"
    if low is not None:
        return f"{low:g} years and older"
    if high is not None:
        return f"up to {high:g} years"
    return None


def value(field: str, raw: Any) -> str:
    """Any field's value as a person reads it."""
    if isinstance(raw, tuple | list):
        items = [value(field, v) for v in raw]
        more = len(items) - MAX_LISTED
        shown = "; ".join(items[:MAX_LISTED])
        return shown + (f"; and {more} more" if more > 0 else "")
    if field == "phase":
        return phase(raw)
    if field == "status":
        return _STATUS.get(raw, words(raw))
    if field in {"start_date", "completion_date", "last_update"}:
        return date(raw)
    if field in {"min_age_years", "max_age_years"}:
        return f"{raw:g} years"
    if field == "healthy_volunteers":
        return "Yes" if raw else "No"
    if field in {"sex", "study_type"} or field in _DESIGN_FIELDS:
        return _DESIGN.get((field, raw), words(raw))
    return str(raw)


_DESIGN_FIELDS = frozenset(DESIGN_VALUES)


def where(found: Derived) -> str:
    """Where a derived value was read: 'inclusion criterion 4', 'the summary'."""
    if found.criterion_id:
        return criterion_label(found.criterion_id)
    return _FROM[found.source]


def criterion_label(criterion_id: str) -> str:
    """'NCT01234567/inclusion/8.2' -> 'inclusion criterion 8.2'."""
    section, number = criterion_id.split("/")[-2:]
    return f"{section} criterion {number}"


def field_text(trial: Trial, field: str) -> tuple[str | None, list[Derived]]:
    """A card field as words, and the derived values it rests on (empty when stated).

    `ages` joins the minimum and maximum age, stated or derived.
    """
    if field == "ages":
        low, low_from = trial.value("min_age_years")
        high, high_from = trial.value("max_age_years")
        sources = [d for d in (low_from, high_from) if d is not None]
        return ages(low, high), list(dict.fromkeys(sources))
    if field == "nct_id" and trial.nct_id is None:
        return None, []
    raw, found = trial.value(field)
    if raw is None or raw == ():
        return None, []
    return value(field, raw), [found] if found else []


def card_lines(trial: Trial) -> list[tuple[str, str, list[Derived]]]:
    """(field, 'Label: value', derived sources) for every field the trial states or derives."""
    lines = []
    for field, label in FIELD_LABELS.items():
        text, sources = field_text(trial, field)
        if field == "nct_id":
            text = trial.nct_id or trial.id
        if text is None:
            continue
        if sources:
            text += " (from " + " and ".join(dict.fromkeys(where(d) for d in sources)) + ")"
        lines.append((field, f"{label}: {text}", sources))
    return lines


def short_name(trial: Trial) -> str:
    """What identifies the trial to a person: its acronym and title; for a page without a
    title, the treatments and disease it studies, else its summary's first words. Record
    words, made inert (rag.citations.inert): a name is written into answers and prompts."""
    return inert(_short_name(trial))


def _short_name(trial: Trial) -> str:
    acronym, _ = trial.value("acronym")
    title = trial.title or trial.official_title
    if title:
        name = " ".join(title.split())
        return (
            f"{acronym}: {name}" if acronym and acronym.casefold() not in name.casefold() else name
        )
    treatments, _ = trial.value("interventions")
    conditions, _ = trial.value("conditions")
    if treatments:
        name = "study of " + " and ".join(treatments)
        named = {t.casefold() for t in treatments}
        disease = next((c for c in conditions or () if c.casefold() not in named), None)
        name += f" in {disease}" if disease else ""
        return f"{acronym}: {name}" if acronym else name
    return shorten(trial.brief_summary or trial.description or trial.id)


NAME_CHARS = 90  # a trial's name in a header or a list line


def shorten(text: str, limit: int = NAME_CHARS) -> str:
    """The text on one line, cut at a word to at most `limit` characters ("…" marks a cut)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def trial_name(trial: Trial) -> str:
    """'NCT04984096 (APEC: Anlotinib Combined With PD-1 Inhibitors for ...)'."""
    return f"{trial.id} ({short_name(trial)})"
