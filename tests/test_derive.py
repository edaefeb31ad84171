"""Fields a record leaves empty but states in its own words, read with the words they come from.

Expected values are read off the seed pages (`cat -n corpus/*.txt`); each derived value must
quote the page exactly, at its span.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.derive import age_limits, derive
from rag.ingest import ingest_file
from rag.types import Criterion, Source, Trial

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


def seed(prefix: str) -> Trial:
    (path,) = CORPUS.glob(f"{prefix}_*.txt")
    (trial,) = ingest_file(path)
    return trial


def derived(trial: Trial) -> dict[str, tuple[object, str, str | None]]:
    return {d.field: (d.value, d.quote, d.criterion_id) for d in trial.derived}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("18~80 years, both men and women.", (18, 80)),  # 001 line 16
        ("Age ≥18 years old and ≤75 years old, regardless of gender;", (18, 75)),  # 004 line 34
        ("The patient is over 18 years old and has an ECOG score of 0-1.", (18, None)),
        ("Male or female patients aged more than 18 years old;", (18, None)),
        ("Between 18 and 75 years of age", (18, 75)),
        ("Aged 18 years or older", (18, None)),
        ("Age: 70 or younger", (None, 70)),
        ("Patients aged 65 and over", (65, None)),
        ("Children 12-17 years", (12, 17)),
        # Not ages: durations, lab values, other units.
        ("Any other malignancy within 5 years", (None, None)),
        ("Disease-free interval of more than 2 years", (None, None)),
        ("Life expectancy: At least 12 weeks", (None, None)),
        ("Age: 18 and over. Hemoglobin at least 10 g/dL", (18, None)),
        ("Creatinine clearance at least 60 mL/min", (None, None)),
    ],
)
def test_age_limits(text: str, expected: tuple[float | None, float | None]) -> None:
    low, high, span = age_limits(text)
    assert (low, high) == expected
    assert (span is None) == (expected == (None, None))


def test_ages_and_sex_from_an_inclusion_criterion() -> None:
    # 001 has empty Sex and Ages headings (lines 9-10); inclusion 4 (line 16) states both.
    found = derived(seed("001"))
    assert found["min_age_years"] == (18.0, "18~80 years", "T-01c13b784d/inclusion/4")
    assert found["max_age_years"] == (80.0, "18~80 years", "T-01c13b784d/inclusion/4")
    assert found["sex"] == ("ALL", "both men and women", "T-01c13b784d/inclusion/4")
    # 004 inclusion 1 (line 34); its gender is stated (line 12), so not derived.
    found = derived(seed("004"))
    assert found["min_age_years"][0] == 18.0 and found["max_age_years"][0] == 75.0
    assert "sex" not in found
    # 003 inclusion 6 (line 69): a lower bound only.
    found = derived(seed("003"))
    assert found["min_age_years"] == (18.0, "over 18 years old", "T-fcd9d254a2/inclusion/6")
    assert "max_age_years" not in found


def test_prose_states_phase_design_treatments_and_disease() -> None:
    # 001 line 7: "a multicenter, single-arm, open-label phase Ⅱ clinical trial of anlotinib
    # combined with sindilimab"; line 5 names the drugs and the disease.
    found = derived(seed("001"))
    assert found["phase"] == ("PHASE2", "phase Ⅱ", None)
    assert found["intervention_model"][:2] == ("SINGLE_GROUP", "single-arm")
    assert found["masking"][:2] == ("NONE", "open-label")
    assert found["interventions"][0] == ("anlotinib", "sindilimab")
    assert found["conditions"][0] == ("advanced esophageal squamous cell carcinoma (ESCC)",)
    # 004 line 3 (title) and line 14 (summary: "A multi-center, open, randomized controlled").
    found = derived(seed("004"))
    assert found["interventions"][0] == ("Chemotherapy", "Camrelizumab", "Radiotherapy")
    assert found["allocation"][0] == "RANDOMIZED"
    assert found["masking"][:2] == ("NONE", "open")
    assert found["conditions"][0] == ("Oligometastatic Esophageal Cancer",)
    # 003 line 14: "intervening with combined local therapy and chemotherapy prior to ...".
    assert derived(seed("003"))["interventions"][0] == ("local therapy", "chemotherapy")
    # 002 line 47: "The APEC study is a multi-center, retrospective ,real-world study".
    assert derived(seed("002"))["acronym"][0] == "APEC"


def test_background_sentences_are_not_this_trials() -> None:
    # 000's description names cisplatin, fluorouracil, irinotecan and "phase I and II studies"
    # as background; only its aim (line 33, last sentence) names what it tests.
    found = derived(seed("000"))
    assert found["interventions"][0] == ("apatinib",)
    assert "phase" not in found  # stated: Phase 2 (line 18)


def test_every_quote_is_the_text_at_its_span() -> None:
    for prefix in ("000", "001", "002", "003", "004"):
        trial = seed(prefix)
        criteria = {c.id: c for c in trial.criteria}
        for d in trial.derived:
            text = criteria[d.criterion_id].text if d.criterion_id else getattr(trial, d.source)
            assert text[d.span[0] : d.span[1]] == d.quote, (trial.id, d.field)


def test_stated_fields_win_and_value_reads_either() -> None:
    criterion = Criterion("T-1/inclusion/1", "inclusion", "Aged 18 to 65 years", (0, 19))
    bare = Trial("T-1", Source("x", "text"), criteria=(criterion,))
    trial = derive(bare)
    value, where = trial.value("min_age_years")
    assert value == 18.0 and where is not None and where.criterion_id == "T-1/inclusion/1"
    assert Trial.from_dict(trial.to_dict()) == trial
    # A record that states either age keeps its own limits: none are mixed in from criteria.
    stated = derive(Trial("T-1", Source("x", "text"), criteria=(criterion,), max_age_years=70))
    assert stated.value("max_age_years") == (70, None)
    assert stated.value("min_age_years") == (None, None)
