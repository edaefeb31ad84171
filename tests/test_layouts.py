"""Other pages of the four seed sites: fields missing, reordered, filled in or cut off."""

from __future__ import annotations

from pathlib import Path

from rag.ingest import ingest_file
from rag.types import Trial

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


def seed(name: str) -> str:
    return next(CORPUS.glob(f"{name}_*.txt")).read_text(encoding="utf-8")


def parse(tmp_path: Path, text: str) -> Trial:
    path = tmp_path / "page.txt"
    path.write_text(text, encoding="utf-8")
    (trial,) = ingest_file(path)
    for c in trial.criteria:
        assert text[c.span[0] : c.span[1]] == c.text
    return trial


def test_overview_page_reordered_with_fields_missing_and_list_cut(tmp_path: Path) -> None:
    page = seed("003")
    details = "Details\nLead Sponsor:\nFudan University\n"
    page = page.replace(details, "")
    page = page.replace("Phase:\nPhase 2\n", "")
    page = page.replace("Target enrollment:\n0\n", "Target enrollment:\n120\n")
    page = page.replace("Status:\n", details + "Trial start date:\n2020-05-01\nStatus:\n", 1)
    page = page[: page.index("5. Patients with uncontrolled brain metastases")]
    trial = parse(tmp_path, page)
    assert trial.source.format == "overview-status"
    assert trial.title == (
        "Local Therapy for Oligorecurrent and Oligometastatic Esophageal Squamous Cell Carcinoma"
    )
    assert (trial.sponsor, trial.status, trial.phase) == ("Fudan University", "RECRUITING", None)
    assert (trial.enrollment, trial.start_date, trial.completion_date) == (
        120,
        "2020-05-01",
        "2024-01-01",
    )
    assert len(trial.criteria_in("inclusion")) == 22
    assert [c.plain[:30] for c in trial.criteria_in("exclusion")][-1] == (
        "If there is a metastasis withi"
    )


def test_basic_information_page_without_nct_and_with_more_fields(tmp_path: Path) -> None:
    page = seed("002").replace("NCT ID: NCT04984096\n", "")
    page = page.replace(" (NCT 04984096)", "")
    page = page.replace(
        "Eligible Sex\n", "Maximum Eligible Age\n\n75 Years\n\nEligible Sex\n"
    ).replace("Study Completion Date\n\n2022-12-31\n\n", "")
    page = page.replace(
        "Study Classification\n\nOBSERVATIONAL\n\n",
        "Study Classification\n\nINTERVENTIONAL\n\nStudy Phase\n\nPHASE2\n\n",
    )
    trial = parse(tmp_path, page)
    assert trial.source.format == "basic-information"
    assert trial.nct_id is None and trial.id.startswith("T-")
    assert (trial.study_type, trial.phase) == ("INTERVENTIONAL", "PHASE2")
    assert (trial.min_age_years, trial.max_age_years, trial.completion_date) == (18, 75, None)
    assert trial.conditions == ("Esophageal Cancer",)
    assert (len(trial.criteria_in("inclusion")), len(trial.criteria_in("exclusion"))) == (5, 6)


def test_status_about_page_with_values_filled_in(tmp_path: Path) -> None:
    page = seed("001").replace(
        "Status\nConditions\nTreatments\nAbout\n",
        "Anlotinib Plus Sintilimab in Second-line ESCC\nStatus\nRecruiting\n"
        "Conditions\nEsophageal Squamous Cell Carcinoma\nTreatments\nDrug: Anlotinib\n"
        "Drug: Sintilimab\nAbout\n",
    )
    page = page.replace(
        "Sex\nAges\nVolunteers\n", "Sex\nAll\nAges\n18 - 80 years\nVolunteers\nNo\n"
    )
    trial = parse(tmp_path, page)
    assert trial.source.format == "status-about"
    assert trial.title == "Anlotinib Plus Sintilimab in Second-line ESCC"
    assert trial.status == "RECRUITING"
    assert trial.conditions == ("Esophageal Squamous Cell Carcinoma",)
    assert trial.interventions == ("Drug: Anlotinib", "Drug: Sintilimab")
    assert (trial.sex, trial.min_age_years, trial.max_age_years) == ("ALL", 18, 80)
    assert trial.healthy_volunteers is False
    assert trial.enrollment == 53
    assert (len(trial.criteria_in("inclusion")), len(trial.criteria_in("exclusion"))) == (15, 18)


def test_recruitment_tracking_page_without_nct(tmp_path: Path) -> None:
    page = seed("000").replace("NCT #\nNCT03913182\n", "")
    page = page.replace("Estimated Enrollment\nSame as current\n", "Actual Enrollment\n64\n")
    page = page.replace("Phase\nPhase 2\n", "")
    trial = parse(tmp_path, page)
    assert trial.source.format == "recruitment-tracking"
    assert trial.nct_id is None and trial.id.startswith("T-")
    assert (trial.enrollment, trial.enrollment_raw, trial.phase) == (64, "64", None)
    assert trial.status == "RECRUITING"
    # Without a title the id comes from the description, so it is the same on every run.
    assert trial.id == parse(tmp_path, page).id
