"""Ground truth for the five seed pages in corpus/.

Every expected value here was read off the pages themselves (`cat -n corpus/*.txt`), never
taken from the parser. Line numbers in comments and in `line(seed, n)` are those of `cat -n`.
Criterion spans are checked against `source.index(...)` of phrases read on the page.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from rag import ingest
from rag.types import Criterion, Trial

CORPUS = Path(__file__).resolve().parent.parent / "corpus"

SEED_FILES: dict[str, str] = {
    "000": "000_2a7767d01ef54209.txt",
    "001": "001_947424ee6a524c8f.txt",
    "002": "002_42162affc4e27ba9.txt",
    "003": "003_3a8d64e594130fed.txt",
    "004": "004_ef499c8e88c3b74e.txt",
}
SEEDS = sorted(SEED_FILES)

SYNTHETIC_ID = re.compile(r"^T-[0-9a-f]{10}$")
PATH_RE = r"[1-9][0-9]*(?:\.[1-9][0-9]*)*"
LIST_MARKER = re.compile(r"^(?:\d+\.|\(\s*\d+\s*\)|[-*•])(?:\s|$)")


# --------------------------------------------------------------------------- helpers


def seed_path(seed: str) -> Path:
    return CORPUS / SEED_FILES[seed]


def source_text(seed: str) -> str:
    return seed_path(seed).read_text(encoding="utf-8")


def line(seed: str, number: int) -> str:
    """Line `number` (1-based, as printed by `cat -n`) of the seed page."""
    return source_text(seed).split("\n")[number - 1]


@cache
def ingest_one(seed: str) -> Trial:
    trials = ingest.ingest_file(seed_path(seed))
    assert isinstance(trials, list)
    assert len(trials) == 1, f"seed {seed}: expected one Trial, got {len(trials)}"
    trial = trials[0]
    assert isinstance(trial, Trial)
    return trial


def criteria_by_id(trial: Trial) -> dict[str, Criterion]:
    ids = [c.id for c in trial.criteria]
    assert len(ids) == len(set(ids)), f"duplicate criterion ids: {ids}"
    return {c.id: c for c in trial.criteria}


def crit(trial: Trial, suffix: str) -> Criterion:
    """The criterion `{trial.id}/{suffix}`, e.g. suffix "inclusion/8.1.3"."""
    found = criteria_by_id(trial)
    key = f"{trial.id}/{suffix}"
    assert key in found, f"missing criterion {key}; have {sorted(found)}"
    return found[key]


def expected_parent(trial_id: str, suffix: str) -> str | None:
    section, path = suffix.split("/")
    if "." not in path:
        return None
    return f"{trial_id}/{section}/{path.rsplit('.', 1)[0]}"


def locate(source: str, start: str, end: str | None = None) -> tuple[int, int]:
    """The span of a criterion that begins with `start` and ends with `end`.

    `start` must occur exactly once on the page; `end` is looked up from `start` on.
    """
    assert source.count(start) == 1, f"anchor not unique on the page: {start!r}"
    begin = source.index(start)
    if end is None:
        return begin, begin + len(start)
    return begin, source.index(end, begin) + len(end)


def counts(trial: Trial, section: str) -> tuple[int, int]:
    """(top-level, total) criteria of one section."""
    items = [c for c in trial.criteria if c.section == section]
    return sum(c.parent is None for c in items), len(items)


def fields_of(trial: Trial, names: dict[str, Any]) -> dict[str, Any]:
    return {name: getattr(trial, name) for name in names}


def has_children(trial: Trial, criterion: Criterion) -> bool:
    return any(c.parent == criterion.id for c in trial.criteria)


# --------------------------------------------------------------------------- expected criteria
# Per seed and section: (path, start phrase, end phrase or None when start is the whole text).

Row = tuple[str, str, str | None]

EXPECTED_CRITERIA: dict[str, dict[str, list[Row]]] = {
    "000": {"inclusion": [], "exclusion": []},
    "001": {
        "inclusion": [
            ("1", "Pathologically (histologically", "mixed type adenosquamous carcinoma )"),
            ("2", "Patients undergoing first-line systemic", "lasted for more than 2 weeks.)"),
            ("3", "At least one measurable/evaluable lesion", "used as a target lesion)."),
            ("4", "18~80 years, both men and women.", None),
            ("5", "Patients who can provide histological specimens for pathological review.", None),
            ("6", "Eastern Cooperative Oncology Group(ECOG) performance status 0 or 1.", None),
            ("7", "Life expectancy of ≥ 12 weeks.", None),
            (
                "8",
                "The main organs function normally, that is, the following criteria are met:",
                None,
            ),
            ("8.1", "Blood routine examination:", None),
            ("8.1.1", "HB≥90g/L;", None),
            ("8.1.2", "ANC ≥ 1.5 × 109 / L;", None),
            ("8.1.3", "PLT ≥ 80 × 109 / L.", None),
            ("8.2", "Biochemical examination:", None),
            ("9", "Women of childbearing potential should agree", "after study is stopped."),
            ("10", "Patients should participate in the study voluntarily", "informed consent."),
        ],
        "exclusion": [
            ("1", "The patients who had or were suffering", "developed rapidly within 3 months."),
            ("2", "Patients with a history of perforation", "before the first medication."),
            ("3", "Patients with a high risk of bleeding", "patients who have formed fistulas."),
            ("4", "Have received any of the following treatments:", None),
            ("5", "A history of immunodeficiency", "a history of organ transplantation."),
            ("6", "The toxicity of previous anti-tumor therapy", "inclusion / exclusion criteria."),
            ("7", "Allergic to monoclonal antibody and anlotinib", None),
            ("8", "Patients with significant malnutrition.", "more than 28 days can be enrolled."),
            ("9", "Patients with any severe and / or uncontrolled disease, include:", None),
            ("9.1", "4 weeks before of enrollment;", "ulcers or fractures."),
            ("10", "Patients with arteriovenous thrombosis", "and pulmonary embolism;"),
            ("11", "The patient has any active autoimmune", "with stable dose of insulin."),
            ("12", "The patient has a history of interstitial", "non infectious pneumonia."),
            ("13", "Patients with active pulmonary tuberculosis", "without regular treatment;"),
            ("14", "Patients with active hepatitis B", "of the analytical method)."),
            (
                "15",
                "According to the judgment of the researcher",
                "collection of experimental data",
            ),
            ("16", "Symptomatic central nervous system metastasis", "are known to exist."),
            ("17", "Pregnant or lactating women.", None),
        ],
    },
    "002": {
        "inclusion": [
            ("1", "Male or female patients aged more than 18 years old;", None),
            ("2", "ECOG PS:0-2;", None),
            (
                "3",
                "Subjects with histologically or cytologically",
                "squamous cell carcinoma(ESCC);",
            ),
            ("4", "For local advanced or advanced ESCC", "lines systemic treatment previously;"),
            ("5", "Have received anlotinib combined with PD-1 inhibitor treatment.", None),
        ],
        "exclusion": [
            ("1", "have used Anlotinib before;", None),
            ("2", "mixed with small cell cancer and/or other kinds of cancer ;", None),
            (
                "3",
                "Previously (within 5 years) or presently suffering from other malignancies;",
                None,
            ),
            ("4", "Symptomatic or uncontrolled brain metastases;", None),
            ("5", "Unstable systemic disease", "serious cardiac arrhythmia requiring medication;"),
            ("6", "Pregnancy or lactation.", None),
        ],
    },
    "003": {
        "inclusion": [
            ("1", "Patients with oligometastatic diseases", "Note:"),
            ("1.1", "Definition of metastasis:", "are not eligible for enrollment."),
            ("1.2", "According to the classification of", "could be enrolled in this trial."),
            ("1.3", "In visceral metastases or non-regional", "obtains pathological confirmation."),
            ("2", "The total number of metastases is 4 or less", "than 5 cm."),
            ("2.1", "Each lesion was counted separately", "can be treated as one lesion."),
            ("2.2", "Lesions that have subsided during", "counted toward the total of 4."),
            ("3", "All metastases of current diagnosis", "ablation before enrollment."),
            ("4", "Previous chemotherapy was allowed", "prior to the start of treatment."),
            ("5", "The measurable lesion was determined", "according to RECIST 1.1."),
            ("6", "The patient is over 18 years old and has an ECOG score of 0-1.", None),
            ("7", "Estimated survival time >12 weeks.", None),
            ("8", "The function of vital organs meets the following requirements:", None),
            ("8.1", "Neutrophil absolute count (ANC) ≥ 1.5 × 10^9 / L", None),
            ("8.2", "platelets ≥ 100 × 10^9 / L;", None),
            ("8.3", "Hemoglobin ≥ 9g / dL;", None),
            ("8.4", "serum albumin ≥ 2.8g / dL;", None),
            ("8.5", "Total bilirubin ≤ 1.5 × ULN", "metastasis AKP ≤ 5 × ULN;"),
            ("8.6", "serum creatinine ≤ 1.5 × ULN or creatinine clearance > 60 mL / min;", None),
            ("8.7", "For patients with pulmonary lesions", "must be above 1L."),
            ("9", "Female subjects of childbearing age", "during the trial."),
            ("10", "The patient is voluntarily enrolled", "his legal representative."),
        ],
        "exclusion": [
            ("1", "Primary tumor of esophagus is confirmed", "previous radiation\nfield."),
            ("2", "The pathological diagnosis of any metastatic", "as a second primary tumor."),
            ("3", "Patients participated in any investigational", "start of treatment."),
            ("4", "If there is a metastasis within 3 months", "metastases is more than 4."),
            ("5", "Patients with uncontrolled brain metastases", "cord compression symptoms."),
            ("6", "The toxicity of previous anti-tumor treatment", "inclusion/exclusion criteria."),
            ("7", "Patients with uncontrolled pleural", "repeated drainage."),
            ("8", "Patients who have received chemotherapy", "within 3 months before enrollment."),
            ("9", "Pregnant or breastfeeding women.", None),
            ("10", "Patients with history of immunodeficiency", "treatment of this study."),
            ("11", "Any other malignant tumor was diagnosed", "cervical cancer in situ."),
            ("12", "The investigator judged that patients", "forced to terminate the study."),
        ],
    },
    "004": {
        "inclusion": [
            ("1", "Age ≥18 years old and ≤75 years old, regardless of gender;", None),
            ("2", "Histologically or cytologically confirmed recurrent", "cell carcinoma;"),
            ("3", "Non-regional lymph node metastasis", "no more than 5 lesions;"),
            ("4", "Patients who have not received other systems", "exceeds 6 months;"),
            ("5", "Patients who have not progressed after receiving", "evaluation standard);"),
            (
                "6",
                "There are measurable lesions according",
                "local treatment such as radiotherapy;",
            ),
            ("7", "ECOG PS score is 0~1;", None),
            ("8", "For non-surgically sterilized female", "within 72 hours before randomization;"),
            ("9", "Volunteer to participate in clinical research", "all trial procedures;"),
            ("10", "Have not received immunotherapy or biological therapy before;", None),
            ("11", "Hemoglobin ≥90g/L, platelets ≥10×10 9 /L", "neutrophil count ≥1.5×10 9 /L;"),
            ("12", "Serum creatinine ≤ 1.5 times UNL;", None),
            ("13", "Serum bilirubin≤1.5×UNL", "phosphatase≤5×UNL;"),
            ("14", "Coagulation function: INR≤1.5 × ULN", "acceptable range of treatment;"),
            ("15", "There was no history of interstitial pneumonia", "interstitial pneumonia."),
        ],
        "exclusion": [
            ("1", "In addition to the systemic treatment", "or checkpoint pathways;"),
            ("2", "Patients have received radiotherapy in the past", "field has progressed;"),
            ("3", "BMI<18.5kg/m 2 , or weight loss >10% within 2 months before screening ;", None),
            ("4", "With brain metastases;", None),
            ("5", "With metastasis of the meninges, pleura or pericardium;", None),
            ("6", "Esophageal perforation and active esophageal", "in the thoracic cavity;"),
            ("7", "Those who confirmed tumor progression", "(RECIST 1.1 standard);"),
            ("8", "Severe symptoms of dysphagia", "to relieve the obstruction;"),
            ("9", "Systemic treatment toxicity did not return", "inclusion/exclusion criteria;"),
            ("10", "Subjects have cardiovascular diseases", "including but not limited to:"),
            ("10.1", "Heart failure above NYHA II;", None),
            ("10.2", "Unstable angina;", None),
            ("10.3", "Myocardial infarction within 1 year;", None),
            ("10.4", "Clinically significant", "or poor control after clinical intervention;"),
            ("11", "Patients with severe lung disease", "interstitial pneumonia:"),
            ("12", "Autoimmune diseases (such as: systemic lupus", "vitiligo, psoriasis);"),
            ("13", "Patients have active hepatitis B", "the analysis method);"),
            ("14", "Suffered from an active infection", "first administration;"),
            ("15", "Patients with active pulmonary tuberculosis", "without formal treatment;"),
            ("16", "Patients with other malignant lesions", "cured ≥ 5 years;"),
            ("17", "Patients who cannot understand the test", "requirements;"),
            ("18", "The investigator believes that some obvious", "study;"),
            (
                "19",
                "The dose limit of radiotherapy cannot meet the limit requirement",
                "set by this study.",
            ),
        ],
    },
}

# Criteria ending with ":" with no children (the list under them is missing on the page).
EXPECTED_TRUNCATED: dict[str, set[str]] = {
    "000": set(),
    "001": {"inclusion/8.2", "exclusion/4"},
    "002": set(),
    "003": set(),
    # Exclusion 11 ends with "interstitial pneumonia:" and nothing follows it (line 112).
    "004": {"exclusion/11"},
}

# (top-level, total) per section.
EXPECTED_COUNTS: dict[str, dict[str, tuple[int, int]]] = {
    "000": {"inclusion": (0, 0), "exclusion": (0, 0)},
    "001": {"inclusion": (10, 15), "exclusion": (17, 18)},
    "002": {"inclusion": (5, 5), "exclusion": (6, 6)},
    "003": {"inclusion": (10, 22), "exclusion": (12, 12)},
    "004": {"inclusion": (15, 15), "exclusion": (19, 23)},
}


# --------------------------------------------------------------------------- per seed


def test_seed_000_recruitment_tracking_layout() -> None:
    trial = ingest_one("000")
    description = line("000", 33)
    assert description.startswith("Esophageal cancer is a common malignant tumor in China")
    assert description.endswith("who had recurrence or metastasis after radical resection.")
    expected: dict[str, Any] = {
        "id": "NCT03913182",
        "nct_id": "NCT03913182",
        "title": None,
        "official_title": None,
        "status": "RECRUITING",
        "phase": "PHASE2",
        "study_type": "INTERVENTIONAL",
        "enrollment": None,
        "enrollment_raw": "Same as current",
        "start_date": None,
        "completion_date": None,
        "min_age_years": 18.0,
        "max_age_years": 125.0,
        "sex": "ALL",
        "healthy_volunteers": None,
        "sponsor": None,
        "collaborators": None,
        "investigators": ("Zhigang Li Shanghai Chest Hospital",),
        "conditions": (
            "Apatinib",
            "Esophageal Squamous Cell Carcinoma",
            "Metastasis",
            "Recurrence",
        ),
        "interventions": None,
        "primary_outcomes": None,
        "brief_summary": None,
        "description": description,
        "criteria": (),
    }
    assert fields_of(trial, expected) == expected
    # The truncated preview (line 31) is neither the summary nor the description.
    assert trial.description is not None and not trial.description.endswith("...")


def test_seed_001_status_about_layout() -> None:
    trial = ingest_one("001")
    source = source_text("001")
    assert SYNTHETIC_ID.match(trial.id), trial.id
    expected: dict[str, Any] = {
        "nct_id": None,
        "title": None,
        "official_title": None,
        # The "Status", "Sex", "Ages", "Volunteers" headings (lines 1, 9-11) carry no value.
        "status": None,
        "phase": None,
        "study_type": None,
        "enrollment": 53,
        "enrollment_raw": "53 participants in 1 patient group",
        "start_date": None,
        "completion_date": None,
        # "18~80 years" is criterion text (inclusion 4), not an age field.
        "min_age_years": None,
        "max_age_years": None,
        "sex": None,
        "healthy_volunteers": None,
        "sponsor": None,
        "collaborators": None,
        "conditions": None,
        "interventions": None,
        "primary_outcomes": None,
        "brief_summary": line("001", 5),
        "description": line("001", 7),
    }
    assert fields_of(trial, expected) == expected
    assert line("001", 5).startswith("The purpose of this study is to observe and evaluate")
    assert line("001", 7).startswith("China is one of the regions with the highest risk")

    assert counts(trial, "inclusion") == (10, 15)
    assert counts(trial, "exclusion") == (17, 18)

    # The nested block under inclusion 8 (lines 20-24).
    organs = crit(trial, "inclusion/8")
    assert organs.text == (
        "The main organs function normally, that is, the following criteria are met:"
    )
    assert organs.parent is None and organs.truncated is False
    blood = crit(trial, "inclusion/8.1")
    assert blood.text == "Blood routine examination:"
    assert blood.parent == organs.id and blood.truncated is False
    assert blood.span[0] == source.index("(1) Blood routine examination:") + len("(1) ")
    for path, text in [
        ("8.1.1", "HB≥90g/L;"),
        ("8.1.2", "ANC ≥ 1.5 × 109 / L;"),
        ("8.1.3", "PLT ≥ 80 × 109 / L."),
    ]:
        item = crit(trial, f"inclusion/{path}")
        assert item.text == text
        assert item.parent == blood.id
        assert item.truncated is False
    biochem = crit(trial, "inclusion/8.2")
    assert biochem.text == "Biochemical examination:"
    assert biochem.parent == organs.id
    assert biochem.truncated is True
    assert biochem.span[0] == source.index("(2) Biochemical examination:") + len("(2) ")
    assert crit(trial, "inclusion/8.1.3").span[1] < biochem.span[0]
    women = crit(trial, "inclusion/9")
    assert women.parent is None
    assert women.text == line("001", 25)

    # "18~80 years" stays a criterion.
    assert crit(trial, "inclusion/4").text == "18~80 years, both men and women."

    # Exclusion 4: the list after it was cut off.
    treatments = crit(trial, "exclusion/4")
    assert treatments.text == "Have received any of the following treatments:"
    assert treatments.parent is None and treatments.truncated is True
    assert not has_children(trial, treatments)
    immuno = crit(trial, "exclusion/5")
    assert immuno.parent is None
    assert immuno.text == line("001", 32)
    assert immuno.text.startswith("A history of immunodeficiency, including a positive HIV test")

    severe = crit(trial, "exclusion/9")
    assert severe.text == "Patients with any severe and / or uncontrolled disease, include:"
    assert severe.truncated is False
    bleeding = crit(trial, "exclusion/9.1")
    assert bleeding.parent == severe.id
    assert bleeding.text == (
        "4 weeks before of enrollment; any sites of bleeding NCI CTC AE grade ≥3, "
        "such as unhealed wounds, ulcers or fractures."
    )
    thrombosis = crit(trial, "exclusion/10")
    assert thrombosis.parent is None
    assert thrombosis.text == line("001", 38)
    last = crit(trial, "exclusion/17")
    assert last.text == "Pregnant or lactating women."
    assert last.span[0] == source.index("Pregnant or lactating women.")

    # Inline "(Note: ...)" on line 14 stays inside inclusion 2; each line is one criterion.
    assert crit(trial, "inclusion/2").text == line("001", 14)
    assert crit(trial, "exclusion/15").text == line("001", 43)


def test_seed_002_basic_information_layout() -> None:
    trial = ingest_one("002")
    source = source_text("002")
    expected: dict[str, Any] = {
        "id": "NCT04984096",
        "nct_id": "NCT04984096",
        "title": (
            "Anlotinib Combined With PD-1 Inhibitors for Advanced/Metastatic Esophageal Cancer"
        ),
        "official_title": None,
        "status": "UNKNOWN",
        "phase": None,
        "study_type": "OBSERVATIONAL",
        "enrollment": 50,
        "enrollment_raw": "50 participants",
        "start_date": "2021-08-01",
        "completion_date": "2022-12-31",
        "min_age_years": 18.0,
        "max_age_years": None,
        "sex": "ALL",
        "healthy_volunteers": False,
        "sponsor": "Shanghai Chest Hospital",
        "collaborators": None,
        "investigators": ("Jun Liu",),
        "conditions": ("Esophageal Cancer",),
        "interventions": None,
        "primary_outcomes": None,
        "brief_summary": (
            "Efficacy and Safety of Anlotinib combined with PD-1 inhibitors as 2 or more lines "
            "treatment for Heavily Pretreated Patients With Advanced, Metastatic Squamous Cell "
            "Carcinoma of the Esophagus."
        ),
        "description": line("002", 47),
    }
    assert fields_of(trial, expected) == expected
    assert line("002", 47).startswith("The APEC study is a multi-center, retrospective")
    # Boilerplate under the headings never leaks into values.
    for value in (trial.brief_summary, trial.description, trial.sponsor, trial.title):
        assert value is not None
        assert "Review the sponsor-provided synopsis" not in value
        assert "Dive into the extended narrative" not in value

    assert counts(trial, "inclusion") == (5, 5)
    assert counts(trial, "exclusion") == (6, 6)
    first = crit(trial, "inclusion/1")
    assert first.text == "Male or female patients aged more than 18 years old;"
    assert first.span == (
        source.index("1. Male or female") + len("1. "),
        source.index("1. Male or female") + len("1. ") + len(first.text),
    )
    assert crit(trial, "inclusion/2").text == "ECOG PS:0-2;"
    assert crit(trial, "inclusion/5").text == (
        "Have received anlotinib combined with PD-1 inhibitor treatment."
    )
    assert crit(trial, "exclusion/1").text == "have used Anlotinib before;"
    assert crit(trial, "exclusion/2").text == (
        "mixed with small cell cancer and/or other kinds of cancer ;"
    )
    # The stray " -" after the last item (line 86) is not part of it.
    pregnancy = crit(trial, "exclusion/6")
    assert pregnancy.text == "Pregnancy or lactation."
    assert pregnancy.span[0] == source.index("Pregnancy or lactation.")
    assert pregnancy.truncated is False
    assert all(c.parent is None for c in trial.criteria)
    assert all("Minimum Eligible Age" not in c.text for c in trial.criteria)


def test_seed_003_overview_layout() -> None:
    trial = ingest_one("003")
    source = source_text("003")
    assert SYNTHETIC_ID.match(trial.id), trial.id
    expected: dict[str, Any] = {
        "nct_id": None,
        "title": (
            "Local Therapy for Oligorecurrent and Oligometastatic "
            "Esophageal Squamous Cell Carcinoma"
        ),
        "official_title": None,
        "status": "RECRUITING",
        "phase": "PHASE2",
        "study_type": None,
        "enrollment": None,
        "enrollment_raw": "0",
        "start_date": None,
        "completion_date": "2024-01-01",
        # "over 18 years old" is criterion text (inclusion 6), not an age field.
        "min_age_years": None,
        "max_age_years": None,
        "sex": "ALL",
        "healthy_volunteers": False,
        "sponsor": "Fudan University",
        "collaborators": None,
        "investigators": None,
        "conditions": None,
        "interventions": None,
        "primary_outcomes": None,
        "brief_summary": (
            "The aim of the study is to determine if intervening with combined local therapy and "
            "chemotherapy prior to chemotherapy alone in patients with oligorecurrent and "
            "oligometastatic esophageal squamous cell carcinoma led to significant improvements "
            "in progression-free survival (PFS)."
        ),
        "description": None,
    }
    assert fields_of(trial, expected) == expected

    assert counts(trial, "inclusion") == (10, 22)
    assert counts(trial, "exclusion") == (12, 12)

    # Inclusion 1 keeps its trailing "Note:" paragraph and owns the three notes.
    first = crit(trial, "inclusion/1")
    assert first.plain == (
        "Patients with oligometastatic diseases and pathologically confirmed esophageal "
        "squamous cell carcinoma after initial radical treatment [i.e., completely resected "
        "surgery or radical (chemo)radiotherapy], the primary esophageal sites are controlled. "
        "Note:"
    )
    assert "\n" in first.text
    assert first.span[0] == source.index("Patients with oligometastatic diseases")
    assert first.span[1] == source.index("Note:") + len("Note:")
    assert first.parent is None and first.truncated is False
    note_1 = crit(trial, "inclusion/1.1")
    assert note_1.parent == first.id
    assert note_1.plain == (
        "Definition of metastasis: patients with distant organ metastases or non-regional "
        "lymph node metastases; or patients with distant organs/non-regional lymph node "
        "metastases and regional lymph node metastases as defined in the eighth edition of "
        "the AJCC. Patients with only regional lymph node metastasis and/or "
        "anastomotic/esophageal recurrence are not eligible for enrollment."
    )
    assert crit(trial, "inclusion/1.3").plain == (
        "In visceral metastases or non-regional lymph node metastases, at least one "
        "metastatic lesion obtains pathological confirmation."
    )

    second = crit(trial, "inclusion/2")
    assert second.plain == (
        "The total number of metastases is 4 or less and maximum 3 metastases in any single "
        "organ system (i.e. lung, liver). The maximum diameter for each lesion should be less "
        "than 5 cm."
    )
    assert crit(trial, "inclusion/2.2").parent == second.id
    third = crit(trial, "inclusion/3")
    assert third.parent is None
    assert third.plain == (
        "All metastases of current diagnosis did not receive local treatment such as "
        "radiotherapy, surgery, radiofrequency ablation before enrollment."
    )

    organs = crit(trial, "inclusion/8")
    assert organs.text == "The function of vital organs meets the following requirements:"
    assert organs.truncated is False
    assert [c.id for c in trial.criteria if c.parent == organs.id] == [
        f"{trial.id}/inclusion/8.{n}" for n in range(1, 8)
    ]
    assert crit(trial, "inclusion/8.1").text == "Neutrophil absolute count (ANC) ≥ 1.5 × 10^9 / L"
    assert crit(trial, "inclusion/8.2").text == "platelets ≥ 100 × 10^9 / L;"
    assert crit(trial, "inclusion/8.7").plain == (
        "For patients with pulmonary lesions or previous lung irradiation who are known or "
        "suspected to have impaired lung function, the forced expiratory volume (FEV1) for "
        "1 second of lung function must be above 1L."
    )
    assert crit(trial, "inclusion/9").parent is None
    assert crit(trial, "inclusion/10").plain == (
        "The patient is voluntarily enrolled and obtained the informed consent form signed by "
        "the patient or his legal representative."
    )

    assert crit(trial, "exclusion/9").text == "Pregnant or breastfeeding women."
    last = crit(trial, "exclusion/12")
    assert last.plain == (
        "The investigator judged that patients could not cooperate with the treatment, or have "
        "other factors that might cause him to be forced to terminate the study."
    )
    assert last.span[1] == len(source)  # the page ends with this item, no newline
    assert all(c.parent is None for c in trial.criteria_in("exclusion"))


def test_seed_004_overview_layout_with_collaborators() -> None:
    trial = ingest_one("004")
    source = source_text("004")
    assert SYNTHETIC_ID.match(trial.id), trial.id
    expected: dict[str, Any] = {
        "nct_id": None,
        "title": (
            "A Multicenter, Randomized Controlled, Phase II Clinical Study of First-line "
            "Chemotherapy and Camrelizumab With or Without Radiotherapy in the Treatment of "
            "Oligometastatic Esophageal Cancer"
        ),
        "official_title": None,
        "status": "NOT_YET_RECRUITING",
        "phase": "PHASE2",
        "study_type": None,
        "enrollment": None,
        "enrollment_raw": "0",
        "start_date": None,
        "completion_date": "2025-12-01",
        # "Age ≥18 years old and ≤75 years old" is criterion text (inclusion 1).
        "min_age_years": None,
        "max_age_years": None,
        "sex": "ALL",
        "healthy_volunteers": False,
        "sponsor": "Zhejiang Cancer Hospital",
        "collaborators": (
            "Huizhou Municipal Central Hospital",
            "Jinhua Municipal Central Hospital Medical Group",
            "Lishui Municipal Central Hospital",
            "People's Hospital of Quzhou",
            "Sun Yet-sen Cancer Center",
            "The Affiliated People's hospital of Ningbo Univercity",
            "The First Affiliated Hospital of Wenzhou Medical Univercity",
            "Zhejiang Provincial People's Hospital",
        ),
        "investigators": None,
        "conditions": None,
        "interventions": None,
        "primary_outcomes": None,
        "brief_summary": (
            "A multi-center, open, randomized controlled, phase II clinical study to evaluate the "
            "efficiency and safety of chemotherapy and immunotherapy combined with locol "
            "radiotharepy in treatment of patients with oligometastatic esophageal carcinoma."
        ),
        "description": None,
    }
    assert fields_of(trial, expected) == expected

    assert counts(trial, "inclusion") == (15, 15)
    assert counts(trial, "exclusion") == (19, 23)
    assert crit(trial, "inclusion/1").text == (
        "Age ≥18 years old and ≤75 years old, regardless of gender;"
    )
    assert crit(trial, "inclusion/15").text == (
        "There was no history of interstitial pneumonia or previous interstitial pneumonia."
    )

    # Exclusion 10 with its inline "(1) ...; (2) ...; (3) ...; ( 4) ..." enumeration.
    cardio = crit(trial, "exclusion/10")
    assert cardio.plain == (
        "Subjects have cardiovascular diseases or clinical symptoms that are not well "
        "controlled, including but not limited to:"
    )
    assert cardio.span == (
        source.index("Subjects have cardiovascular diseases"),
        source.index("including but not limited to:") + len("including but not limited to:"),
    )
    assert cardio.parent is None and cardio.truncated is False
    children = [
        ("10.1", "Heart failure above NYHA II;", "(1) Heart failure", "(1) "),
        ("10.2", "Unstable angina;", "(2)\nUnstable angina;", "(2)\n"),
        ("10.3", "Myocardial infarction within 1 year;", "(3) Myocardial", "(3) "),
    ]
    for path, text, anchor, marker in children:
        child = crit(trial, f"exclusion/{path}")
        assert child.text == text
        assert child.parent == cardio.id
        assert child.truncated is False
        assert child.span[0] == source.index(anchor) + len(marker)
    fourth = crit(trial, "exclusion/10.4")
    assert fourth.parent == cardio.id
    assert fourth.plain == (
        "Clinically significant supraventricular tachycardia or ventricular arrhythmia without "
        "clinical intervention, or poor control after clinical intervention;"
    )
    assert fourth.span[0] == source.index("( 4) Clinically significant") + len("( 4) ")

    lung = crit(trial, "exclusion/11")
    assert lung.parent is None
    assert lung.plain == (
        "Patients with severe lung disease, interstitial pneumonia, or previous history of "
        "interstitial pneumonia:"
    )
    assert crit(trial, "exclusion/3").text == (
        "BMI<18.5kg/m 2 , or weight loss >10% within 2 months before screening ;"
    )
    last = crit(trial, "exclusion/19")
    assert last.text == (
        "The dose limit of radiotherapy cannot meet the limit requirement set by this study."
    )
    assert last.span == (len(source) - len(last.text), len(source))


# --------------------------------------------------------------------------- cross seed


@pytest.mark.parametrize("seed", SEEDS)
def test_criteria_ids_spans_parents_and_truncation(seed: str) -> None:
    """Every criterion of every page: exact id set, span (hence text), parent, truncated."""
    trial = ingest_one(seed)
    source = source_text(seed)
    found = criteria_by_id(trial)
    expected_ids: set[str] = set()
    for section, rows in EXPECTED_CRITERIA[seed].items():
        for path, start, end in rows:
            suffix = f"{section}/{path}"
            cid = f"{trial.id}/{suffix}"
            expected_ids.add(cid)
            assert cid in found, f"missing {cid}"
            c = found[cid]
            assert c.section == section
            assert c.field == "file"
            assert c.span == locate(source, start, end), cid
            assert c.parent == expected_parent(trial.id, suffix), cid
            assert c.truncated is (suffix in EXPECTED_TRUNCATED[seed]), cid
    assert set(found) == expected_ids
    for section, expected in EXPECTED_COUNTS[seed].items():
        assert counts(trial, section) == expected, section


@pytest.mark.parametrize("seed", SEEDS)
def test_criteria_round_trip_and_clean_text(seed: str) -> None:
    trial = ingest_one(seed)
    source = seed_path(seed).read_text(encoding="utf-8")
    for c in trial.criteria:
        assert c.field == "file"
        start, end = c.span
        assert 0 <= start < end <= len(source)
        assert source[start:end] == c.text, c.id
        assert c.text == c.text.strip(), c.id
        assert not c.text.endswith(" -"), c.id
        assert not LIST_MARKER.match(c.text), c.id
        assert c.plain == " ".join(c.text.split())
        assert not re.match(r"(?i)(inclusion|exclusion) criteria:?$", c.plain), c.id


@pytest.mark.parametrize("seed", SEEDS)
def test_criterion_id_scheme_and_parent_links(seed: str) -> None:
    trial = ingest_one(seed)
    found = criteria_by_id(trial)
    pattern = re.compile(rf"^{re.escape(trial.id)}/(inclusion|exclusion)/({PATH_RE})$")
    for c in trial.criteria:
        match = pattern.match(c.id)
        assert match, c.id
        assert match.group(1) == c.section
        assert c.parent == expected_parent(trial.id, f"{c.section}/{match.group(2)}")
        if c.parent is not None:
            assert c.parent in found
            parent = found[c.parent]
            assert parent.section == c.section
            assert parent.span[1] <= c.span[0]  # a child follows its parent's own text
    # Ordinals among siblings run 1..n without gaps.
    siblings: dict[tuple[str, str | None], list[int]] = {}
    for c in trial.criteria:
        siblings.setdefault((c.section, c.parent), []).append(
            int(c.id.rsplit("/", 1)[1].split(".")[-1])
        )
    for key, ordinals in siblings.items():
        assert sorted(ordinals) == list(range(1, len(ordinals) + 1)), key


@pytest.mark.parametrize("seed", SEEDS)
def test_truncated_only_for_childless_colon_items(seed: str) -> None:
    trial = ingest_one(seed)
    for c in trial.criteria:
        expected = c.text.endswith(":") and not has_children(trial, c)
        assert c.truncated is expected, c.id


@pytest.mark.parametrize("seed", SEEDS)
def test_criterion_spans_do_not_overlap(seed: str) -> None:
    spans = sorted(c.span for c in ingest_one(seed).criteria)
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert end <= start


@pytest.mark.parametrize("seed", SEEDS)
def test_ingest_is_deterministic(seed: str) -> None:
    first = ingest.ingest_file(seed_path(seed))
    second = ingest.ingest_file(seed_path(seed))
    assert [t.id for t in first] == [t.id for t in second]
    assert [c.id for t in first for c in t.criteria] == [c.id for t in second for c in t.criteria]
    assert first == second


def test_trial_ids() -> None:
    trials = {seed: ingest_one(seed) for seed in SEEDS}
    assert trials["000"].id == "NCT03913182"
    assert trials["002"].id == "NCT04984096"
    for seed in ("001", "003", "004"):
        assert SYNTHETIC_ID.match(trials[seed].id), (seed, trials[seed].id)
        assert trials[seed].nct_id is None
    assert len({t.id for t in trials.values()}) == len(SEEDS)


def test_sources() -> None:
    trials = {seed: ingest_one(seed) for seed in SEEDS}
    for seed, trial in trials.items():
        assert Path(trial.source.path).resolve() == seed_path(seed).resolve()
        assert isinstance(trial.source.format, str) and trial.source.format
    # 003 and 004 share a layout; the other three pages each have their own.
    assert trials["003"].source.format == trials["004"].source.format
    formats = {trials[s].source.format for s in ("000", "001", "002", "003")}
    assert len(formats) == 4


def test_design_and_update_fields_as_the_pages_state_them() -> None:
    # 000 line 20: "Allocation: N/AIntervention Model: Single Group Assignment...Masking: None
    # (Open Label)...Primary Purpose: Treatment" (the labels run together on one line).
    trial = ingest_one("000")
    assert (trial.allocation, trial.intervention_model, trial.masking, trial.primary_purpose) == (
        "NA",
        "SINGLE_GROUP",
        "NONE",
        "TREATMENT",
    )
    # 002 lines 5, 61-67: "Last Updated: 2021-07-30", CASE_CONTROL, RETROSPECTIVE.
    trial = ingest_one("002")
    assert (trial.observational_model, trial.time_perspective, trial.last_update) == (
        "CASE_CONTROL",
        "RETROSPECTIVE",
        "2021-07-30",
    )
    assert trial.allocation is None and trial.masking is None
    # 001 lines 46-49: the design headings are empty; the participant count after them
    # (line 50) is no masking.
    trial = ingest_one("001")
    assert (trial.primary_purpose, trial.allocation, trial.intervention_model, trial.masking) == (
        None,
        None,
        None,
        None,
    )
