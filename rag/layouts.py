"""Registry pages saved as text -> Trial, parsed by the layout of the site they came from.

A layout is a table of the labels its site prints on a line of their own ("Recruitment
Status", "Trial end date:"); the text between one label and the next is that label's value.
Pages from the same site with fields missing, reordered or cut short still parse, because
nothing depends on position. Anything no layout recognises becomes a generic record.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from rag import normalize
from rag.criteria import parse_criteria
from rag.types import Criterion, Source, Trial

GENERIC_FORMAT = "text"
NOT_RECOGNISED = "layout not recognised: read as plain text (title = first line)"

_NCT = re.compile(r"\bNCT\s?(\d{8})\b")
_BULLET = re.compile(r"^\s*(?:[-*•·▪●]|\d{1,2}[.)])\s*")
# Section blurbs of the "Basic Information" site ("Review the sponsor-provided synopsis ...").
_BLURB = re.compile(
    r"^(?:Get|Review|Dive|See|Understand|Check|Meet|Identify|Explore|Learn|Find|Discover|View)\b"
    r"[^\n]{20,}\.$"
)
_ROLE = re.compile(r"^(?:Principal Investigator|Study Director|Study Chair|Investigator)\s*:\s*")
_INCLUSION_HEADING = re.compile(
    r"^[ \t]*(?:key\s+)?inclusion(?:\s+criteria)?\s*:?[ \t]*$", re.I | re.M
)


@dataclass(frozen=True, slots=True)
class _Value:
    """The text under one label: text[start:end]."""

    text: str
    start: int
    end: int

    @property
    def value(self) -> str:
        return self.text[self.start : self.end].strip()

    @property
    def lines(self) -> list[str]:
        return [ln.strip() for ln in self.value.splitlines() if ln.strip()]

    @property
    def paragraphs(self) -> list[str]:
        return [p.strip() for p in re.split(r"\n\s*\n", self.value) if p.strip()]


@dataclass(frozen=True, slots=True)
class Layout:
    name: str
    labels: dict[str, str]  # label line (casefolded) -> field key
    inline: dict[str, str]  # "Label:" prefix (casefolded) -> key, value on the same line
    signature: frozenset[str]  # label lines that identify the site
    title_first: bool  # the page opens with the trial title
    blurbs: bool = False  # each section opens with a one-sentence blurb of the site


def _labels(**keys: tuple[str, ...]) -> dict[str, str]:
    return {label.casefold(): key for key, labels in keys.items() for label in labels}


_IGNORE = "_"

LAYOUTS: tuple[Layout, ...] = (
    Layout(
        name="recruitment-tracking",
        labels=_labels(
            status=("Recruitment Status", "Overall Status"),
            enrollment=("Estimated Enrollment", "Actual Enrollment", "Enrollment"),
            brief_summary=("Summary", "Brief Summary"),
            conditions=("Conditions", "Condition"),
            interventions=("Interventions", "Intervention", "Treatments"),
            study_type=("Type", "Study Type"),
            phase=("Phase",),
            ages=("Age", "Ages"),
            sex=("Gender", "Sex"),
            healthy_volunteers=("Accepts Healthy Volunteers", "Healthy Volunteers"),
            criteria=("Criteria", "Eligibility Criteria"),
            description=("Description", "Detailed Description"),
            nct_id=("NCT #", "NCT Number"),
            title=("Brief Title", "Title"),
            official_title=("Official Title",),
            sponsor=("Sponsor", "Lead Sponsor"),
            collaborators=("Collaborators",),
            investigators=("Investigators",),
            start_date=("Start Date", "Study Start Date"),
            completion_date=("Completion Date", "Estimated Completion Date", "Study Completion"),
            primary_outcomes=("Primary Outcome Measures", "Primary Outcomes", "Primary Outcome"),
            secondary_outcomes=("Secondary Outcome Measures", "Secondary Outcomes"),
            design=("Design", "Study Design"),
            acronym=("Acronym",),
            arms=("Arms", "Study Arms", "Arm Groups"),
            last_update=("Last Update Posted Date", "Last Updated"),
            _=(
                "Recruitment",
                "Participation Requirements",
                "Tracking Information",
                "Primary Completion Date",
                "First Submitted Date",
                "Locations",
                "Contacts",
            ),
        ),
        inline={},
        signature=frozenset(
            x.casefold()
            for x in ("Recruitment", "Tracking Information", "NCT #", "Participation Requirements")
        ),
        title_first=False,
    ),
    Layout(
        name="status-about",
        labels=_labels(
            status=("Status",),
            conditions=("Conditions",),
            interventions=("Treatments",),
            brief_summary=("About",),
            description=("Full description",),
            enrollment=("Enrollment",),
            sex=("Sex",),
            ages=("Ages",),
            healthy_volunteers=("Volunteers",),
            criteria=("Inclusion criteria", "Eligibility"),
            sponsor=("Sponsor", "Lead sponsor"),
            primary_purpose=("Primary purpose",),
            allocation=("Allocation",),
            intervention_model=("Interventional model", "Intervention model"),
            masking=("Masking",),
            contacts=("Central trial contact", "Central contact", "Contact"),
            _=(
                "Trial design",
                "Loading...",
                "Trial contacts and locations",
                "Data sourced from clinicaltrials.gov",
                "Clinical trials",
                "Research sites",
                "Resources",
                "Legal",
            ),
        ),
        inline={},
        signature=frozenset(
            x.casefold()
            for x in (
                "About",
                "Full description",
                "Treatments",
                "Volunteers",
                "Data sourced from clinicaltrials.gov",
                "Central trial contact",
            )
        ),
        title_first=True,
    ),
    Layout(
        name="basic-information",
        labels=_labels(
            status=("Recruitment Status",),
            enrollment=("Total Enrollment", "Enrollment"),
            study_type=("Study Classification", "Study Type"),
            phase=("Study Phase", "Phase"),
            start_date=("Study Start Date",),
            completion_date=("Study Completion Date",),
            brief_summary=("Brief Summary",),
            description=("Detailed Description",),
            conditions=("Conditions",),
            interventions=("Interventions", "Treatments"),
            primary_outcomes=("Primary Outcome Measures", "Primary Outcomes", "Outcome Measures"),
            criteria=("Eligibility Criteria",),
            min_age=("Minimum Eligible Age",),
            max_age=("Maximum Eligible Age",),
            sex=("Eligible Sex",),
            healthy_volunteers=("Accepts Healthy Volunteers",),
            sponsors=("Sponsors", "Sponsors and Collaborators"),
            responsible_party=("Responsible Party",),
            official_title=("Official Title",),
            observational_model=("Observational Model Type", "Observational Model"),
            time_perspective=("Study Time Perspective", "Time Perspective"),
            allocation=("Allocation",),
            intervention_model=("Intervention Model",),
            primary_purpose=("Primary Purpose",),
            masking=("Masking",),
            secondary_outcomes=("Secondary Outcome Measures", "Secondary Outcomes"),
            _=(
                "Study Results",
                "Basic Information",
                "Study Design",
                "References",
                "Other Identifiers",
                "Locations",
                "Contacts",
                "Primary Completion Date",
            ),
        ),
        inline={"nct id:": "nct_id", "last updated:": "last_update"},
        signature=frozenset(
            x.casefold()
            for x in (
                "Basic Information",
                "Study Classification",
                "Total Enrollment",
                "Eligible Sex",
                "Minimum Eligible Age",
                "Detailed Description",
            )
        ),
        title_first=True,
        blurbs=True,
    ),
    Layout(
        name="overview-status",
        labels=_labels(
            status=("Status:",),
            start_date=("Trial start date:",),
            completion_date=("Trial end date:",),
            enrollment=("Target enrollment:",),
            sex=("Participant gender:",),
            ages=("Age:", "Participant age:"),
            brief_summary=("Summary",),
            description=("Description",),
            phase=("Phase:",),
            study_type=("Study type:",),
            conditions=("Conditions:", "Condition:"),
            interventions=("Treatments:", "Treatment:", "Interventions:"),
            healthy_volunteers=("Accepts Healthy Volunteers?",),
            sponsor=("Lead Sponsor:",),
            collaborators=("Collaborators:",),
            criteria=("Criteria",),
            nct_id=("NCT ID:", "Trial ID:"),
            _=("Overview", "Details", "Locations", "Contacts"),
        ),
        inline={},
        signature=frozenset(
            x.casefold()
            for x in (
                "Overview",
                "Status:",
                "Trial end date:",
                "Target enrollment:",
                "Participant gender:",
                "Accepts Healthy Volunteers?",
                "Lead Sponsor:",
            )
        ),
        title_first=True,
    ),
)


def detect(text: str) -> Layout | None:
    """The layout whose signature labels the text shows most (at least two), if any."""
    lines = {ln.strip().casefold() for ln in text.splitlines() if ln.strip()}
    best, best_score = None, 1
    for layout in LAYOUTS:
        score = len(layout.signature & lines)
        if score > best_score:
            best, best_score = layout, score
    return best


def parse_page(text: str, path: str, layout: Layout | None) -> Trial:
    """One Trial from a registry page; `layout` None reads it as generic text."""
    if layout is None:
        return _generic(text, path)
    values, title = _values(text, layout)
    fields: dict[str, object] = {}
    for key, reader in _READERS.items():
        if key in values:
            fields.update(reader(values[key]))
    if layout.title_first and title is not None and "title" not in fields:
        fields["title"] = title
    nct = fields.get("nct_id") or _find_nct(text)
    fields["nct_id"] = nct
    trial_id = make_id(nct if isinstance(nct, str) else None, fields, text)
    criteria = _criteria(text, values.get("criteria"), trial_id)
    enrollment_raw = fields.get("enrollment_raw")
    if enrollment_raw is None:
        match = re.search(r"^\s*(\d[\d,]*) participants? in \d+ patient groups?", text, re.M)
        if match:
            fields.update(_enrollment(match.group(0).strip()))
    return Trial(
        id=trial_id,
        source=Source(path=path, format=layout.name),
        criteria=tuple(criteria),
        **fields,  # type: ignore[arg-type]
    )


def make_id(nct_id: str | None, fields: dict[str, object], text: str) -> str:
    """The NCT number, else "T-" + a hash of the title (else summary, else the text).

    The hash folds case and white space, so the id is the same on every run and machine.
    """
    if nct_id:
        return nct_id
    basis = next(
        (v for k in ("title", "official_title", "brief_summary", "description")
         if isinstance(v := fields.get(k), str) and v),
        text,
    )  # fmt: skip
    folded = " ".join(basis.casefold().split())
    return "T-" + hashlib.sha256(folded.encode("utf-8")).hexdigest()[:10]


def _values(text: str, layout: Layout) -> tuple[dict[str, _Value], str | None]:
    """The value under each label of the layout, and the title line if the page opens with one."""
    marks: list[tuple[int, int, str, bool]] = []  # (line start, value start, key, inline)
    title: str | None = None
    pos = 0
    before_values = True  # no label with a value of its own seen yet
    for raw in text.splitlines(keepends=True):
        line = raw.strip()
        folded = line.casefold()
        if line:
            key = layout.labels.get(folded)
            if key is not None:
                # An "Inclusion criteria" label is also the criteria's first heading: keep it.
                keep = key == "criteria" and _INCLUSION_HEADING.fullmatch(line) is not None
                marks.append((pos, pos if keep else pos + len(raw), key, False))
                before_values = before_values and key == _IGNORE
            else:
                for prefix, inline_key in layout.inline.items():
                    if folded.startswith(prefix):
                        offset = raw.casefold().index(prefix) + len(prefix)
                        marks.append((pos, pos + offset, inline_key, True))
                        break
                else:
                    if before_values and title is None and layout.title_first:
                        title = line
        pos += len(raw)
    values: dict[str, _Value] = {}
    for i, (_, value_start, key, inline) in enumerate(marks):
        if key == _IGNORE or key in values:
            continue
        end = marks[i + 1][0] if i + 1 < len(marks) else len(text)
        if inline:
            line_end = text.find("\n", value_start)
            end = len(text) if line_end == -1 else line_end
        start = _skip_blurb(text, value_start, end) if layout.blurbs else value_start
        values[key] = _Value(text, start, end)
    return values, title


def _skip_blurb(text: str, start: int, end: int) -> int:
    """Move past a section's one-sentence blurb when a value follows it."""
    body = text[start:end]
    lead = len(body) - len(body.lstrip())
    para_end = body.find("\n\n", lead)
    if para_end == -1:
        return start
    first = body[lead:para_end].strip()
    if _BLURB.match(first) and body[para_end:].strip():
        return start + para_end
    return start


def _find_nct(text: str) -> str | None:
    match = _NCT.search(text)
    return f"NCT{match.group(1)}" if match else None


def _criteria(text: str, value: _Value | None, trial_id: str) -> list[Criterion]:
    if value is not None:
        return parse_criteria(text, trial_id, start=value.start, end=value.end)
    heading = _INCLUSION_HEADING.search(text)
    if heading is None:
        return []
    return parse_criteria(text, trial_id, start=heading.start())


def _generic(text: str, path: str) -> Trial:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    title = lines[0] if lines else None
    nct = _find_nct(text)
    fields: dict[str, object] = {"title": title}
    trial_id = make_id(nct, fields, text)
    return Trial(
        id=trial_id,
        source=Source(path=path, format=GENERIC_FORMAT),
        nct_id=nct,
        title=title,
        description=text.strip() or None,
        criteria=tuple(_criteria(text, None, trial_id)),
        warnings=(NOT_RECOGNISED,),
    )


# --- readers: one label's value -> Trial fields --------------------------------------------

_Fields = dict[str, object]


def _text(key: str) -> Callable[[_Value], _Fields]:
    def read(value: _Value) -> _Fields:
        paragraphs = value.paragraphs
        if not paragraphs:
            return {}
        # A preview cut with "..." that the full text repeats is not a value of its own.
        if len(paragraphs) > 1 and paragraphs[0].endswith(("...", "…")):
            head = paragraphs[0].rstrip(".… ")
            if paragraphs[1].startswith(head):
                paragraphs = paragraphs[1:]
        return {key: "\n\n".join(paragraphs)}

    return read


def _list(key: str) -> Callable[[_Value], _Fields]:
    def read(value: _Value) -> _Fields:
        items = [_BULLET.sub("", ln).strip() for ln in value.lines]
        items = [i for i in items if i and not _not_provided(i)]
        return {key: tuple(items)} if items else {}

    return read


def _not_provided(value: str) -> bool:
    return value.casefold().rstrip(".") in {"not provided", "none", "n/a", "not applicable", "-"}


def _first_line(key: str, convert: Callable[[str], object]) -> Callable[[_Value], _Fields]:
    def read(value: _Value) -> _Fields:
        lines = value.lines
        if not lines or _not_provided(lines[0]):
            return {}
        converted = convert(lines[0])
        return {key: converted} if converted is not None else {}

    return read


def _enrollment_value(value: _Value) -> _Fields:
    lines = value.lines
    return _enrollment(lines[0]) if lines else {}


def _enrollment(raw: str) -> _Fields:
    return {"enrollment": normalize.enrollment(raw), "enrollment_raw": raw}


def _ages(value: _Value) -> _Fields:
    lines = value.lines
    if not lines:
        return {}
    low, high = normalize.age_range(lines[0])
    return {"min_age_years": low, "max_age_years": high}


def _yes_no(value: _Value) -> _Fields:
    lines = value.lines
    if not lines:
        return {}
    word = lines[0].casefold()
    if word.startswith(("yes", "accepts")):
        return {"healthy_volunteers": True}
    if word.startswith("no"):
        return {"healthy_volunteers": False}
    return {}


def _nct(value: _Value) -> _Fields:
    found = _NCT.search(value.value)
    return {"nct_id": f"NCT{found.group(1)}"} if found else {}


def _investigators(value: _Value) -> _Fields:
    names = [_ROLE.sub("", ln) for ln in value.lines if not _not_provided(ln)]
    return {"investigators": tuple(names)} if names else {}


def _contacts(value: _Value) -> _Fields:
    """ "Jianwei Zhou, Doctor" -> the name; lines of other labels' text are not read."""
    names = [ln.split(",")[0].strip() for ln in value.lines[:1] if not _not_provided(ln)]
    return {"contacts": tuple(names)} if names else {}


def _sponsors(value: _Value) -> _Fields:
    """Name / class / "Sponsor Role lead" blocks of the "Basic Information" site."""
    lead: str | None = None
    collaborators: list[str] = []
    name: str | None = None
    for line in value.lines:
        role = re.match(r"sponsor role\s+(\w+)", line, re.I)
        if role:
            if name and role.group(1).lower() == "lead":
                lead = lead or name
            elif name:
                collaborators.append(name)
            name = None
        elif name is None:
            name = line
    fields: _Fields = {}
    if lead:
        fields["sponsor"] = lead
    if collaborators:
        fields["collaborators"] = tuple(collaborators)
    return fields


def _responsible_party(value: _Value) -> _Fields:
    lines = value.lines
    role = next((ln for ln in lines if ln.lower().startswith("responsibility role")), "")
    if lines and "INVESTIGATOR" in role.upper():
        return {"investigators": (lines[0],)}
    return {}


_DESIGN_KEYS = re.compile(
    r"(Allocation|Intervention Model Description|Intervention Model|Masking Description|Masking|"
    r"Primary Purpose|Observational Model|Time Perspective)\s*:\s*",
    re.IGNORECASE,
)


def _design(value: _Value) -> _Fields:
    """ "Allocation: N/AIntervention Model: Single Group AssignmentMasking: None (Open Label)..."
    (the labels run together on one line) -> the design fields it names."""
    text = " ".join(value.lines)
    marks = list(_DESIGN_KEYS.finditer(text))
    fields: _Fields = {}
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        name = mark.group(1).casefold().replace(" ", "_")
        if name.endswith("_description"):
            continue
        converted = normalize.design(name, text[mark.end() : end])
        if converted is not None:
            fields[name] = converted
    return fields


def _design_field(name: str) -> Callable[[_Value], _Fields]:
    return _first_line(name, lambda text: normalize.design(name, text))


_READERS: dict[str, Callable[[_Value], _Fields]] = {
    "title": _first_line("title", str),
    "official_title": _first_line("official_title", str),
    "nct_id": _nct,
    "status": _first_line("status", normalize.status),
    "phase": _first_line("phase", normalize.phase),
    "study_type": _first_line("study_type", normalize.study_type),
    "enrollment": _enrollment_value,
    "start_date": _first_line("start_date", normalize.iso_date),
    "completion_date": _first_line("completion_date", normalize.iso_date),
    "ages": _ages,
    "min_age": _first_line("min_age_years", normalize.age_years),
    "max_age": _first_line("max_age_years", normalize.age_years),
    "sex": _first_line("sex", normalize.sex),
    "healthy_volunteers": _yes_no,
    "sponsor": _first_line("sponsor", str),
    "sponsors": _sponsors,
    "responsible_party": _responsible_party,
    "collaborators": _list("collaborators"),
    "investigators": _investigators,
    "contacts": _contacts,
    "conditions": _list("conditions"),
    "interventions": _list("interventions"),
    "primary_outcomes": _list("primary_outcomes"),
    "brief_summary": _text("brief_summary"),
    "description": _text("description"),
    "acronym": _first_line("acronym", str),
    "design": _design,
    **{name: _design_field(name) for name in normalize.DESIGN_VALUES},
    "arms": _list("arms"),
    "secondary_outcomes": _list("secondary_outcomes"),
    "last_update": _first_line("last_update", normalize.iso_date),
}
