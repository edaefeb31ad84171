"""Generate field questions, with their answers, from structured trial records.

The expected answers are read straight from each record (ClinicalTrials.gov API v2 JSON or
legacy registry XML) by the small readers here, never from rag.ingest: a parser bug must
show up as a wrong answer, not be copied into the ground truth.

Per trial: phase, status, enrollment, sponsor, age limits, sex, start and completion dates,
conditions and interventions, each asked several ways and naming the trial by NCT number
or by its title; questions about a field the record leaves out expect the "does not state
this" abstention. Over the corpus: "which trials ..." questions on sponsor, condition,
intervention, phase and status, whose expected answer is every trial whose record matches.
"""

from __future__ import annotations

import json
import random
import re
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.errors import RagError

_STATUS_TEXT = {
    "NOT_YET_RECRUITING": "Not yet recruiting",
    "RECRUITING": "Recruiting",
    "ENROLLING_BY_INVITATION": "Enrolling by invitation",
    "ACTIVE_NOT_RECRUITING": "Active, not recruiting",
    "SUSPENDED": "Suspended",
    "TERMINATED": "Terminated",
    "COMPLETED": "Completed",
    "WITHDRAWN": "Withdrawn",
    "UNKNOWN": "Unknown status",
}
_SEX_WORDS = {
    "all": ["all", "both", "men and women", "male and female", "any sex"],
    "female": ["female", "women"],
    "male": ["male", "men"],
}


@dataclass(frozen=True, slots=True)
class Record:
    """The fields of one record as the registry wrote them (None: not in the record)."""

    nct_id: str
    title: str
    phases: tuple[str, ...]  # e.g. ("Phase 1", "Phase 2"); empty when absent or N/A
    status: str | None
    enrollment: int | None
    sponsor: str | None
    min_age: str | None  # "18 Years"
    max_age: str | None
    sex: str | None  # All, Female, Male
    start_date: str | None
    completion_date: str | None
    conditions: tuple[str, ...]
    interventions: tuple[str, ...]
    path: str
    arms: tuple[str, ...] = ()  # arm group labels ("Arm A: mitomycin C + radiotherapy")
    official_title: str = ""


def read_records(paths: Iterable[Path]) -> Iterator[Record]:
    """Every study in the JSON and XML files under `paths` (other files are skipped)."""
    for root in paths:
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for path in files:
            if path.suffix.lower() == ".json":
                yield from _json_records(path)
            elif path.suffix.lower() == ".xml":
                record = _xml_record(path)
                if record is not None:
                    yield record


def _json_records(path: Path) -> Iterator[Record]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return
    studies = data.get("studies", [data]) if isinstance(data, dict) else data
    for study in studies if isinstance(studies, list) else []:
        section = study.get("protocolSection") if isinstance(study, dict) else None
        if isinstance(section, dict):
            yield _json_record(section, str(path))


def _json_record(s: dict[str, Any], path: str) -> Record:
    def get(*keys: str) -> Any:
        value: Any = s
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    phases = tuple(
        p.replace("EARLY_PHASE", "Early Phase ").replace("PHASE", "Phase ")
        for p in get("designModule", "phases") or []
        if p != "NA"
    )
    status = get("statusModule", "overallStatus")
    count = get("designModule", "enrollmentInfo", "count")
    return Record(
        nct_id=get("identificationModule", "nctId"),
        title=get("identificationModule", "briefTitle") or "",
        phases=phases,
        status=_STATUS_TEXT.get(status, status) if status else None,
        enrollment=count if isinstance(count, int) and count > 0 else None,
        sponsor=get("sponsorCollaboratorsModule", "leadSponsor", "name"),
        min_age=get("eligibilityModule", "minimumAge"),
        max_age=get("eligibilityModule", "maximumAge"),
        sex=(get("eligibilityModule", "sex") or "").title() or None,
        start_date=get("statusModule", "startDateStruct", "date"),
        completion_date=get("statusModule", "completionDateStruct", "date"),
        conditions=tuple(get("conditionsModule", "conditions") or ()),
        interventions=tuple(
            i["name"]
            for i in get("armsInterventionsModule", "interventions") or ()
            if i.get("name")
        ),
        path=path,
        arms=tuple(
            a["label"] for a in get("armsInterventionsModule", "armGroups") or () if a.get("label")
        ),
        official_title=get("identificationModule", "officialTitle") or "",
    )


def _xml_record(path: Path) -> Record | None:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    if root.tag != "clinical_study":
        return None

    def text(tag: str) -> str | None:
        value = root.findtext(tag)
        return " ".join(value.split()) if value and value.strip() else None

    def age(tag: str) -> str | None:
        value = text(f"eligibility/{tag}")
        return None if value in (None, "N/A") else value

    phase = text("phase")
    count = text("enrollment")
    return Record(
        nct_id=text("id_info/nct_id") or "",
        title=text("brief_title") or "",
        phases=tuple(phase.split("/")) if phase and phase != "N/A" else (),
        status=text("overall_status"),
        enrollment=int(count) if count and count.isdigit() and int(count) > 0 else None,
        sponsor=text("sponsors/lead_sponsor/agency"),
        min_age=age("minimum_age"),
        max_age=age("maximum_age"),
        sex=text("eligibility/gender"),
        start_date=text("start_date"),
        completion_date=text("completion_date"),
        conditions=tuple(" ".join((c.text or "").split()) for c in root.findall("condition")),
        interventions=tuple(
            " ".join((i.text or "").split()) for i in root.findall("intervention/intervention_name")
        ),
        path=str(path),
        arms=tuple(
            " ".join((a.text or "").split()) for a in root.findall("arm_group/arm_group_label")
        ),
        official_title=text("official_title") or "",
    )


# --- questions ---------------------------------------------------------------------------------

_FIELDS: dict[str, tuple[str, ...]] = {
    "phase": (
        "What phase is {t}?",
        "Which phase of clinical development is {t} in?",
        "Tell me the trial phase of {t}.",
    ),
    "status": (
        "What is the recruitment status of {t}?",
        "Is {t} still recruiting?",
        "What is the current status of {t}?",
    ),
    "enrollment": (
        "How many participants does {t} enroll?",
        "What is the enrollment of {t}?",
        "How many patients are in {t}?",
    ),
    "sponsor": (
        "Who sponsors {t}?",
        "Who is the lead sponsor of {t}?",
        "Which organisation is the sponsor of {t}?",
    ),
    "min_age": (
        "What is the minimum age for {t}?",
        "How old must participants be to join {t}?",
        "What is the youngest age allowed in {t}?",
    ),
    "max_age": (
        "What is the maximum age for {t}?",
        "What is the upper age limit of {t}?",
        "How old can participants in {t} be at most?",
    ),
    "sex": (
        "Which sex can enroll in {t}?",
        "Does {t} enroll men, women or both?",
        "What gender is eligible for {t}?",
    ),
    "start_date": (
        "When did {t} start?",
        "What is the start date of {t}?",
        "When does {t} begin?",
    ),
    "completion_date": (
        "What is the completion date of {t}?",
        "When is {t} expected to be completed?",
        "When does {t} end?",
    ),
    "conditions": (
        "What conditions does {t} study?",
        "Which diseases is {t} about?",
        "What condition is {t} for?",
    ),
    "interventions": (
        "What interventions does {t} test?",
        "Which treatments are given in {t}?",
        "What intervention is studied in {t}?",
    ),
}
_UNSTATED = ("enrollment", "start_date", "completion_date")
_WHICH: dict[str, tuple[str, ...]] = {
    "sponsor": (
        "Which trials are sponsored by {v}?",
        "List the studies whose lead sponsor is {v}.",
        "Which studies does {v} sponsor?",
    ),
    "condition": (
        "Which trials study {v}?",
        "Which trials are for patients with {v}?",
        "List the trials on {v}.",
    ),
    "intervention": (
        "Which trials test {v}?",
        "Which studies give {v}?",
        "List the trials of {v}.",
    ),
    "phase-condition": (
        "Which {p} trials study {v}?",
        "List the {p} studies of {v}.",
    ),
    "status-condition": (
        "Which {s} trials study {v}?",
        "List the {s} studies of {v}.",
    ),
}
# Values registries put where a name goes that name nothing to ask about.
_NOT_NAMES = frozenset({"no intervention", "none", "other", "not applicable", "n/a", "control"})
MAX_LIST = 8  # longest condition/intervention list asked for, and most trials a "which" expects
_YEARS = re.compile(r"^\d+(?:\.\d+)? Years?$")


def _field_values(record: Record, name: str) -> list[str | list[str]] | None:
    """The expected `contains` values for one field, or None when the record has none."""
    if name == "phase":
        return list(record.phases) or None
    if name == "status":
        return [record.status] if record.status else None
    if name == "enrollment":
        return [str(record.enrollment)] if record.enrollment else None
    if name == "sponsor":
        return [record.sponsor] if record.sponsor else None
    if name in ("min_age", "max_age"):
        age = getattr(record, name)
        return [age] if age and _YEARS.match(age) else None
    if name == "sex":
        words = _SEX_WORDS.get((record.sex or "").lower())
        return [words] if words else None
    if name in ("start_date", "completion_date"):
        value = getattr(record, name)
        return [value] if value else None
    values = list(dict.fromkeys(getattr(record, name)))
    return list(values) if values and len(values) <= MAX_LIST else None


def generate(
    paths: Iterable[Path], *, n: int = 600, seed: int = 0, which_share: float = 0.15
) -> list[dict[str, Any]]:
    """About `n` questions over the records under `paths`, the same for the same seed."""
    records = list(read_records(paths))
    if not records:
        raise RagError("No JSON or XML trial records found; point the generator at them")
    by_id: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        if record.nct_id:
            by_id[record.nct_id].append(record)
    single = [rs[0] for rs in by_id.values() if len(rs) == 1]
    rng = random.Random(seed)
    rng.shuffle(single)
    titles = Counter(r.title.lower() for r in records)
    which = _which_questions(by_id, rng, round(n * which_share))
    unstated = _unstated_questions(single, rng, round(n * 0.05), titles)
    fields = _field_questions(single, rng, n - len(which) - len(unstated), titles)
    questions = fields + unstated + which
    for number, question in enumerate(questions, start=1):
        question["id"] = f"g{number:04d}"
    return [{"id": q.pop("id"), **q} for q in questions]


def _name(record: Record, rng: random.Random, titles: Counter[str]) -> str:
    """The trial as a user names it: by NCT number, or by its (unique) title one time in five."""
    if rng.random() < 0.2 and record.title and titles[record.title.lower()] == 1:
        return f'the trial "{record.title}"'
    return record.nct_id


def _field_questions(
    records: list[Record], rng: random.Random, n: int, titles: Counter[str]
) -> list[dict[str, Any]]:
    """Fields in turn, each asked of the next record that states it; every field starts at
    another point of the (shuffled) records so that the questions spread over trials."""
    names = list(_FIELDS)
    queues = []
    for turn, name in enumerate(names):
        start = turn * len(records) // len(names)
        order = records[start:] + records[:start]
        queues.append([(r, name) for r in order if _field_values(r, name) is not None])
    questions: list[dict[str, Any]] = []
    while len(questions) < n and any(queues):
        for queue in queues:
            if not queue or len(questions) >= n:
                continue
            record, field_name = queue.pop(0)
            values = _field_values(record, field_name)
            template = rng.choice(_FIELDS[field_name])
            questions.append(
                {
                    "question": template.format(t=_name(record, rng, titles)),
                    "category": field_name,
                    "expected": {"contains": values},
                    "cite": [f"{record.nct_id}/card"],
                    "note": f"{record.path}: {field_name} = {values}",
                }
            )
    return questions


def _unstated_questions(
    records: list[Record], rng: random.Random, n: int, titles: Counter[str]
) -> list[dict[str, Any]]:
    questions: list[dict[str, Any]] = []
    for record in records:
        missing = [f for f in _UNSTATED if getattr(record, f) is None]
        if not missing or len(questions) >= n:
            continue
        field_name = rng.choice(missing)
        template = rng.choice(_FIELDS[field_name])
        questions.append(
            {
                "question": template.format(t=_name(record, rng, titles)),
                "category": "unstated",
                "expected": {"abstain": "not_stated"},
                "cite": [],
                "note": f"{record.path}: no {field_name}",
            }
        )
    return questions


def _which_questions(
    by_id: dict[str, list[Record]], rng: random.Random, n: int
) -> list[dict[str, Any]]:
    """'Which trials ...' over one field (or a phase or status and a condition), expecting
    every trial whose record matches; values whose duplicate records disagree are skipped."""
    candidates: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for records in by_id.values():
        record = records[0]
        if record.sponsor:
            candidates["sponsor"].append((record.sponsor, "", ""))
        for condition in record.conditions:
            candidates["condition"].append((condition, "", ""))
            if record.phases:
                candidates["phase-condition"].append((condition, record.phases[-1], ""))
            if record.status:
                candidates["status-condition"].append((condition, "", record.status))
        for intervention in record.interventions:
            candidates["intervention"].append((intervention, "", ""))
    kinds = list(_WHICH)
    questions: list[dict[str, Any]] = []
    asked: set[tuple[str, str, str, str]] = set()
    for kind in kinds:
        rng.shuffle(candidates[kind])
    turn = 0
    exhausted: set[str] = set()
    while len(questions) < n and len(exhausted) < len(kinds):
        kind = kinds[turn % len(kinds)]
        turn += 1
        if kind in exhausted:
            continue
        while candidates[kind]:
            value, phase, status = candidates[kind].pop()
            if (
                (kind, value.lower(), phase, status) in asked
                or len(value) < 4
                or value.lower() in _NOT_NAMES
            ):
                continue
            asked.add((kind, value.lower(), phase, status))
            expected = _matching(by_id, kind, value, phase, status)
            if expected is None or not 1 <= len(expected) <= MAX_LIST:
                continue
            if kind in ("sponsor", "condition", "intervention") and len(expected) < 2:
                continue
            template = rng.choice(_WHICH[kind])
            questions.append(
                {
                    "question": template.format(v=value, p=phase.lower(), s=(status or "").lower()),
                    "category": f"which-{kind}",
                    "expected": {"trials": sorted(expected)},
                    "cite": [f"{t}/card" for t in sorted(expected)],
                    "support": [value],
                    "note": f"records whose {kind.replace('-', ' and ')} match {value!r}",
                }
            )
            break
        else:
            exhausted.add(kind)
    return questions


def _matching(
    by_id: dict[str, list[Record]], kind: str, value: str, phase: str, status: str
) -> set[str] | None:
    """Ids of the trials whose records match; None if two records of one trial disagree.

    A value matches as a phrase the way a person asking means it: punctuation aside
    ("Attention-deficit/Hyperactivity Disorder" is "Attention Deficit Hyperactivity
    Disorder"), singular or plural ("Solid Tumors" is said of "Solid Tumor"), a disease's
    words for the same thing ("cancer", "carcinoma", "neoplasm", "tumor") and a few words
    between its own ("Metastatic Cancer" is said of "Metastatic Breast Cancer"). Treatments
    are the listed interventions and arm labels; a record that lists no conditions (or no
    treatments) is read for them in its titles, as a person reading it would.
    """
    wanted = _words(value)

    def holds(texts: Iterable[str]) -> bool:
        return any(_in_order(wanted, _words(t)) for t in texts)

    def hit(record: Record) -> bool:
        titles = (record.title, record.official_title)
        if kind == "sponsor":
            return (record.sponsor or "").lower() == value.lower()
        if kind == "intervention":
            listed = record.interventions + record.arms
            return holds(listed) if record.interventions else holds(titles)
        if phase and phase not in record.phases:
            return False
        if status and record.status != status:
            return False
        return holds(record.conditions) if record.conditions else holds(titles)

    found = set()
    for nct_id, records in by_id.items():
        verdicts = {hit(r) for r in records}
        if len(verdicts) > 1:
            return None
        if verdicts.pop():
            found.add(nct_id)
    return found


def _fold(text: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", text.casefold()).split())


_DISEASE = frozenset("cancer carcinoma neoplasm tumor tumour malignancy malignancie".split())
_GAP = 2  # words allowed between two words of a phrase


def _words(text: str) -> tuple[str, ...]:
    singular = (w[:-1] if len(w) > 3 and w.endswith("s") else w for w in _fold(text).split())
    return tuple("cancer" if w in _DISEASE else w for w in singular)


def _in_order(phrase: tuple[str, ...], words: tuple[str, ...]) -> bool:
    """The phrase's words in the text, in order, at most _GAP other words apart."""
    if not phrase:
        return False
    starts = [i for i, w in enumerate(words) if w == phrase[0]]
    for at in starts:
        for wanted in phrase[1:]:
            nearby = words[at + 1 : at + 2 + _GAP]
            if wanted not in nearby:
                break
            at += 1 + nearby.index(wanted)
        else:
            return True
    return False


def write_set(questions: list[dict[str, Any]], path: Path, meta: dict[str, Any]) -> Path:
    """The questions as an eval set file, meta line first, replaced in one step."""
    lines = [json.dumps({"meta": meta}, ensure_ascii=False)]
    lines += [json.dumps(q, ensure_ascii=False) for q in questions]
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text("\n".join(lines) + "\n", encoding="utf-8")
    partial.replace(path)
    return path
