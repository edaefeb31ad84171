"""Every record of ../shared/data ingests, with its structured fields as the record states them.

The expected values are read from each record here with the standard library and mapped by the
tables below, written from the registry's own vocabularies; the parser's code is not used.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from rag.ingest import FileReport, ingest_paths
from rag.types import Trial

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
pytestmark = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"{DATA} is absent: the development corpus lives beside the repo"
)

XML_PHASES = {
    None: None,
    "N/A": "NA",
    "Early Phase 1": "EARLY_PHASE1",
    "Phase 1": "PHASE1",
    "Phase 2": "PHASE2",
    "Phase 3": "PHASE3",
    "Phase 4": "PHASE4",
    "Phase 1/Phase 2": "PHASE1/PHASE2",
    "Phase 2/Phase 3": "PHASE2/PHASE3",
}
XML_STATUSES = {
    "Completed": "COMPLETED",
    "Unknown status": "UNKNOWN",
    "Terminated": "TERMINATED",
    "Withdrawn": "WITHDRAWN",
    "Recruiting": "RECRUITING",
    "Suspended": "SUSPENDED",
    "Active, not recruiting": "ACTIVE_NOT_RECRUITING",
    "Enrolling by invitation": "ENROLLING_BY_INVITATION",
    "No longer available": "NO_LONGER_AVAILABLE",
}
SEXES = {"All": "ALL", "Female": "FEMALE", "Male": "MALE"} | {
    s: s for s in ("ALL", "FEMALE", "MALE")
}
YEARS_PER_UNIT = {
    "year": 1,
    "month": 1 / 12,
    "week": 7 / 365.25,
    "day": 1 / 365.25,
    "hour": 1 / 8766,
    "minute": 1 / 525960,
}


# The legacy XML's design vocabulary -> API v2 enums (ClinicalTrials.gov data element
# definitions), one table per field.
DESIGN: dict[str, dict[str, str]] = {
    "allocation": {"Randomized": "RANDOMIZED", "Non-Randomized": "NON_RANDOMIZED", "N/A": "NA"},
    "intervention_model": {
        "Single Group Assignment": "SINGLE_GROUP",
        "Parallel Assignment": "PARALLEL",
        "Crossover Assignment": "CROSSOVER",
        "Factorial Assignment": "FACTORIAL",
        "Sequential Assignment": "SEQUENTIAL",
    },
    "masking": {
        "None (Open Label)": "NONE",
        "Single": "SINGLE",
        "Double": "DOUBLE",
        "Triple": "TRIPLE",
        "Quadruple": "QUADRUPLE",
    },
    "primary_purpose": {
        "Treatment": "TREATMENT",
        "Prevention": "PREVENTION",
        "Supportive Care": "SUPPORTIVE_CARE",
        "Diagnostic": "DIAGNOSTIC",
        "Health Services Research": "HEALTH_SERVICES_RESEARCH",
        "Educational/Counseling/Training": "ECT",
        "Basic Science": "BASIC_SCIENCE",
        "Screening": "SCREENING",
        "Other": "OTHER",
    },
    "observational_model": {
        "Cohort": "COHORT",
        "Case-Only": "CASE_ONLY",
        "Case-Control": "CASE_CONTROL",
        "Family-Based": "FAMILY_BASED",
        "Natural History": "NATURAL_HISTORY",
        "Defined Population": "DEFINED_POPULATION",
        "Case-Crossover": "CASE_CROSSOVER",
        "Other": "OTHER",
    },
    "time_perspective": {
        "Prospective": "PROSPECTIVE",
        "Retrospective": "RETROSPECTIVE",
        "Cross-Sectional": "CROSS_SECTIONAL",
        "Other": "OTHER",
    },
}


def expected_age(raw: str | None) -> float | None:
    if raw is None or raw.strip() == "N/A":
        return None
    number, unit = raw.split()
    return float(number) * YEARS_PER_UNIT[unit.lower().rstrip("s")]


@pytest.fixture(scope="module")
def reports() -> list[FileReport]:
    return ingest_paths([DATA])


@pytest.fixture(scope="module")
def by_id(reports: list[FileReport]) -> dict[str, Trial]:
    return {t.id: t for r in reports for t in r.trials}


def test_every_record_ingests_without_error(reports: list[FileReport]) -> None:
    assert [r.error for r in reports if r.error] == []
    structured = [
        t for r in reports for t in r.trials if t.source.format in {"ctgov-xml", "ctgov-v2-export"}
    ]
    assert len(structured) == 2521
    assert len({t.id for t in structured}) == 2521
    # The folder's README is no record: it is kept as text, with the warning that says so.
    readme = [r for r in reports if r.path.endswith("README.md")]
    assert readme[0].trials[0].source.format == "text"
    assert "layout not recognised" in readme[0].warnings[0]


def test_every_criterion_span_round_trips(reports: list[FileReport]) -> None:
    checked = 0
    for report in reports:
        for trial in report.trials:
            source = trial.eligibility_text
            for criterion in trial.criteria:
                assert source is not None
                start, end = criterion.span
                assert source[start:end] == criterion.text, criterion.id
                assert criterion.text.strip() == criterion.text, criterion.id
                checked += 1
    assert checked > 30_000


def test_xml_fields_equal_the_records_own(by_id: dict[str, Trial]) -> None:
    files = sorted((DATA / "ctgov-xml").glob("*.xml"))
    assert len(files) == 2271
    for file in files:
        root = ET.parse(file).getroot()
        trial = by_id[root.findtext("id_info/nct_id") or ""]
        assert trial.phase == XML_PHASES[root.findtext("phase")], file.name
        assert trial.status == XML_STATUSES[root.findtext("overall_status") or ""], file.name
        assert trial.sex == SEXES[root.findtext("eligibility/gender") or ""], file.name
        for tag, value in (
            ("minimum_age", trial.min_age_years),
            ("maximum_age", trial.max_age_years),
        ):
            want = expected_age(root.findtext(f"eligibility/{tag}"))
            assert value == pytest.approx(want, abs=0.01), (file.name, tag)
        for name, table in DESIGN.items():
            raw = root.findtext(f"study_design_info/{name}")
            if name == "masking" and raw:
                raw = raw.split(" (")[0] if raw != "None (Open Label)" else raw  # who is masked
            assert getattr(trial, name) == (table[raw] if raw else None), (file.name, name)
        assert trial.acronym == root.findtext("acronym"), file.name
        tags = ("org_study_id", "secondary_id", "nct_alias")
        ids = [e.text for tag in tags for e in root.findall(f"id_info/{tag}") if e.text]
        assert trial.study_ids == (tuple(ids) or None), file.name
        keywords = tuple(k.text for k in root.findall("keyword") if k.text)
        assert trial.keywords == (keywords or None), file.name
        countries = tuple(c.text for c in root.findall("location_countries/country"))
        assert trial.countries == (countries or None), file.name
        arms = tuple(a.text for a in root.findall("arm_group/arm_group_label"))
        assert trial.arms == (arms or None), file.name
        enrollment = root.find("enrollment")
        if enrollment is None:
            assert trial.enrollment is None, file.name
        elif int(enrollment.text or "") == 0 and enrollment.get("type") != "Actual":
            assert trial.enrollment is None and trial.enrollment_raw == "0", file.name
        else:
            assert trial.enrollment == int(enrollment.text or ""), file.name


def _studies() -> list[dict[str, Any]]:
    studies: list[dict[str, Any]] = []
    for file in sorted((DATA / "ctgov-v2").glob("*.json")):
        studies.extend(s["protocolSection"] for s in json.loads(file.read_text()))
    return studies


def test_json_fields_equal_the_records_own(by_id: dict[str, Trial]) -> None:
    studies = _studies()
    assert len(studies) == 250
    for ps in studies:
        nct = ps["identificationModule"]["nctId"]
        trial = by_id[nct]
        phases = ps.get("designModule", {}).get("phases")
        assert trial.phase == ("/".join(phases) if phases else None), nct
        assert trial.status == ps["statusModule"]["overallStatus"], nct
        eligibility = ps["eligibilityModule"]
        assert trial.sex == SEXES.get(eligibility.get("sex", "")), nct
        for key, value in (
            ("minimumAge", trial.min_age_years),
            ("maximumAge", trial.max_age_years),
        ):
            assert value == pytest.approx(expected_age(eligibility.get(key)), abs=0.01), nct
        info = ps.get("designModule", {}).get("enrollmentInfo", {})
        if info.get("count") == 0 and info.get("type") != "ACTUAL":
            assert trial.enrollment is None, nct
        else:
            assert trial.enrollment == info.get("count"), nct
        assert trial.title == ps["identificationModule"]["briefTitle"], nct
        assert trial.sponsor == ps["sponsorCollaboratorsModule"]["leadSponsor"]["name"], nct
        ident = ps["identificationModule"]
        assert trial.acronym == ident.get("acronym"), nct
        ids = [ident["orgStudyIdInfo"]["id"]] if "orgStudyIdInfo" in ident else []
        ids += [i["id"] for i in ident.get("secondaryIdInfos", []) if i["id"] not in ids]
        ids += ident.get("nctIdAliases", [])
        assert trial.study_ids == (tuple(ids) or None), nct
        keywords = ps.get("conditionsModule", {}).get("keywords")
        assert trial.keywords == (tuple(keywords) if keywords else None), nct
        design = ps.get("designModule", {}).get("designInfo", {})
        masking = design.get("maskingInfo", {}).get("masking")
        assert trial.masking == masking, nct
        for name, key in (
            ("allocation", "allocation"),
            ("intervention_model", "interventionModel"),
            ("primary_purpose", "primaryPurpose"),
            ("observational_model", "observationalModel"),
            ("time_perspective", "timePerspective"),
        ):
            assert getattr(trial, name) == design.get(key), (nct, name)
        places = ps.get("contactsLocationsModule", {}).get("locations", [])
        countries = tuple(dict.fromkeys(p["country"] for p in places if p.get("country")))
        assert trial.countries == (countries or None), nct


def test_json_criteria_cover_the_eligibility_text(by_id: dict[str, Trial]) -> None:
    """No criterion text is lost: every list line of the field lands in some criterion."""
    for ps in _studies():
        trial = by_id[ps["identificationModule"]["nctId"]]
        text = ps["eligibilityModule"].get("eligibilityCriteria", "")
        covered = [False] * len(text)
        for criterion in trial.criteria:
            for i in range(*criterion.span):
                covered[i] = True
        for match in re.finditer(r"^\s*(?:\*|\d{1,2}\.)\s+(\S.*)$", text, re.MULTILINE):
            assert covered[match.start(1)], (trial.id, match.group(1)[:60])
        sections = {c.section for c in trial.criteria}
        if re.search(r"^exclusion criteria", text, re.IGNORECASE | re.MULTILINE):
            assert "exclusion" in sections, trial.id
