"""Typed criteria (rag.facts): measured against hand-labelled real criteria, and the readings a
verdict depends on, table by table. No model is needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag import evaluation, store
from rag.citations import parse_verdicts
from rag.cli import app
from rag.facts import type_criterion, viral_loads
from rag.llm.base import Passage
from rag.types import Chunk
from rag.understand import Patient, Question
from rag.verdicts import check_verdict, decide_concepts
from tests.conftest import CORPUS

SET = Path(__file__).resolve().parents[1] / "eval" / "typed_criteria.jsonl"
# Precision and recall on eval/typed_criteria.jsonl (a ratchet: raise them as the typing
# improves; issue 11 asks for 0.9 on limits and 0.85 on concepts and directions). First
# scored: concepts .78/.84, directions .63/.71, limits .875/.80.
FLOORS = {
    ("concepts", "precision"): 0.89,
    ("concepts", "recall"): 0.92,
    ("directions", "precision"): 0.85,
    ("directions", "recall"): 0.88,
    ("limits", "precision"): 0.97,
    ("limits", "recall"): 0.93,
}


def test_the_labelled_set_holds_150_real_criteria_from_seeds_and_shared_data() -> None:
    rows = [json.loads(line) for line in SET.read_text().splitlines()]
    cases = [r for r in rows if "meta" not in r]
    assert len(cases) >= 150
    assert {c["from"] for c in cases} == {"seed", "shared"}
    assert sum(bool(c["expected"]["exceptions"]) for c in cases) >= 15
    assert sum(any(x["what"] == "washout" for x in c["expected"]["limits"]) for c in cases) >= 10


def test_typed_facts_hold_their_precision_and_recall() -> None:
    scores = evaluation.typed_scores(SET)
    for (part, measure), floor in FLOORS.items():
        assert scores[part][measure] >= floor, (part, measure, scores[part])


def _mentions(section: str, text: str) -> set[tuple[str, str]]:
    return {(m.concept, m.direction) for m in type_criterion("c", section, text).mentions}


@pytest.mark.parametrize(
    ("section", "text", "expected"),
    [
        # the section and a negation decide the direction
        ("inclusion", "Documented EGFR exon 19 deletion or L858R mutation", {("egfr_mutation", "required")}),
        ("inclusion", "EGFR, ALK gene wild type;", {("egfr_mutation", "excluded"), ("alk_rearrangement", "excluded")}),
        ("exclusion", "NSCLC without known ALK rearrangements", {("alk_rearrangement", "required")}),
        ("inclusion", "No prior EGFR TKI therapy", {("egfr_tki", "excluded")}),
        ("exclusion", "Prior treatment with an anti-PD-1 or anti-PD-L1 antibody", {("pd1_pdl1", "excluded")}),
        # the drug is a treatment, not the mutation it targets
        ("exclusion", "Previous treatment with osimertinib", {("egfr_tki", "excluded")}),
        # allowances and carve-outs let the concept in
        ("inclusion", "Patients with treated, stable brain metastases are eligible", {("brain_metastases", "allowed")}),
        ("inclusion", "Progression after platinum chemotherapy (with or without anti-PD-1 agents)", {("chemotherapy", "required"), ("pd1_pdl1", "allowed")}),
        ("inclusion", "Patients who have received prior radiotherapy must have completed it 4 weeks before", {("radiotherapy", "allowed")}),
        # 'not limited to' is no negation
        ("exclusion", "Prior immunotherapy, including but not limited to anti-CTLA-4 antibodies", {("checkpoint_inhibitor", "excluded")}),
        # the study's own drug is not a treatment the patient had
        ("inclusion", "Women must use contraception until 5 months after the final dose of atezolizumab", set()),
        # 'not progressed after X': X was had; a prohibition listed as an exclusion excludes
        ("inclusion", "Patients who have not progressed after receiving 4 courses of chemotherapy", {("chemotherapy", "required")}),
        ("exclusion", "Patient must not be pregnant or brest feeding.", {("pregnancy", "excluded"), ("breastfeeding", "excluded")}),
        # a washout excludes only the recent; a treatment one may get is no history
        ("inclusion", "At least 4 weeks since prior radiotherapy", {("radiotherapy", "excluded")}),
        ("inclusion", "Not suitable for surgical resection", set()),
        # "not allowed" excludes in either section; a negation stops at the list item's end
        ("exclusion", "Prior anti-PD-1 therapy is not allowed.", {("pd1_pdl1", "excluded")}),
        ("exclusion", "Patients who cannot swallow tablets or have active HIV", {("hiv", "excluded")}),
        ("exclusion", "Uncontrolled pleural effusion; patients without active infection are eligible", {("infection", "excluded")}),
        ("exclusion", "Active hepatitis B infection, regardless of HBV DNA level", {("hepatitis_b", "excluded")}),
        # untreated is no prior therapy; a treatment received is no treatment of a disease
        ("inclusion", "Previously untreated, histologically confirmed NSCLC", {("systemic_therapy", "excluded")}),
        ("inclusion", "Tyrosine Kinase Inhibitor (TKI) treatment naïve.", set()),
        ("inclusion", "Must have not received any cancer treatment for at least 2 weeks.", {("systemic_therapy", "excluded")}),
        # 'non-infectious' names a kind of pneumonitis, not its absence; the steroids it
        # required treated it and are no trait of their own
        ("exclusion", "History of (non-infectious) pneumonitis that required steroids", {("pneumonitis", "excluded")}),
        # spellings and lists of the viral hepatitides
        ("exclusion", "Chronic hepatitis type B or type C infection", {("hepatitis_b", "excluded"), ("hepatitis_c", "excluded")}),
        ("exclusion", "Known active viral hepatitis", {("hepatitis_b", "excluded"), ("hepatitis_c", "excluded")}),
        ("exclusion", "Active infection including hepatitis B, C or HIV, which makes the patient unsuitable to participate in the study", {("infection", "excluded"), ("hepatitis_b", "excluded"), ("hepatitis_c", "excluded"), ("hiv", "excluded")}),
        # "could not rule out" is suspected, not absent
        ("exclusion", "Imaging at screening that could not rule out interstitial pneumonia", {("interstitial_lung_disease", "excluded")}),
        # a lesion spared is on the lesion's terms; conditions set for those who have it
        ("inclusion", "At least one measurable lesion has not been subjected to irradiation", {("radiotherapy", "allowed")}),
        ("inclusion", "For patients with chronic HBV infection, the HBV viral load must be undetectable", {("hepatitis_b", "allowed")}),
        ("inclusion", "Patients with a history of HCV infection must have been treated and cured", {("hepatitis_c", "allowed")}),
        ("inclusion", "Patients who received radiochemotherapy must have finished it more than 6 months ago", {("chemotherapy", "allowed"), ("radiotherapy", "allowed")}),
        # the study's drug or surgery, and drugs given into a cavity, are no prior therapy
        ("exclusion", "Intrapleural antineoplastic agents given for pleurodesis", set()),
        ("inclusion", "Last menstrual period less than 1 year before surgery", set()),
        ("exclusion", "Prior therapy with an antibody-drug conjugate", {("systemic_therapy", "excluded")}),
        # a carve-out ends with its aside, or where the criterion names whom it excludes next
        ("exclusion", "Patients with primary nephrotic syndrome other than membranous nephropathy, and patients with secondary nephrotic syndrome caused by autoimmune disease", {("autoimmune_disease", "excluded")}),
        ("inclusion", "Measurable disease (bone lesions alone are not measurable, unless they have grown) No CNS metastases", {("brain_metastases", "excluded")}),
        # a risk of it, a vaccine against it, or the disease a treatment was for is no trait
        ("exclusion", "At high risk for HIV infection", set()),
        ("exclusion", "Any vaccine within 2 weeks before HIV immunizations", set()),
        ("inclusion", "No prior radiotherapy for brain metastases", {("radiotherapy", "excluded")}),
        # examples of a required therapy are each optional; a drug named with its kind is one
        ("inclusion", "Progressed after at least one prior therapy (e.g., chemotherapy or radiotherapy)", set()),
        ("inclusion", "Received prior PD-1 immune checkpoint inhibitor treatment", {("pd1_pdl1", "required")}),
        # the drugs' short names; "IPI" is a prognostic index, not ipilimumab
        ("exclusion", "Prior pembro or nivo", {("pd1_pdl1", "excluded")}),
        ("exclusion", "Prior nivolumab; IPI score of 3 or more", {("pd1_pdl1", "excluded")}),
        ("exclusion", "Prior CPI therapy", {("checkpoint_inhibitor", "excluded")}),
        # a receptor's expression is no mutation
        ("inclusion", "Tumour with EGFR overexpression by immunohistochemistry", set()),
    ],
)  # fmt: skip
def test_concepts_and_directions(section: str, text: str, expected: set[tuple[str, str]]) -> None:
    assert _mentions(section, text) == expected


def test_an_observational_study_names_its_patients_treatment() -> None:
    """An observational study gives no treatment of its own: the one its inclusion names is
    what its patients are on."""
    text = "Immunocheckpoint-therapy for malignant disease"
    assert ("checkpoint_inhibitor", "required") not in _mentions("inclusion", text)
    typed = type_criterion("c", "inclusion", text, observational=True)
    assert ("checkpoint_inhibitor", "required") in {
        (m.concept, m.direction) for m in typed.mentions
    }


def test_an_alternative_history_keeps_active_from_narrowing() -> None:
    typed = type_criterion(
        "c", "exclusion", "Any active autoimmune disease or a history of autoimmune disease "
        "(such as interstitial pneumonia, colitis)",
    )  # fmt: skip
    ild = next(m for m in typed.mentions if m.concept == "interstitial_lung_disease")
    assert "active" not in ild.qualifiers


def test_qualifiers_narrow_and_exceptions_carve_back() -> None:
    typed = type_criterion(
        "c",
        "exclusion",
        "Active autoimmune disease requiring systemic treatment in the past 2 years, except "
        "vitiligo or hypothyroidism on replacement",
    )
    (mention,) = typed.mentions
    assert mention.concept == "autoimmune_disease"
    assert {"active", "requiring_treatment", "except"} <= {
        q.split(":")[0] for q in mention.qualifiers
    }
    assert "requiring systemic treatment" in mention.condition
    assert "except vitiligo or hypothyroidism on replacement" in mention.condition
    text = "Untreated active hepatitis B (HBsAg positive and HBV DNA ≥ 500 IU/mL)"
    hbv = type_criterion("c", "exclusion", text).mentions[0]
    assert "DNA ≥ 500 IU/mL" in hbv.condition
    # a carve-out narrows what its own clause excludes, not what an earlier clause does
    hiv, autoimmune = type_criterion(
        "c", "exclusion", "HIV; autoimmune disease except vitiligo"
    ).mentions
    assert "except" not in hiv.qualifiers and "except" in autoimmune.qualifiers
    # a qualifier after a naming and past a list's "or" belongs to the later item
    ild, pneumonitis = type_criterion(
        "c", "exclusion", "History of pulmonary fibrosis, or evidence of active pneumonitis"
    ).mentions
    assert "active" not in ild.qualifiers and "active" in pneumonitis.qualifiers
    # the carve-out's words stay in the carve-out: the chest radiotherapy excluded is not
    # "palliative", the palliative radiotherapy let in is not "within 6 months"
    chest, palliative = type_criterion(
        "c",
        "exclusion",
        "Radiotherapy to the chest within 6 months, except palliative radiotherapy to bone",
    ).mentions
    assert (chest.direction, palliative.direction) == ("excluded", "allowed")
    assert "site: palliative" not in chest.qualifiers
    assert not any(q.startswith("within") for q in palliative.qualifiers)
    # a treatment named for a lesion lets the patient in on the lesion's terms
    (rt,) = type_criterion(
        "c", "inclusion", "Sites treated by radiotherapy should not be considered measurable"
    ).mentions
    assert (rt.direction, "lesion" in rt.qualifiers) == ("allowed", True)


@pytest.mark.parametrize(
    ("section", "text", "expected"),
    [
        ("inclusion", "ECOG performance status 0-1", {("ecog", ">=", 0.0), ("ecog", "<=", 1.0)}),
        ("inclusion", "ECOG performance status less than or equal to 2", {("ecog", ">=", 0.0), ("ecog", "<=", 2.0)}),
        # a score with its direction after it, a bound in words before the scale's name
        ("exclusion", "ECOG performance status of 2 or more.", {("ecog", ">=", 0.0), ("ecog", "<=", 1.0)}),
        ("inclusion", "Performance status: less than or equal to ECOG 2.", {("ecog", ">=", 0.0), ("ecog", "<=", 2.0)}),
        ("inclusion", "Performance status: At least 3 months Life expectancy: ECOG 0-2", {("ecog", ">=", 0.0), ("ecog", "<=", 2.0)}),
        ("exclusion", "Platelets < 100 × 10^9/L", {("platelets", ">=", 100.0)}),
        ("inclusion", "Platelet count greater than 100,000/mm3", {("platelets", ">", 100000.0)}),
        ("inclusion", "Bilirubin no greater than 1.5 mg/dL", {("bilirubin", "<=", 1.5)}),
        ("inclusion", "Aged 18-75 years", {("age", ">=", 18.0), ("age", "<=", 75.0)}),
        ("inclusion", "Karnofsky 60-100%", {("karnofsky", ">=", 60.0), ("karnofsky", "<=", 100.0)}),
        ("exclusion", "Chemotherapy within 4 weeks before the first dose", {("washout", ">=", 4.0)}),
        # how long a treatment was given is no washout; a lab's aside is stepped over; the
        # EGFR gene is no kidney function
        ("inclusion", "Has received at least 3 months of EGFR-TKI therapy", set()),
        ("inclusion", "At least 28 days must have elapsed since chemotherapy", {("washout", ">=", 28.0)}),
        ("inclusion", "Hemoglobin (without transfusion over the last 2 weeks) ≥ 9 g/dL", {("hemoglobin", ">=", 9.0)}),
        ("inclusion", "EGFR exon 19 deletion, with at least 1 prior EGFR TKI", set()),
        ("inclusion", "eGFR ≥ 50 mL/min", {("creatinine_clearance", ">=", 50.0)}),
        # an excluded age read the eligible way round, its strictness kept
        ("exclusion", "Age < 18 years", {("age", ">=", 18.0)}),
        ("exclusion", "Aged 75 or older", {("age", "<", 75.0)}),
        ("inclusion", "Age: 21 and under", {("age", "<=", 21.0)}),
        # an operator wrapped over two lines; ECOG stays out of another field's numbers
        ("inclusion", "Karnofsky greater\r\n   than or equal to 60 percent", {("karnofsky", ">=", 60.0)}),
        ("inclusion", "Performance status: Not specified Hematopoietic: WBC greater than 3,500/mm3", {("wbc", ">", 3500.0)}),
        ("inclusion", "No patients with a life expectancy of less than 12 weeks", {("life_expectancy", ">=", 12.0)}),
        ("inclusion", "No chemotherapy within past 4 weeks", {("washout", ">=", 4.0)}),
        # an age range after the word age needs no unit; a field "Not specified" has no bound
        ("inclusion", "Age 18-60.", {("age", ">=", 18.0), ("age", "<=", 60.0)}),
        ("inclusion", "Life expectancy: Not specified Hematopoietic: CD34+ at least 4 million/kg", set()),
    ],
)  # fmt: skip
def test_numeric_limits_read_the_eligible_way_round(
    section: str, text: str, expected: set[tuple[str, str, float]]
) -> None:
    assert {(x.what, x.op, x.value) for x in type_criterion("c", section, text).limits} == expected


def test_viral_loads_are_read_with_their_unit() -> None:
    # "104 copy number / ml" is 10^4 with its superscript lost in copying
    assert viral_loads("HBV-DNA ≥ 104 copy number / ml or 2000 IU / ml") == [
        (10000.0, "copies"),
        (2000.0, "iu"),
    ]
    assert viral_loads("HBV-DNA 3500 IU/mL, 50,000 copies/ml, 1 × 10^4 copies/mL") == [
        (3500.0, "iu"),
        (50000.0, "copies"),
        (10000.0, "copies"),
    ]


def _chunk(criterion_id: str, section: str, text: str) -> Chunk:
    return Chunk(
        id=criterion_id,
        trial_id="NCT00000001",
        kind="criterion",
        section=section,
        text=text,
        embed_text=text,
        title="A trial",
        criterion_id=criterion_id,
    )


def _verdict(*criteria: tuple[str, str], topic: str) -> tuple[str, str]:
    chunks = [_chunk(f"NCT00000001/{s}/{i}", s, t) for i, (s, t) in enumerate(criteria)]
    typed = [type_criterion(c.criterion_id or "", c.section, c.text) for c in chunks]
    from rag.facts import concepts_in, question_qualifiers

    decision = decide_concepts(
        [k for k, _ in concepts_in(topic)], question_qualifiers(topic), typed, chunks
    )
    return decision.verdict, decision.note


@pytest.mark.parametrize(
    ("criteria", "topic", "verdict"),
    [
        ([("exclusion", "Prior anti-PD-1 therapy")], "prior anti-PD-1 therapy", "excludes"),
        ([("exclusion", "Immunotherapy within 3 weeks before the first dose")], "prior anti-PD-1 therapy", "allows with conditions"),
        ([("inclusion", "Progression on prior anti-PD-1/PD-L1 therapy")], "prior anti-PD-1 therapy", "requires"),
        ([("inclusion", "Treated, stable brain metastases are allowed"), ("exclusion", "Untreated or symptomatic brain metastases")], "brain metastases", "allows with conditions"),
        ([("exclusion", "Active hepatitis B or C")], "active hepatitis B", "excludes"),
        ([("exclusion", "Active hepatitis B or C")], "controlled hepatitis B", "allows with conditions"),
        ([("exclusion", "Prior thoracic radiotherapy")], "radiotherapy to the chest", "excludes"),
        ([("exclusion", "Radiotherapy to more than 30% of the bone marrow")], "radiotherapy to the chest", "allows with conditions"),
        ([("inclusion", "Documented EGFR mutation"), ("exclusion", "EGFR T790M mutation")], "an EGFR mutation", "requires"),
        ([("inclusion", "Adequate organ function")], "HIV", "not stated"),
        # any cancer treatment includes radiotherapy; systemic therapy does not
        ([("inclusion", "Must have not received any cancer treatment for at least 2 weeks.")], "radiotherapy to the chest", "allows with conditions"),
        ([("inclusion", "Previously untreated stage III NSCLC")], "radiotherapy to the chest", "excludes"),
        ([("exclusion", "Prior lines of systemic anti-tumor therapy ≥ 2")], "radiotherapy to the chest", "not stated"),
        # a harm radiotherapy can leave is a condition on those who had it
        ([("exclusion", "History of ILD or radiation pneumonitis requiring steroids")], "radiotherapy to the chest", "allows with conditions"),
        # what a patient has now is inside any window
        ([("exclusion", "Known active or chronic viral hepatitis, or a history of hepatitis within the last 6 months")], "active hepatitis B", "excludes"),
        # a "however" carve-out lets some back in; an example of the disease is not carved
        ([("exclusion", "Any active autoimmune disease or a history of autoimmune disease (such as autoimmune hepatitis, colitis); however, patients with vitiligo or psoriasis are allowed to be included")], "autoimmune disease", "allows with conditions"),
        ([("exclusion", "Any active autoimmune disease or a history of autoimmune disease (such as interstitial pneumonia); however, patients with vitiligo are allowed to be included")], "a history of interstitial lung disease", "excludes"),
        # the study's drug is no prior therapy
        ([("exclusion", "Any condition that contraindicates the use of an investigational drug")], "prior anti-PD-1 therapy", "not stated"),
        # an allowance on its own terms is a condition
        ([("inclusion", "For patients with chronic HBV infection, the HBV viral load must be undetectable")], "active hepatitis B", "allows with conditions"),
    ],
)  # fmt: skip
def test_verdicts_from_typed_criteria(
    criteria: list[tuple[str, str]], topic: str, verdict: str
) -> None:
    assert _verdict(*criteria, topic=topic)[0] == verdict


def test_a_conditional_verdict_quotes_its_condition() -> None:
    verdict, note = _verdict(
        ("exclusion", "Immunotherapy within 3 weeks before the first dose"),
        topic="prior anti-PD-1 therapy",
    )
    assert verdict == "allows with conditions"
    assert 'excluded only if "within 3 weeks' in note


def test_a_verdict_its_cited_criterion_contradicts_is_set_aside() -> None:
    """What an LLM backend writes is checked against the typed facts of what it cites."""
    chunk = _chunk("NCT00000001/inclusion/1", "inclusion", "Progression on prior nivolumab")
    typed = {chunk.criterion_id or "": type_criterion(chunk.id, "inclusion", chunk.text)}
    question = Question(text="q", kind="scan", topic="prior anti-PD-1 therapy", patient=Patient())
    check = check_verdict(question, {"nivolumab", "pd-1"}, typed)
    trials = [{"id": "NCT00000001", "name": "A trial"}]
    passages = (Passage(1, chunk),)
    (wrong,) = parse_verdicts("NCT00000001: excludes [1]", trials, passages, check)
    assert wrong.verdict == "not stated"
    assert "inclusion/1 has it required, not excludes" in wrong.note
    (right,) = parse_verdicts("NCT00000001: requires [1]", trials, passages, check)
    assert right.verdict == "requires"
    # the check reads mentions as the extractive decision does: a treatment planned in the
    # study is beside a question about one had before, so it sets no verdict aside
    planned = _chunk(
        "NCT00000001/exclusion/2", "exclusion", "Patients planned to receive radiotherapy"
    )
    typed = {planned.criterion_id or "": type_criterion(planned.id, "exclusion", planned.text)}
    question = Question(text="q", kind="scan", topic="prior radiotherapy", patient=Patient())
    check = check_verdict(question, {"radiotherapy"}, typed)
    (stands,) = parse_verdicts("NCT00000001: allows [1]", trials, (Passage(1, planned),), check)
    assert stands.verdict == "allows"


def test_the_index_stores_typed_criteria(seed_index: store.Index) -> None:
    stored = (seed_index.path / "facts.jsonl").read_text().splitlines()
    assert len(stored) == len(seed_index.trials)
    assert seed_index.manifest["facts"] >= 1
    assert seed_index.read_facts is not None, "a load reads the typed criteria stored"
    trial = next(t for t in seed_index.trials.values() if t.criteria)
    assert seed_index.typed(trial.id) == tuple(
        type_criterion(c.id, c.section, c.text)
        for c in trial.criteria
        if type_criterion(c.id, c.section, c.text).mentions
        or type_criterion(c.id, c.section, c.text).limits
    )


def test_ingest_json_exports_the_typed_criteria() -> None:
    result = CliRunner().invoke(app, ["ingest", str(CORPUS), "--json"])
    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    typed = [t for row in rows for t in row["typed"]]
    assert typed, "the seed pages' criteria give typed facts"
    by_id = {c["id"]: c for row in rows for c in row["criteria"]}
    for fact in typed:
        criterion = by_id[fact["criterion_id"]]
        for mention in fact["mentions"]:
            start, end = mention["span"]
            assert criterion["text"][start:end].strip(), mention
