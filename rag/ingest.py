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

import codecs
import json
import os
import re
import stat
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
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
# Over twice the longest of 41,764 real criteria (4,072 characters in ../shared/data).
MAX_CRITERION_CHARS = 10_000
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
            except (ValueError, TypeError, AttributeError, KeyError, RecursionError) as exc:
                # a shape no reader expected: this file is reported, the others go on
                what = " ".join(str(exc).split())[:200]
                reports.append(
                    FileReport(
                        str(file),
                        None,
                        error=f"{file}: unexpected content ({type(exc).__name__}: {what}); "
                        "save the record again from its registry, or report this file",
                    )
                )
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
                    yield Path(root) / name  # a FIFO or socket is refused by read_text
    else:
        yield path


def _ingest(path: Path) -> tuple[str, list[Trial], list[str]]:
    text, warnings = read_text(path)
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        fmt, trials, more = _from_json(text, path)
    elif stripped.startswith("<"):
        trial = _from_xml(text, path)
        fmt, trials, more = "ctgov-xml", [trial], list(trial.warnings)
    else:
        layout = layouts.detect(text)
        trial = layouts.parse_page(text, str(path), layout)
        fmt, trials, more = trial.source.format, [trial], list(trial.warnings)
    bounded = [_bounded(t, more) for t in trials]
    return fmt, [derive(t) for t in bounded], warnings + more


def _bounded(trial: Trial, warnings: list[str]) -> Trial:
    """The trial with each criterion cut to MAX_CRITERION_CHARS, so one runaway line cannot
    take the memory of a whole index build; a warning names each one cut."""
    if all(len(c.text) <= MAX_CRITERION_CHARS for c in trial.criteria):
        return trial
    criteria = []
    for c in trial.criteria:
        if len(c.text) > MAX_CRITERION_CHARS:
            warnings.append(
                f"{trial.id}: criterion {c.id} is {len(c.text):,} characters; only its first "
                f"{MAX_CRITERION_CHARS:,} are kept - check the record's eligibility text"
            )
            start = c.span[0]
            c = replace(
                c, text=c.text[:MAX_CRITERION_CHARS], span=(start, start + MAX_CRITERION_CHARS)
            )
        criteria.append(c)
    return replace(trial, criteria=tuple(criteria))


def read_text(path: Path) -> tuple[str, list[str]]:
    """The file decoded as UTF-8 (BOM or not), else cp1252 with a warning."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a FIFO would block the run forever
            raise IngestError(
                f"{path}: not a regular file (a pipe, socket or device); "
                "copy the record into a file and ingest that"
            )
        size = info.st_size
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
    text, warnings = _decode(path, data)
    # One line ending for every reader ("\r\n" from Windows, "\r" from old Macs), as Python's
    # text files have it; spans are offsets into this text.
    return text.replace("\r\n", "\n").replace("\r", "\n"), warnings


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _decode(path: Path, data: bytes) -> tuple[str, list[str]]:
    for bom, encoding in _BOMS:  # UTF-32 first: its little-endian BOM begins like UTF-16's
        if data.startswith(bom):
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise IngestError(
                    f"{path}: starts with a {encoding.upper()} byte-order mark but is not "
                    f"{encoding.upper()} (byte {exc.start}); save the record again as UTF-8"
                ) from None
            if not text.strip():
                raise IngestError(f"{path}: empty file; remove it or save the record again")
            return text, []
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
    except RecursionError:
        raise IngestError(
            f"{path}: JSON nested too deep to be a trial record; "
            "download the record as JSON from ClinicalTrials.gov"
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
        study = _unbox(study)
        if not isinstance(study, dict) or not isinstance(study.get("protocolSection"), dict):
            warnings.append(f"record {index} skipped: no protocolSection")
            continue
        trial = _study(study["protocolSection"], str(path), fmt)
        trials.append(trial)
        warnings.extend(trial.warnings)
    if not trials:
        raise IngestError(
            f"{path}: JSON holds no ClinicalTrials.gov study (no protocolSection in any record); "
            "download the records as JSON from ClinicalTrials.gov"
        )
    return fmt, trials, warnings


def _unbox(data: Any) -> Any:
    """R's jsonlite writes every value as a list (`"overallStatus": ["COMPLETED"]`): a list of
    one item is read as the item, and a field that holds a list also takes a single item."""
    if isinstance(data, dict):
        return {key: _unbox(value) for key, value in data.items()}
    if isinstance(data, list):
        return _unbox(data[0]) if len(data) == 1 else [_unbox(item) for item in data]
    return data


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _field(data: Any, *keys: str) -> str | None:
    """The text at that path of a record (see _text)."""
    return _text(_get(data, *keys))


def _text(value: Any) -> str | None:
    """A text field's value: a number where text is expected is read as its digits; any other
    type is no value."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _items(items: Any) -> list[Any]:
    return items if isinstance(items, list) else [] if items is None else [items]


def _names(items: Any, key: str) -> tuple[str, ...] | None:
    names = [
        name.strip()
        for item in _items(items)
        if isinstance(item, dict) and (name := _text(item.get(key)))
    ]
    return tuple(n for n in names if n) or None


def _strings(items: Any) -> tuple[str, ...] | None:
    found = [text.strip() for item in _items(items) if (text := _text(item))]
    return tuple(t for t in found if t) or None


_NCT = re.compile(r"NCT\d{8}")


def _nct(value: Any, warnings: list[str]) -> str | None:
    """The NCT number a record states, checked: anything else (an id with line breaks, a
    bare integer) gives the record a derived id, with a warning."""
    if value is None:
        return None
    text = _text(value)
    if text is not None and _NCT.fullmatch(text.strip().upper()):
        return text.strip().upper()
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 10**8:
        return f"NCT{value:08d}"  # the number without its prefix
    shown = " ".join(str(value).split())[:40]
    warnings.append(
        f"nctId {shown!r} is not an NCT number (NCT and 8 digits); a derived id is used"
    )
    return None


def _study(ps: dict[str, Any], path: str, fmt: str) -> Trial:
    warnings: list[str] = []
    ident = ps.get("identificationModule")
    ident = ident if isinstance(ident, dict) else {}
    nct = _nct(ident.get("nctId"), warnings)
    title = _text(ident.get("briefTitle"))
    count = _get(ps, "designModule", "enrollmentInfo", "count")
    if isinstance(count, str) and count.strip().isdigit():
        count = int(count)
    kind = _field(ps, "designModule", "enrollmentInfo", "type")
    enrollment, raw = _count(count, kind)
    officials = _names(_get(ps, "contactsLocationsModule", "overallOfficials"), "name")
    party = _field(ps, "sponsorCollaboratorsModule", "responsibleParty", "investigatorFullName")
    investigators = officials or ((party,) if party else None)
    eligibility = _field(ps, "eligibilityModule", "eligibilityCriteria")
    healthy = _get(ps, "eligibilityModule", "healthyVolunteers")
    trial_id = nct or layouts.make_id(None, {"title": title}, json.dumps(ps, sort_keys=True))
    design = _get(ps, "designModule", "designInfo")
    design = design if isinstance(design, dict) else {}
    return Trial(
        id=trial_id,
        source=Source(path=path, format=fmt),
        nct_id=nct,
        title=title,
        official_title=_text(ident.get("officialTitle")),
        status=normalize.status(_field(ps, "statusModule", "overallStatus")),
        phase=normalize.phase(list(_strings(_get(ps, "designModule", "phases")) or ())),
        study_type=normalize.study_type(_field(ps, "designModule", "studyType")),
        enrollment=enrollment,
        enrollment_raw=raw,
        start_date=normalize.iso_date(_field(ps, "statusModule", "startDateStruct", "date")),
        completion_date=normalize.iso_date(
            _field(ps, "statusModule", "completionDateStruct", "date")
        ),
        min_age_years=normalize.age_years(_field(ps, "eligibilityModule", "minimumAge")),
        max_age_years=normalize.age_years(_field(ps, "eligibilityModule", "maximumAge")),
        sex=normalize.sex(_field(ps, "eligibilityModule", "sex")),
        healthy_volunteers=healthy if isinstance(healthy, bool) else None,
        sponsor=_field(ps, "sponsorCollaboratorsModule", "leadSponsor", "name"),
        collaborators=_names(_get(ps, "sponsorCollaboratorsModule", "collaborators"), "name"),
        investigators=investigators,
        contacts=_names(_get(ps, "contactsLocationsModule", "centralContacts"), "name"),
        conditions=_strings(_get(ps, "conditionsModule", "conditions")),
        interventions=_names(_get(ps, "armsInterventionsModule", "interventions"), "name"),
        primary_outcomes=_names(_get(ps, "outcomesModule", "primaryOutcomes"), "measure"),
        brief_summary=_field(ps, "descriptionModule", "briefSummary"),
        description=_field(ps, "descriptionModule", "detailedDescription"),
        acronym=_text(ident.get("acronym")),
        study_ids=_study_ids(ident),
        keywords=_strings(_get(ps, "conditionsModule", "keywords")),
        allocation=normalize.design("allocation", _text(design.get("allocation"))),
        intervention_model=normalize.design(
            "intervention_model", _text(design.get("interventionModel"))
        ),
        masking=normalize.design("masking", _field(design, "maskingInfo", "masking")),
        primary_purpose=normalize.design("primary_purpose", _text(design.get("primaryPurpose"))),
        observational_model=normalize.design(
            "observational_model", _text(design.get("observationalModel"))
        ),
        time_perspective=normalize.design("time_perspective", _text(design.get("timePerspective"))),
        arms=_names(_get(ps, "armsInterventionsModule", "armGroups"), "label"),
        secondary_outcomes=_names(_get(ps, "outcomesModule", "secondaryOutcomes"), "measure"),
        locations=_places(
            _get(ps, "contactsLocationsModule", "locations"), ("facility", "city", "country")
        ),
        countries=_unique_names(_get(ps, "contactsLocationsModule", "locations"), "country"),
        last_update=normalize.iso_date(
            _field(ps, "statusModule", "lastUpdatePostDateStruct", "date")
        ),
        criteria=tuple(_eligibility(eligibility, trial_id, JSON_FIELD)),
        eligibility_text=eligibility,
        warnings=tuple(warnings),
    )


def _study_ids(ident: dict[str, Any]) -> tuple[str, ...] | None:
    """The sponsor's own id, the secondary ids (other registries, grants) and the NCT numbers
    the trial was also registered under, of an API v2 identification module."""
    own = _field(ident, "orgStudyIdInfo", "id")
    others = _names(ident.get("secondaryIdInfos"), "id") or ()
    aliases = _strings(ident.get("nctIdAliases")) or ()
    found = tuple(dict.fromkeys(([own] if own else []) + list(others) + list(aliases)))
    return found or None


def _places(items: Any, keys: tuple[str, ...]) -> tuple[str, ...] | None:
    """ "Facility, City, Country" for each location dict (the parts it has)."""
    places = [
        ", ".join(str(item[k]).strip() for k in keys if isinstance(item.get(k), str) and item[k])
        for item in _items(items)
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
    warnings: list[str] = []
    nct = _nct(_xml_text(root, "id_info/nct_id"), warnings)
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
        study_ids=_xml_all(
            root, "id_info/org_study_id", "id_info/secondary_id", "id_info/nct_alias"
        ),
        keywords=_xml_all(root, "keyword"),
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
        warnings=tuple(warnings),
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


def _xml_all(root: ET.Element, *paths: str) -> tuple[str, ...] | None:
    found = [
        el.text.strip()
        for path in paths
        for el in root.findall(path)
        if el.text and el.text.strip()
    ]
    return tuple(found) or None


def _unwrap(text: str | None) -> str | None:
    """A hard-wrapped, indented XML textblock -> paragraphs of single-spaced text."""
    if not text or not text.strip():
        return None
    paragraphs = re.split(r"\n\s*\n", text.replace("\r", ""))
    return "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())
