"""Trial records as users have them -> Trial.

Formats are told apart by content, never by file name:

- ClinicalTrials.gov API v2 JSON: one study, the website's bulk export (an array) or an API
  page (`{"studies": [...], "nextPageToken": ...}`);
- legacy registry XML, one `<clinical_study>` a file;
- registry pages saved as text, by the layout of their site (rag.layouts), else generic text.

A folder is walked recursively and every file tried. A file that cannot be read is reported in
one line naming it and the fix; the rest are still ingested.
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag import layouts, normalize
from rag.criteria import parse_criteria
from rag.derive import derive
from rag.errors import IngestError
from rag.types import Source, Trial

# Far above any single registry record (the largest of 2,271 legacy XML files is under 100 kB),
# so a bigger file is most likely not a record; a bulk export that large should be split.
MAX_FILE_BYTES = 10 * 1024 * 1024
_SNIFF_BYTES = 8192
# Share of control characters above which bytes are not text.
_BINARY_CONTROL_SHARE = 0.05

JSON_FIELD = "protocolSection.eligibilityModule.eligibilityCriteria"
XML_FIELD = "eligibility/criteria/textblock"


@dataclass(frozen=True, slots=True)
class FileReport:
    """What one file gave: its trials and warnings, or the error that stopped it."""

    path: str
    format: str | None
    trials: tuple[Trial, ...] = ()
    warnings: tuple[str, ...] = ()
    error: str | None = None


def ingest_paths(paths: Iterable[Path]) -> list[FileReport]:
    """Every file under the given files and folders, in a stable order, one report each."""
    reports: list[FileReport] = []
    for path in paths:
        for file in _walk(path):
            try:
                fmt, trials, warnings = _ingest(file)
            except IngestError as exc:
                reports.append(FileReport(str(file), None, error=str(exc)))
            else:
                reports.append(FileReport(str(file), fmt, tuple(trials), tuple(warnings)))
    return reports


def ingest_file(path: Path) -> list[Trial]:
    """The trials of one file; raises IngestError naming the file when it cannot be read."""
    return _ingest(path)[1]


def _walk(path: Path) -> Iterator[Path]:
    if path.is_dir():
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if not name.startswith("."):
                    yield Path(root) / name
    else:
        yield path


def _ingest(path: Path) -> tuple[str, list[Trial], list[str]]:
    text, warnings = read_text(path)
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        fmt, trials, more = _from_json(text, path)
    elif stripped.startswith("<"):
        fmt, trials, more = "ctgov-xml", [_from_xml(text, path)], []
    else:
        layout = layouts.detect(text)
        trial = layouts.parse_page(text, str(path), layout)
        fmt, trials, more = trial.source.format, [trial], list(trial.warnings)
    return fmt, [derive(t) for t in trials], warnings + more


def read_text(path: Path) -> tuple[str, list[str]]:
    """The file decoded as UTF-8 (BOM or not), else cp1252 with a warning."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise IngestError(
                f"{path}: file is {size / 1_048_576:.1f} MB, over the "
                f"{MAX_FILE_BYTES // 1_048_576} MB limit for one record file; "
                "split a bulk export into smaller files"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise IngestError(
            f"{path}: cannot read ({exc.strerror or exc}); check the path and its permissions"
        ) from exc
    if not data.strip():
        raise IngestError(f"{path}: empty file; remove it or save the record again")
    if _looks_binary(data[:_SNIFF_BYTES]):
        raise IngestError(f"{path}: binary file, not text; save the record as text, JSON or XML")
    for encoding in ("utf-8-sig", "utf-8"):
        try:
            return data.decode(encoding), []
        except UnicodeDecodeError:
            continue
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
        return text, ["not UTF-8; decoded as Latin-1 - check accented characters"]
    return text, ["not UTF-8; decoded as cp1252 - check accented characters"]


def _looks_binary(head: bytes) -> bool:
    if b"\x00" in head:
        return True
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13))
    return controls > len(head) * _BINARY_CONTROL_SHARE


# --- ClinicalTrials.gov API v2 JSON ---------------------------------------------------------


def _from_json(text: str, path: Path) -> tuple[str, list[Trial], list[str]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IngestError(
            f"{path}: invalid JSON at line {exc.lineno} column {exc.colno} ({exc.msg}); "
            "the file is truncated or corrupt - download it again"
        ) from None
    if isinstance(data, dict) and "protocolSection" in data:
        fmt, studies = "ctgov-v2-study", [data]
    elif isinstance(data, dict) and isinstance(data.get("studies"), list):
        fmt, studies = "ctgov-v2-page", data["studies"]
    elif isinstance(data, list):
        fmt, studies = "ctgov-v2-export", data
    else:
        raise IngestError(
            f"{path}: JSON is not a ClinicalTrials.gov API v2 study, export or page "
            "(no protocolSection); download the record as JSON from ClinicalTrials.gov"
        )
    trials: list[Trial] = []
    warnings: list[str] = []
    for index, study in enumerate(studies):
        if not isinstance(study, dict) or not isinstance(study.get("protocolSection"), dict):
            warnings.append(f"record {index} skipped: no protocolSection")
            continue
        trials.append(_study(study["protocolSection"], str(path), fmt))
    if not trials:
        raise IngestError(
            f"{path}: JSON holds no ClinicalTrials.gov study (no protocolSection in any record); "
            "download the records as JSON from ClinicalTrials.gov"
        )
    return fmt, trials, warnings


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _names(items: Any, key: str) -> tuple[str, ...] | None:
    if not isinstance(items, list):
        return None
    names = [str(item[key]).strip() for item in items if isinstance(item, dict) and item.get(key)]
    return tuple(names) or None


def _strings(items: Any) -> tuple[str, ...] | None:
    if not isinstance(items, list):
        return None
    found = [str(item).strip() for item in items if str(item).strip()]
    return tuple(found) or None


def _study(ps: dict[str, Any], path: str, fmt: str) -> Trial:
    ident = ps.get("identificationModule") or {}
    nct = ident.get("nctId")
    title = ident.get("briefTitle")
    enrollment_info = _get(ps, "designModule", "enrollmentInfo") or {}
    count = enrollment_info.get("count")
    kind = enrollment_info.get("type")
    enrollment, raw = _count(count, kind)
    officials = _names(_get(ps, "contactsLocationsModule", "overallOfficials"), "name")
    party = _get(ps, "sponsorCollaboratorsModule", "responsibleParty", "investigatorFullName")
    investigators = officials or ((party,) if party else None)
    eligibility = _get(ps, "eligibilityModule", "eligibilityCriteria")
    healthy = _get(ps, "eligibilityModule", "healthyVolunteers")
    trial_id = nct or layouts.make_id(None, {"title": title}, json.dumps(ps, sort_keys=True))
    design = _get(ps, "designModule", "designInfo")
    design = design if isinstance(design, dict) else {}
    return Trial(
        id=trial_id,
        source=Source(path=path, format=fmt),
        nct_id=nct,
        title=title,
        official_title=ident.get("officialTitle"),
        status=normalize.status(_get(ps, "statusModule", "overallStatus")),
        phase=normalize.phase(_get(ps, "designModule", "phases")),
        study_type=normalize.study_type(_get(ps, "designModule", "studyType")),
        enrollment=enrollment,
        enrollment_raw=raw,
        start_date=normalize.iso_date(_get(ps, "statusModule", "startDateStruct", "date")),
        completion_date=normalize.iso_date(
            _get(ps, "statusModule", "completionDateStruct", "date")
        ),
        min_age_years=normalize.age_years(_get(ps, "eligibilityModule", "minimumAge")),
        max_age_years=normalize.age_years(_get(ps, "eligibilityModule", "maximumAge")),
        sex=normalize.sex(_get(ps, "eligibilityModule", "sex")),
        healthy_volunteers=healthy if isinstance(healthy, bool) else None,
        sponsor=_get(ps, "sponsorCollaboratorsModule", "leadSponsor", "name"),
        collaborators=_names(_get(ps, "sponsorCollaboratorsModule", "collaborators"), "name"),
        investigators=investigators,
        contacts=_names(_get(ps, "contactsLocationsModule", "centralContacts"), "name"),
        conditions=_strings(_get(ps, "conditionsModule", "conditions")),
        interventions=_names(_get(ps, "armsInterventionsModule", "interventions"), "name"),
        primary_outcomes=_names(_get(ps, "outcomesModule", "primaryOutcomes"), "measure"),
        brief_summary=_get(ps, "descriptionModule", "briefSummary"),
        description=_get(ps, "descriptionModule", "detailedDescription"),
        acronym=ident.get("acronym"),
        allocation=normalize.design("allocation", design.get("allocation")),
        intervention_model=normalize.design("intervention_model", design.get("interventionModel")),
        masking=normalize.design("masking", _get(design, "maskingInfo", "masking")),
        primary_purpose=normalize.design("primary_purpose", design.get("primaryPurpose")),
        observational_model=normalize.design(
            "observational_model", design.get("observationalModel")
        ),
        time_perspective=normalize.design("time_perspective", design.get("timePerspective")),
        arms=_names(_get(ps, "armsInterventionsModule", "armGroups"), "label"),
        secondary_outcomes=_names(_get(ps, "outcomesModule", "secondaryOutcomes"), "measure"),
        locations=_places(
            _get(ps, "contactsLocationsModule", "locations"), ("facility", "city", "country")
        ),
        countries=_unique_names(_get(ps, "contactsLocationsModule", "locations"), "country"),
        last_update=normalize.iso_date(
            _get(ps, "statusModule", "lastUpdatePostDateStruct", "date")
        ),
        criteria=tuple(_eligibility(eligibility, trial_id, JSON_FIELD)),
        eligibility_text=eligibility if isinstance(eligibility, str) else None,
    )


def _places(items: Any, keys: tuple[str, ...]) -> tuple[str, ...] | None:
    """ "Facility, City, Country" for each location dict (the parts it has)."""
    if not isinstance(items, list):
        return None
    places = [
        ", ".join(str(item[k]).strip() for k in keys if isinstance(item.get(k), str) and item[k])
        for item in items
        if isinstance(item, dict)
    ]
    return tuple(dict.fromkeys(p for p in places if p)) or None


def _unique_names(items: Any, key: str) -> tuple[str, ...] | None:
    names = _names(items, key)
    return tuple(dict.fromkeys(names)) if names else None


def _count(count: Any, kind: Any) -> tuple[int | None, str | None]:
    """A structured enrollment; only an actual 0 is a count, any other 0 is a placeholder."""
    if not isinstance(count, int):
        return None, None
    raw = f"{count} ({kind})" if kind else str(count)
    if count == 0 and str(kind).upper() != "ACTUAL":
        return None, raw
    return count, raw


def _eligibility(text: Any, trial_id: str, field_name: str) -> list[Any]:
    if not isinstance(text, str) or not text.strip():
        return []
    return parse_criteria(text, trial_id, field_name=field_name)


# --- legacy registry XML --------------------------------------------------------------------


def _from_xml(text: str, path: Path) -> Trial:
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        line, column = exc.position
        raise IngestError(
            f"{path}: invalid XML at line {line} column {column}; "
            "the file is truncated or corrupt - download it again"
        ) from None
    if root.tag != "clinical_study":
        raise IngestError(
            f"{path}: XML root is <{root.tag}>, not <clinical_study>; "
            "expected a ClinicalTrials.gov legacy XML record"
        )
    nct = _xml_text(root, "id_info/nct_id")
    title = _xml_text(root, "brief_title")
    enrollment_el = root.find("enrollment")
    enrollment, raw = None, None
    if enrollment_el is not None and (enrollment_el.text or "").strip().isdigit():
        enrollment, raw = _count(int(enrollment_el.text or ""), enrollment_el.get("type"))
    criteria_text = root.findtext(XML_FIELD)
    trial_id = nct or layouts.make_id(None, {"title": title}, text)
    healthy = _xml_text(root, "eligibility/healthy_volunteers")
    return Trial(
        id=trial_id,
        source=Source(path=str(path), format="ctgov-xml"),
        nct_id=nct,
        title=title,
        official_title=_xml_text(root, "official_title"),
        status=normalize.status(_xml_text(root, "overall_status")),
        phase=normalize.phase(_xml_text(root, "phase")),
        study_type=normalize.study_type(_xml_text(root, "study_type")),
        enrollment=enrollment,
        enrollment_raw=raw,
        start_date=normalize.iso_date(_xml_text(root, "start_date")),
        completion_date=normalize.iso_date(_xml_text(root, "completion_date")),
        min_age_years=normalize.age_years(_xml_text(root, "eligibility/minimum_age")),
        max_age_years=normalize.age_years(_xml_text(root, "eligibility/maximum_age")),
        sex=normalize.sex(_xml_text(root, "eligibility/gender")),
        healthy_volunteers=None if healthy is None else healthy.lower().startswith("accepts"),
        sponsor=_xml_text(root, "sponsors/lead_sponsor/agency"),
        collaborators=_xml_all(root, "sponsors/collaborator/agency"),
        investigators=_xml_all(root, "overall_official/last_name"),
        contacts=_xml_all(root, "overall_contact/last_name"),
        conditions=_xml_all(root, "condition"),
        interventions=_xml_all(root, "intervention/intervention_name"),
        primary_outcomes=_xml_all(root, "primary_outcome/measure"),
        brief_summary=_unwrap(root.findtext("brief_summary/textblock")),
        description=_unwrap(root.findtext("detailed_description/textblock")),
        acronym=_xml_text(root, "acronym"),
        allocation=_xml_design(root, "allocation"),
        intervention_model=_xml_design(root, "intervention_model"),
        masking=_xml_design(root, "masking"),
        primary_purpose=_xml_design(root, "primary_purpose"),
        observational_model=_xml_design(root, "observational_model"),
        time_perspective=_xml_design(root, "time_perspective"),
        arms=_xml_all(root, "arm_group/arm_group_label"),
        secondary_outcomes=_xml_all(root, "secondary_outcome/measure"),
        locations=_xml_locations(root),
        countries=_xml_all(root, "location_countries/country"),
        last_update=normalize.iso_date(_xml_text(root, "last_update_posted")),
        criteria=tuple(_eligibility(criteria_text, trial_id, XML_FIELD)),
        eligibility_text=criteria_text,
    )


def _xml_design(root: ET.Element, name: str) -> str | None:
    return normalize.design(name, _xml_text(root, f"study_design_info/{name}"))


def _xml_locations(root: ET.Element) -> tuple[str, ...] | None:
    places = []
    for location in root.findall("location/facility"):
        parts = [_xml_text(location, p) for p in ("name", "address/city", "address/country")]
        places.append(", ".join(p for p in parts if p))
    return tuple(dict.fromkeys(p for p in places if p)) or None


def _xml_text(root: ET.Element, path: str) -> str | None:
    value = root.findtext(path)
    return value.strip() if value and value.strip() else None


def _xml_all(root: ET.Element, path: str) -> tuple[str, ...] | None:
    found = [el.text.strip() for el in root.findall(path) if el.text and el.text.strip()]
    return tuple(found) or None


def _unwrap(text: str | None) -> str | None:
    """A hard-wrapped, indented XML textblock -> paragraphs of single-spaced text."""
    if not text or not text.strip():
        return None
    paragraphs = re.split(r"\n\s*\n", text.replace("\r", ""))
    return "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())
