"""Normalise field values as registries spell them to one vocabulary.

Status, phase, study type and sex follow ClinicalTrials.gov API v2 enums; dates are ISO
(with only the precision the record gives); ages are years. Anything that cannot be read
returns None: a value is never guessed.
"""

from __future__ import annotations

import re
from datetime import date

_STATUS_ALIASES = {
    "UNKNOWN_STATUS": "UNKNOWN",
    "ACTIVE": "ACTIVE_NOT_RECRUITING",
    "NOT_RECRUITING": "ACTIVE_NOT_RECRUITING",
    "ENROLLING_BY_INVITATION_ONLY": "ENROLLING_BY_INVITATION",
    "WITHDRAWN_BEFORE_ENROLLMENT": "WITHDRAWN",
    "TEMPORARILY_NOT_AVAILABLE": "TEMPORARILY_NOT_AVAILABLE",
}


def _enum(value: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", value.strip().upper()).strip("_")


def status(value: str | None) -> str | None:
    """'Not yet recruiting', 'Unknown status', 'RECRUITING' -> API v2 enum spelling."""
    if not value or not value.strip():
        return None
    key = _enum(value)
    return _STATUS_ALIASES.get(key, key)


_ROMAN = {"I": "1", "II": "2", "III": "3", "IV": "4", "Ⅰ": "1", "Ⅱ": "2", "Ⅲ": "3", "Ⅳ": "4"}
_PHASE_PART = re.compile(
    r"(early\s*phase\s*(?:1|i)\b)|phase\s*([1-4]|iv|iii|ii|i|[ⅠⅡⅢⅣ])(?![a-z0-9])|"
    r"\b(n/?a|not applicable)\b",
    re.IGNORECASE,
)


def phase(value: str | list[str] | None) -> str | None:
    """'Phase II', 'PHASE2', 'Phase 2' -> 'PHASE2'; 'Phase 1/Phase 2' -> 'PHASE1/PHASE2'.

    'N/A' and 'Not Applicable' -> 'NA'. Text with no recognisable phase -> None.
    """
    if value is None:
        return None
    if isinstance(value, list):
        named = [p for p in (phase(v) for v in value) if p]
        return "/".join(dict.fromkeys(named)) or None
    text = value.strip()
    if not text:
        return None
    enum = _enum(text)
    if re.fullmatch(r"(EARLY_)?PHASE[1-4]|NA", enum):
        return enum
    found: list[str] = []
    for m in _PHASE_PART.finditer(text):
        if m.group(1):
            found.append("EARLY_PHASE1")
        elif m.group(2):
            number = _ROMAN.get(m.group(2).upper(), m.group(2))
            found.append(f"PHASE{number}")
        else:
            found.append("NA")
    # "Phase 1/2" names the second phase by number alone.
    tail = re.search(r"phase\s*([1-4]|i{1,3}|iv)\s*/\s*([1-4]|i{1,3}|iv)\b", text, re.IGNORECASE)
    if tail:
        second = tail.group(2).upper()
        found.append(f"PHASE{_ROMAN.get(second, second)}")
    return "/".join(dict.fromkeys(found)) or None


def study_type(value: str | None) -> str | None:
    """'Interventional', 'Observational [Patient Registry]' -> 'INTERVENTIONAL', ..."""
    if not value or not value.strip():
        return None
    head = re.sub(r"\[.*?\]|\(.*?\)", "", value)
    key = _enum(head)
    for known in ("INTERVENTIONAL", "OBSERVATIONAL", "EXPANDED_ACCESS"):
        if key.startswith(known):
            return known
    return key or None


# Design values as registries spell them -> API v2 enums, per field. The legacy XML and the
# registry pages write "Single Group Assignment", "None (Open Label)", "Double-Blind".
_DESIGN_ALIASES: dict[str, dict[str, str]] = {
    "allocation": {"N_A": "NA", "NOT_APPLICABLE": "NA", "NONRANDOMIZED": "NON_RANDOMIZED"},
    "intervention_model": {},
    "masking": {"OPEN": "NONE", "OPEN_LABEL": "NONE", "NO_MASKING": "NONE"},
    "primary_purpose": {"EDUCATIONAL_COUNSELING_TRAINING": "ECT"},
    "observational_model": {"ECOLOGIC": "ECOLOGIC_OR_COMMUNITY"},
    "time_perspective": {},
}


# The values each design field can take (API v2); anything else is not that field's value.
DESIGN_VALUES: dict[str, frozenset[str]] = {
    "allocation": frozenset({"RANDOMIZED", "NON_RANDOMIZED", "NA"}),
    "intervention_model": frozenset(
        {"SINGLE_GROUP", "PARALLEL", "CROSSOVER", "FACTORIAL", "SEQUENTIAL"}
    ),
    "masking": frozenset({"NONE", "SINGLE", "DOUBLE", "TRIPLE", "QUADRUPLE"}),
    "primary_purpose": frozenset(
        {
            "TREATMENT", "PREVENTION", "DIAGNOSTIC", "ECT", "SUPPORTIVE_CARE", "SCREENING",
            "HEALTH_SERVICES_RESEARCH", "BASIC_SCIENCE", "DEVICE_FEASIBILITY", "OTHER",
        }
    ),
    "observational_model": frozenset(
        {
            "COHORT", "CASE_CONTROL", "CASE_ONLY", "CASE_CROSSOVER", "ECOLOGIC_OR_COMMUNITY",
            "FAMILY_BASED", "DEFINED_POPULATION", "NATURAL_HISTORY", "OTHER",
        }
    ),
    "time_perspective": frozenset({"PROSPECTIVE", "RETROSPECTIVE", "CROSS_SECTIONAL", "OTHER"}),
}  # fmt: skip


def design(field: str, value: str | None) -> str | None:
    """A design field's value -> its enum: ('masking', 'None (Open Label)') -> 'NONE',
    ('intervention_model', 'Single Group Assignment') -> 'SINGLE_GROUP'; None for text that
    is no value of that field."""
    if not value or not value.strip():
        return None
    text = value.strip()
    if field == "masking":
        # "Double (Participant, Investigator)", "Double-Blind", "None (Open Label)"
        text = re.sub(r"\(.*?\)|[-\s]?blind(?:ed)?\b", "", text, flags=re.IGNORECASE)
    key = _enum(text)
    if field == "intervention_model":
        key = re.sub(r"_ASSIGNMENT$", "", key)
    key = _DESIGN_ALIASES[field].get(key, key)
    return key if key in DESIGN_VALUES[field] else None


def sex(value: str | None) -> str | None:
    """'All', 'Both', 'Both males and females' -> 'ALL'; 'Female' -> 'FEMALE'."""
    if not value or not value.strip():
        return None
    low = value.strip().lower()
    female = re.search(r"\b(females?|wom[ae]n|girls?)\b", low) is not None
    male = re.search(r"\b(males?|m[ae]n|boys?)\b", low) is not None
    if low in {"all", "both"} or "both" in low or (female and male):
        return "ALL"
    if female:
        return "FEMALE"
    if male:
        return "MALE"
    return None


MONTHS = {
    m: i
    for i, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for m in names
}


def iso_date(value: str | None) -> str | None:
    """'2021-08-01', '2026-09', 'January 2003', 'November 3, 1999' -> ISO at the given precision."""
    if not value or not value.strip():
        return None
    text = value.strip()
    m = re.fullmatch(r"(\d{4})-(\d{1,2})(?:-(\d{1,2}))?", text)
    if m:
        year, month, day = int(m.group(1)), int(m.group(2)), m.group(3)
        return _checked(year, month, int(day) if day else None)
    m = re.fullmatch(r"(\d{4})/(\d{1,2})/(\d{1,2})", text)
    if m:
        return _checked(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    m = re.fullmatch(r"([A-Za-z]+)\.?\s+(?:(\d{1,2}),?\s+)?(\d{4})", text)
    if m and m.group(1).lower() in MONTHS:
        day = int(m.group(2)) if m.group(2) else None
        return _checked(int(m.group(3)), MONTHS[m.group(1).lower()], day)
    m = re.fullmatch(r"(\d{1,2})\s+([A-Za-z]+)\.?,?\s+(\d{4})", text)
    if m and m.group(2).lower() in MONTHS:
        return _checked(int(m.group(3)), MONTHS[m.group(2).lower()], int(m.group(1)))
    return None


def _checked(year: int, month: int, day: int | None) -> str | None:
    try:
        date(year, month, day or 1)
    except ValueError:
        return None
    return f"{year:04d}-{month:02d}" + (f"-{day:02d}" if day else "")


_AGE_UNITS = {
    "year": 1.0,
    "yr": 1.0,
    "month": 1 / 12,
    "week": 7 / 365.25,
    "day": 1 / 365.25,
    "hour": 1 / (365.25 * 24),
    "minute": 1 / (365.25 * 24 * 60),
}
_AGE = re.compile(r"(\d+(?:\.\d+)?)\s*(years?|yrs?|months?|weeks?|days?|hours?|minutes?)?", re.I)


def age_years(value: str | None) -> float | None:
    """'18 Years' -> 18.0, '8 Months' -> 0.6667, 'N/A' -> None."""
    if not value:
        return None
    m = _AGE.search(value)
    if not m:
        return None
    return _years(m.group(1), m.group(2))


def _years(number: str, unit: str | None) -> float:
    factor = 1.0
    if unit:
        key = unit.lower().rstrip("s")
        factor = _AGE_UNITS.get(key, 1.0)
    return round(float(number) * factor, 4)


def age_range(value: str | None) -> tuple[float | None, float | None]:
    """An age phrase of a registry page -> (min years, max years).

    'Between 18 years and 125 years' -> (18, 125); '18 Years and older' -> (18, None);
    '18 - 75 Years' -> (18, 75); 'up to 65 years' -> (None, 65).
    """
    if not value or not value.strip():
        return None, None
    text = value.strip()
    ages = [(m.group(1), m.group(2)) for m in _AGE.finditer(text)]
    if not ages:
        return None, None
    unit = next((u for _, u in reversed(ages) if u), None)
    values = [_years(n, u or unit) for n, u in ages]
    low = text.lower()
    if len(values) >= 2:
        return values[0], values[1]
    if re.search(r"\b(up to|under|below|younger|max|maximum|<|≤)", low):
        return None, values[0]
    return values[0], None


def enrollment(value: str | None) -> int | None:
    """'50 participants', '53 participants in 1 patient group' -> int; placeholders -> None.

    A page's '0' or 'Same as current' is a placeholder, not a count: None (keep the raw text).
    """
    if not value:
        return None
    m = re.match(r"\s*(\d[\d,]*)\b", value)
    if not m:
        return None
    count = int(m.group(1).replace(",", ""))
    return count or None
