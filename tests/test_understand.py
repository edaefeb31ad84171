"""The question stage, table-driven and without the embedding model: phrasings -> Question.

Two tables. The first is written here: each row a phrasing and the slots of the Question it
must give (its kind, the trials it names, the fields, the topic, the patient's facts, the
filters). The second is every question of eval/seed.jsonl - the originals, blind
paraphrases written by people who saw only the pages, and questions they wrote themselves -
with the kind a person labelled from written definitions and the trial its gold passages
belong to.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rag.facts import concepts_in
from rag.ingest import ingest_paths
from rag.lexical import name_tokens
from rag.understand import Question, Vocabulary, understand

ROOT = Path(__file__).resolve().parents[1]
APATINIB = "NCT03913182"  # 000: apatinib, Zhigang Li, recruiting, phase 2
SINDILIMAB = "T-01c13b784d"  # 001: anlotinib + sindilimab, Jianwei Zhou, no title
APEC = "NCT04984096"  # 002: APEC, anlotinib + PD-1 inhibitors, observational, retrospective
FUDAN = "T-fcd9d254a2"  # 003: Fudan University, local therapy, oligorecurrent
ZHEJIANG = "T-ee5e47e5ae"  # 004: Zhejiang Cancer Hospital, camrelizumab, randomised


@pytest.fixture(scope="module")
def vocabulary() -> Vocabulary:
    trials = {t.id: t for r in ingest_paths([ROOT / "corpus"]) for t in r.trials}
    return Vocabulary(trials)


# (question, trial under discussion or None, the slots expected)
CASES: list[tuple[str, str | None, dict[str, Any]]] = [
    # --- fields of one trial, the trial named every way people name it
    ("What phase is NCT03913182?", None, {"kind": "field", "trials": [APATINIB], "fields": ["phase"]}),
    ("what phase is nct03913182", None, {"kind": "field", "trials": [APATINIB]}),
    ("Who sponsors the Fudan trial?", None, {"kind": "field", "trials": [FUDAN], "fields": ["sponsor"]}),
    ("who is behind the Fudan trial?", None, {"fields": ["sponsor"], "trials": [FUDAN]}),
    ("Who runs the camrelizumab study?", None, {"fields": ["sponsor"], "trials": [ZHEJIANG]}),
    ("who sponsors camrelizumab?", None, {"fields": ["sponsor"], "trials": [ZHEJIANG]}),
    ("Who pays for the APEC study?", None, {"fields": ["sponsor"], "trials": [APEC]}),
    ("When did the APEC study start?", None, {"fields": ["start_date"], "trials": [APEC]}),
    ("When does the APEC study end?", None, {"fields": ["completion_date"], "trials": [APEC]}),
    ("Since when has the Fudan trial been running?", None, {"fields": ["start_date"]}),
    ("When is the camrelizumab study expected to wrap up?", None, {"fields": ["completion_date"]}),
    ("How many people will the sindilimab trial enroll?", None, {"fields": ["enrollment"], "trials": [SINDILIMAB]}),
    ("how many ppl are they hoping to recruit for the APEC study?", None, {"fields": ["enrollment"]}),
    ("What's the sample size of NCT04984096?", None, {"fields": ["enrollment"]}),
    ("What ages can enroll in NCT03913182?", None, {"kind": "field", "fields": ["ages"]}),
    ("How old must patients be for the Fudan trial?", None, {"kind": "field", "fields": ["ages"]}),
    ("youngest eligible age in the APEC study?", None, {"kind": "field", "fields": ["ages"]}),
    ("Which sexes can take part in NCT03913182?", None, {"kind": "field", "fields": ["sex"]}),
    ("gender eligibility for the camrelizumab trial?", None, {"kind": "field", "fields": ["sex"], "trials": [ZHEJIANG]}),
    ("Is the sindilimab trial for men, for women, or for both?", None, {"kind": "field", "fields": ["sex"]}),
    ("What condition does NCT04984096 study?", None, {"fields": ["conditions"]}),
    ("camrelizumab study - for which cancer?", None, {"fields": ["conditions"], "trials": [ZHEJIANG]}),
    ("What drugs are tested in the APEC study?", None, {"fields": ["interventions"]}),
    ("What treatments are given in the Zhejiang Cancer Hospital trial?", None, {"fields": ["interventions"], "trials": [ZHEJIANG]}),
    ("In the Fudan trial, which approaches are compared?", None, {"fields": ["interventions"], "trials": [FUDAN]}),
    ("Who is the principal investigator of NCT04984096?", None, {"fields": ["investigators"]}),
    ("Name of the PI of the apatinib study?", None, {"fields": ["investigators"], "trials": [APATINIB]}),
    ("What is the primary endpoint of NCT04984096?", None, {"fields": ["primary_outcomes"]}),
    ("What's the official title of the Fudan University trial?", None, {"fields": ["official_title"], "trials": [FUDAN]}),
    ("full study name of the Fudan trial please", None, {"fields": ["title"], "trials": [FUDAN]}),
    ("Where is the camrelizumab trial run?", None, {"fields": ["locations"]}),
    ("What is the design of the apatinib trial?", None, {"kind": "field", "trials": [APATINIB]}),
    ("Can you tell me the official name of Fudan University's study?", None, {"kind": "field", "fields": ["official_title"], "trials": [FUDAN]}),
    ("What phase is the Fudan trial, and is it recruiting?", None, {"kind": "field", "fields": ["status", "phase"]}),
    ("What's the enrollment status of the sindilimab study?", None, {"fields": ["status"]}),
    ("Zhejiang Cancer Hospital camrelizumab study - open for enrollment yet?", None, {"fields": ["status"], "trials": [ZHEJIANG]}),
    ("What ECOG performance status do patients need for the Fudan trial?", None, {"kind": "criterion", "topic": "ECOG performance"}),
    # --- naming: acronyms, codes, people, design words, slips, the conversation
    ("When did the APEC study of anlotinib with PD-1 inhibitors start?", None, {"trials": [APEC], "fields": ["start_date"]}),
    ("What phase is the retrospective anlotinib study?", None, {"trials": [APEC]}),
    ("the trial where Jianwei Zhou is the central contact, how many will they enroll?", None, {"trials": [SINDILIMAB]}),
    ("Who sponsors Zhigang Li's apatinib trial?", None, {"trials": [APATINIB]}),
    ("What phase is the anlotinib plus sintilimab trial?", None, {"trials": [SINDILIMAB]}),
    ("What's the phase of the single-arm sindilimab study?", None, {"trials": [SINDILIMAB]}),
    ("phase of the apatinib ESCC trial?", None, {"trials": [APATINIB]}),
    ("status of the oligorecurrent ESCC local therapy study?", None, {"trials": [FUDAN]}),
    ("For the second-line ESCC study combining anlotinib with sindilimab, what's the minimum platelet count?", None, {"trials": [SINDILIMAB], "topic": "platelet"}),
    ("What is the title of the oligometastatic esophageal trial sponsored by Fudan University?", None, {"trials": [FUDAN], "fields": ["title"]}),
    ("Does the collaborator list for Zhejiang Cancer Hospital's camrelizumab study include Lishui Municipal Central Hospital?", None, {"trials": [ZHEJIANG], "fields": ["collaborators"], "value": "Lishui Municipal Central Hospital"}),
    ("and its platelet threshold?", ZHEJIANG, {"kind": "criterion", "trials": [ZHEJIANG], "topic": "platelet", "from_conversation": True}),
    ("what about its ECOG requirement?", SINDILIMAB, {"trials": [SINDILIMAB], "from_conversation": True}),
    ("who sponsors it?", FUDAN, {"kind": "field", "trials": [FUDAN], "fields": ["sponsor"]}),
    ("how many ppl are they hoping to recruit?", APATINIB, {"trials": [APATINIB], "fields": ["enrollment"]}),
    ("Can patients who've had anlotinib before be included?", APEC, {"trials": [APEC], "topic": "anlotinib"}),
    ("who sponsors camrelizumab?", FUDAN, {"trials": [ZHEJIANG]}),
    # --- names that fit several trials, or none
    ("What phase is the anlotinib trial?", None, {"candidates": [APEC, SINDILIMAB], "trials": []}),
    ("Who sponsors the oligometastatic trial?", None, {"candidates": [ZHEJIANG, FUDAN]}),
    ("What phase is the metformin trial?", None, {"unknown": "the metformin trial", "trials": []}),
    ("Who sponsors NCT99999999?", None, {"unknown": "NCT99999999", "trials": []}),
    ("What is the capital of France?", None, {"kind": "out_of_scope"}),
    # --- criteria and thresholds of one trial
    ("what platelet count does the Fudan trial require?", None, {"kind": "criterion", "trials": [FUDAN], "topic": "platelet"}),
    ("anlotinib sindilimab trial haemoglobin requirement?", None, {"kind": "criterion", "trials": [SINDILIMAB], "topic": "haemoglobin"}),
    ("What creatinine requirement does the local therapy for oligometastatic ESCC trial have?", None, {"kind": "criterion", "trials": [FUDAN], "topic": "creatinine"}),
    ("How many metastases may a patient have in the Fudan trial?", None, {"kind": "criterion", "topic": "metastases"}),
    ("How long must patients be expected to live to qualify for the sindilimab trial?", None, {"kind": "criterion", "trials": [SINDILIMAB]}),
    ("Is there a BMI cutoff for the Zhejiang Cancer Hospital camrelizumab trial?", None, {"kind": "criterion", "topic": "BMI"}),
    ("Does the camrelizumab trial have a BMI limit?", None, {"kind": "criterion", "topic": "BMI"}),
    ("What is the Fudan trial's policy on tattoos?", None, {"kind": "criterion", "topic": "tattoos"}),
    ("My wife's white cells run low - what absolute neutrophil count does the Fudan trial ask for?", None, {"kind": "criterion", "topic": "absolute neutrophil"}),
    ("my dad is thin. is there some BMI cutoff in the camrelizumab trial?", None, {"kind": "criterion", "topic": "BMI"}),
    # --- yes/no about one trial: eligibility
    ("Can someone with active hepatitis B join the camrelizumab trial?", None, {"kind": "yes_no", "trials": [ZHEJIANG], "topic": "active hepatitis B"}),
    ("Can someone with active hepatitis B join the anlotinib plus sintilimab trial?", None, {"kind": "yes_no", "trials": [SINDILIMAB]}),
    ("My father is 78. Would he be eligible for the camrelizumab study?", None, {"kind": "yes_no", "patient": {"age": 78.0, "sex": "MALE"}}),
    ("would a 78 year old be able to join the sindilimab study?", None, {"kind": "yes_no", "patient": {"age": 78.0}}),
    ("Can a patient with ECOG performance status 2 enter the Fudan trial?", None, {"kind": "yes_no", "patient": {"ecog": 2}}),
    ("Is an ECOG PS of 2 acceptable in the APEC study?", None, {"kind": "yes_no", "patient": {"ecog": 2}, "topic": ""}),
    ("Patient has a BMI of 17 kg/m2 - can they join the Zhejiang camrelizumab study?", None, {"kind": "yes_no", "patient": {"labs": [{"name": "bmi", "value": 17.0}]}}),
    ("BMI 17 - eligible for the camrelizumab study? yes/no", None, {"kind": "yes_no"}),
    ("If I had anlotinib before, could I join the sindilimab trial?", None, {"kind": "yes_no", "topic": "anlotinib"}),
    ("I have tattoos, is that a problem for the Fudan study?", None, {"kind": "yes_no", "topic": "tattoos"}),
    ("prior anlotinib use ok or not?", APEC, {"kind": "yes_no", "trials": [APEC], "topic": "prior anlotinib use"}),
    ("Is an HIV-positive patient eligible for the sindilimab trial?", None, {"kind": "yes_no", "topic": "HIV-positive"}),
    ("My mother has 5 metastatic lesions. Could she qualify for the Fudan trial?", None, {"kind": "yes_no", "trials": [FUDAN], "topic": "5 metastatic lesions"}),
    ("Are pregnant women allowed in NCT04984096?", None, {"kind": "yes_no", "topic": "pregnant women"}),
    ("Does it take patients who have used anlotinib before?", APEC, {"kind": "yes_no", "trials": [APEC]}),
    # --- yes/no about one trial: fields, with the value to check in filters
    ("Is NCT03913182 still recruiting?", None, {"kind": "yes_no", "fields": ["status"], "filters": {"status": ["RECRUITING"]}}),
    ("Is the camrelizumab trial open-label?", None, {"kind": "yes_no", "fields": ["masking"], "filters": {"design": ["open-label"]}}),
    ("is the apatinib trial single-arm?", None, {"kind": "yes_no", "fields": ["intervention_model"], "filters": {"design": ["single-arm"]}}),
    ("apatinib esophageal study - only one arm?", None, {"kind": "yes_no", "filters": {"design": ["single-arm"]}}),
    ("Is the Fudan trial a phase 3 study?", None, {"kind": "yes_no", "fields": ["phase"], "filters": {"phase": ["PHASE3"]}}),
    ("Is the APEC study observational?", None, {"kind": "yes_no", "fields": ["study_type"], "filters": {"study_type": ["OBSERVATIONAL"]}}),
    ("Is the APEC study retrospective?", None, {"kind": "yes_no", "filters": {"design": ["retrospective"]}}),
    ("Do patients in the camrelizumab study get randomly assigned to groups?", None, {"kind": "yes_no", "fields": ["allocation"]}),
    ("Does the Zhejiang Cancer Hospital trial accept healthy volunteers?", None, {"kind": "yes_no", "fields": ["healthy_volunteers"]}),
    ("Is Lishui Municipal Central Hospital a collaborator on the camrelizumab trial?", None, {"kind": "yes_no", "fields": ["collaborators"]}),
    ("My mum lives near Lishui. Is Lishui Municipal Central Hospital a collaborator on the camrelizumab study?", None, {"kind": "yes_no", "fields": ["collaborators"], "patient": {"sex": None}}),
    ("Can patients already sign up for the camrelizumab trial, or is it not open yet?", None, {"kind": "yes_no", "fields": ["status"]}),
    ("Can women take part in the apatinib study NCT03913182?", None, {"kind": "yes_no", "trials": [APATINIB], "fields": ["sex"]}),
    # --- listings over fields
    ("Which trials test camrelizumab?", None, {"kind": "list", "filters": {"intervention": "camrelizumab"}}),
    ("Which of these studies involve anlotinib?", None, {"kind": "list", "filters": {"intervention": "anlotinib"}}),
    ("Which trials are sponsored by Fudan University?", None, {"kind": "list", "filters": {"sponsor": "Fudan University"}}),
    ("Which trials are phase 2?", None, {"kind": "list", "filters": {"phase": ["PHASE2"]}}),
    ("give me every phase-two trial in this bunch", None, {"kind": "list", "filters": {"phase": ["PHASE2"]}}),
    ("which ones are recruiting at the moment?", None, {"kind": "list", "filters": {"status": ["RECRUITING"]}}),
    ("I need a trial that's taking patients today - which of these are?", None, {"kind": "list", "filters": {"status": ["RECRUITING"]}}),
    ("Which of the studies are observational rather than interventional?", None, {"kind": "list", "filters": {"study_type": ["OBSERVATIONAL"]}}),
    ("Which studies are single-arm?", None, {"kind": "list", "filters": {"design": ["single-arm"]}}),
    ("list all the unmasked / open studies among the five", None, {"kind": "list", "filters": {"design": ["open-label"]}}),
    ("Which trials are for patients with esophageal cancer?", None, {"kind": "list", "filters": {"condition": "esophageal cancer"}}),
    ("Which trials are for oligometastatic disease?", None, {"kind": "list"}),
    ("List the trials connected with Shanghai Chest Hospital.", None, {"kind": "list", "filters": {"organisation": "Shanghai Chest Hospital"}}),
    ("Which recruiting phase 2 trials test camrelizumab?", None, {"kind": "list", "filters": {"status": ["RECRUITING"], "phase": ["PHASE2"], "intervention": "camrelizumab"}}),
    ("Which trials are recruiting at hospitals in São Paulo, Brazil?", None, {"kind": "list", "filters": {"status": ["RECRUITING"], "country": "são paulo, brazil"}}),
    ("Which trials are linked to Shanghai Chest Hospital, either as sponsor or through the principal investigator?", None, {"kind": "list", "filters": {"organisation": "Shanghai Chest Hospital"}}),
    ("which trials have Shanghai Chest Hospital as a site?", None, {"kind": "list", "filters": {"organisation": "Shanghai Chest Hospital", "sponsor": None}}),
    ("which trials does Shanghai Chest Hospital sponsor?", None, {"kind": "list", "filters": {"sponsor": "Shanghai Chest Hospital", "organisation": None}}),
    # --- eligibility scans over the corpus
    ("which trials allow prior PD-1 inhibitors?", None, {"kind": "scan", "topic": "prior PD-1 inhibitors", "stance": "allows"}),
    ("which trials accept ECOG 2?", None, {"kind": "scan", "patient": {"ecog": 2}}),
    ("which trials would exclude a 78-year-old?", None, {"kind": "scan", "patient": {"age": 78.0}, "stance": "excludes"}),
    # an age bound on the people asked about stands for the first age past it; none is a topic
    ("are there trials that take people over 75?", None, {"kind": "exists", "patient": {"age": 76.0}, "topic": ""}),
    ("which trials take people older than 75?", None, {"kind": "scan", "patient": {"age": 76.0}, "topic": ""}),
    ("which trials accept patients aged 76 or more?", None, {"kind": "scan", "patient": {"age": 76.0}, "topic": ""}),
    ("Are there studies that take kids under 18?", None, {"kind": "exists", "patient": {"age": 17.0}, "topic": ""}),
    ("are there any studies that take people over 75 yrs old", None, {"kind": "exists", "patient": {"age": 76.0}, "topic": ""}),
    ("How many trials accept participants younger than 18 years old?", None, {"kind": "count", "patient": {"age": 17.0}}),
    ("which trials take patients over 50 kg?", None, {"kind": "scan", "patient": {"age": None}}),
    ("which trials accept patients with symptoms for over 5 years?", None, {"kind": "scan", "patient": {"age": None}}),
    ("which trials would accept a patient whose platelet count is 90 × 10^9/L?", None, {"kind": "scan", "patient": {"labs": [{"name": "platelets", "value": 90.0}]}, "topic": ""}),
    ("which trials accept healthy volunteers?", None, {"kind": "scan", "fields": ["healthy_volunteers"]}),
    ("which trials exclude patients with symptomatic brain metastases?", None, {"kind": "scan", "topic": "symptomatic brain metastases", "stance": "excludes"}),
    ("history of interstitial pneumonia - which trials say no?", None, {"kind": "scan", "stance": "excludes"}),
    ("My husband had interstitial pneumonia some years ago. Which of these trials would not take him because of that?", None, {"kind": "scan", "topic": "interstitial pneumonia", "stance": "excludes"}),
    ("symptomatic brain mets = exclusion criterion in which trials?", None, {"kind": "scan"}),
    ("which recruiting trials would take a 70-year-old woman with ECOG 1 and controlled hepatitis B, previously on nivolumab?", None, {"kind": "scan", "patient": {"age": 70.0, "sex": "FEMALE", "ecog": 1, "conditions": ["controlled hepatitis B", "previously on nivolumab"]}, "filters": {"status": ["RECRUITING"]}}),
    ("Which trials require an EGFR mutation?", None, {"kind": "scan", "stance": "requires"}),
    # --- counts and existence
    ("how many trials are recruiting?", None, {"kind": "count", "filters": {"status": ["RECRUITING"]}}),
    ("How many of these studies are phase 2?", None, {"kind": "count", "filters": {"phase": ["PHASE2"]}}),
    ("count of trials whose exclusion criteria mention pregnancy or lactation?", None, {"kind": "count", "stance": "excludes"}),
    ("How many trials say they don't accept healthy volunteers?", None, {"kind": "count", "fields": ["healthy_volunteers"], "stance": "excludes"}),
    ("how many trials exclude people with autoimmune disease?", None, {"kind": "count", "topic": "autoimmune disease", "stance": "excludes"}),
    ("which trials require a platelet count of at least 100,000?", None, {"kind": "scan", "topic": "", "patient": {"labs": [{"name": "platelets", "value": 100.0}]}}),
    ("Out of these five studies, how many have just one treatment arm?", None, {"kind": "count", "filters": {"design": ["single-arm"]}}),
    ("does any trial accept patients with hepatitis B?", None, {"kind": "exists", "topic": "hepatitis B"}),
    ("Is there a trial of metformin for type 2 diabetes?", None, {"kind": "exists"}),
    ("Do you have any metformin trial for type 2 diabetes?", None, {"kind": "exists"}),
    # --- shorthand, names with a role, contacts, questions where yes means excluded
    ("can pts w/ brain mets go on the camrelizumab trial?", None, {"kind": "yes_no", "trials": [ZHEJIANG], "topic": "brain mets"}),
    ("who do I contact about the anlotinib sindilimab trial?", None, {"kind": "field", "trials": [SINDILIMAB], "fields": ["contacts"]}),
    ("What life expectancy is required in the trial that has Zhigang Li as principal investigator?", None, {"kind": "criterion", "trials": [APATINIB], "topic": "life expectancy"}),
    ("my father is 78 - is he too old for the anlotinib + sindilimab trial?", None, {"kind": "yes_no", "patient": {"age": 78.0}, "stance": "excludes", "topic": ""}),
    ("would active hepatitis B rule me out of the camrelizumab trial?", None, {"kind": "yes_no", "topic": "active hepatitis B", "stance": "excludes"}),
    ("can someone with hepatitis B join the Fudan trial?", None, {"kind": "yes_no", "stance": "allows"}),
    ("does the Fudan trial require an ECOG score of 0-1?", None, {"kind": "yes_no", "topic": "ECOG score of 0-1", "patient": {"ecog": None}}),
    ("My patient is 79. Which of these trials would he be too old for?", None, {"kind": "scan", "patient": {"age": 79.0}, "topic": "", "stance": "excludes"}),
    ("what dose of apatinib do they give in the Shanghai Chest Hospital trial?", None, {"trials": [APATINIB], "candidates": []}),
    ("what phase is the Shanghai Chest Hospital trial?", None, {"trials": [], "candidates": [APATINIB, APEC]}),
    ("How long does a patient need to be off anti-tumor medication before starting treatment in the Fudan trial?", None, {"kind": "criterion", "fields": []}),
    ("In the Fudan study, how big can each metastatic lesion be?", None, {"kind": "criterion", "topic": "metastatic lesion"}),
    ("how big is the APEC study?", None, {"kind": "field", "fields": ["enrollment"]}),
    ("Could he take part in the study that pairs anlotinib with sindilimab, or is he too old? He is 82.", None, {"kind": "yes_no", "trials": [SINDILIMAB], "stance": "allows", "topic": ""}),
    ("Are they still signing people up for the apatinib study?", None, {"fields": ["status"]}),
    ("The study from Zhejiang with camrelizumab, it is open now for patients to join?", None, {"fields": ["status"], "trials": [ZHEJIANG]}),
    ("anlo/sindilimab 2L ESCC - planned n?", None, {"kind": "field", "fields": ["enrollment"]}),
    ("Camrelizumab trial: how close to randomisation must a woman of childbearing age have her pregnancy test?", None, {"kind": "criterion", "fields": []}),
    ("In the camrelizumab study, what is the most old age they still accept?", None, {"kind": "field", "fields": ["ages"]}),
    ("Zhejiang camrelizumab study: my patient has type 1 diabetes. Can he still go on to screening?", None, {"kind": "yes_no", "topic": "type 1 diabetes"}),
    ("In the APEC study, how often was the anlotinib plus PD-1 combination given?", None, {"kind": "criterion", "fields": []}),
    ("Which of the trials spell out a minimum expected survival of about 12 weeks?", None, {"kind": "scan", "topic": "expected survival of about 12"}),
    ("which trials study metformin?", None, {"kind": "list"}),
    ("Please, the study of anlotinib plus sindilimab for squamous esophagus cancer after first-line failure - which person is the contact?", None, {"trials": [SINDILIMAB], "fields": ["contacts"]}),
    ("Anlotinib + sintilimab 2L ESCC: pt aged 82, eligible by age?", None, {"kind": "yes_no", "patient": {"age": 82.0}}),
    ("She has had type 1 diabetes since she was a kid. Will her diabetes stop her from getting in the camrelizumab trial?", None, {"kind": "yes_no", "topic": "diabetes", "stance": "excludes"}),
    ("For the trial of local treatment for oligometastatic esophagus squamous cancer in Fudan, how big can each metastasis tumor be? Is there maximum size in cm?", None, {"kind": "criterion", "trials": [FUDAN], "fields": []}),
    # --- comparisons
    ("Compare the ECOG requirements of the Fudan trial and the camrelizumab trial", None, {"kind": "compare", "trials": [FUDAN, ZHEJIANG], "topic": "ECOG"}),
    ("Which enrolls more people, the sindilimab trial or the APEC study?", None, {"kind": "compare", "trials": [SINDILIMAB, APEC], "fields": ["enrollment"]}),
    ("Compare the age ranges for NCT03913182 and the anlotinib/sindilimab study.", None, {"kind": "compare", "trials": [APATINIB, SINDILIMAB], "fields": ["ages"]}),
    ("Which finishes later, the Fudan trial or the camrelizumab trial?", None, {"kind": "compare", "fields": ["completion_date"]}),
    ("Who is the lead sponsor of the local therapy ESCC trial compared with the camrelizumab trial?", None, {"kind": "compare", "trials": [FUDAN, ZHEJIANG], "fields": ["sponsor"]}),
    ("What is the recruitment status of NCT03913182 compared with NCT04984096?", None, {"kind": "compare", "trials": [APATINIB, APEC], "fields": ["status"]}),
]  # fmt: skip


def _subset(question: Question) -> dict[str, Any]:
    data = question.to_dict()
    data["kind"] = question.kind
    return data


@pytest.mark.parametrize(("text", "trial", "expected"), CASES, ids=[c[0][:60] for c in CASES])
def test_phrasing(
    text: str, trial: str | None, expected: dict[str, Any], vocabulary: Vocabulary
) -> None:
    got = _subset(understand(text, vocabulary, trial=trial))
    for key, want in expected.items():
        if key == "patient":
            for fact, value in want.items():
                assert got["patient"][fact] == value, (key, fact, got)
        elif key == "filters":
            assert {k: got["filters"].get(k) for k in want} == want, got
        elif key == "candidates":
            assert sorted(got["candidates"]) == sorted(want), got
        elif key == "topic" and want:
            assert want.casefold() in got["topic"].casefold(), got
        else:
            assert got[key] == want, (key, got)


SEED_SET = ROOT / "eval" / "seed.jsonl"
SEEDS = [json.loads(line) for line in SEED_SET.read_text().splitlines()[1:] if line.strip()]
# Questions whose labelled kind the grammar reads differently, each for the reason given.
# Strict: one read right fails here, so the list moves.
_VOLUNTEERS = (
    "healthy volunteers is a field: a listing to the labeller, a verdict per trial here (both "
    "answers give each trial's field)"
)
KIND_DISAGREEMENTS: dict[str, str] = {
    "q38": _VOLUNTEERS,
    "q38-p1": _VOLUNTEERS,
    "q38-p2": _VOLUNTEERS,
    "q38-p3": _VOLUNTEERS,
    "n45": _VOLUNTEERS,
    "n52": "'which pages' is not read as a question about trials",
}


def _gold_trial(case: dict[str, Any]) -> str | None:
    """The one trial a single-trial question's gold passages belong to."""
    trials = {cite.split("/")[0] for cite in case.get("cite", [])}
    return trials.pop() if len(trials) == 1 else None


def _conversation_trials() -> dict[str, str | None]:
    """For questions asked in a conversation: the trial its first question was about."""
    first: dict[str, str | None] = {}
    trial_of: dict[str, str | None] = {}
    for case in SEEDS:
        key = case.get("conversation")
        if key is None:
            continue
        trial_of[case["id"]] = first.get(key)
        first.setdefault(key, _gold_trial(case))
    return trial_of


CONVERSATION = _conversation_trials()


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, marks=pytest.mark.xfail(reason=KIND_DISAGREEMENTS[c["id"]], strict=True))
        if c["id"] in KIND_DISAGREEMENTS
        else c
        for c in SEEDS
    ],
    ids=[c["id"] for c in SEEDS],
)
def test_seed_question_kind_and_trial(case: dict[str, Any], vocabulary: Vocabulary) -> None:
    question = understand(case["question"], vocabulary, trial=CONVERSATION.get(case["id"]))
    assert question.kind == case["kind"], (case["question"], question.to_dict())
    gold = _gold_trial(case)
    single = case["kind"] in ("field", "criterion", "yes_no") and "abstain" not in case["expected"]
    if single and gold is not None:
        assert question.trials == (gold,), (case["question"], question.to_dict())


def test_the_tables_are_large() -> None:
    assert len(CASES) + len(SEEDS) >= 200
    assert len({(c[0], c[1]) for c in CASES}) == len(CASES)
    assert {c[2].get("kind") for c in CASES} >= {
        "field", "criterion", "yes_no", "list", "scan", "count", "exists", "compare",
        "out_of_scope",
    }  # fmt: skip


# --- naming among many trials -----------------------------------------------------------------


def _titled(folder: Path, titles: dict[str, tuple[str, str]]) -> Vocabulary:
    """A vocabulary of API v2 records, each only an id, a title and a summary."""
    folder.mkdir()
    for nct, (title, summary) in titles.items():
        record = {
            "protocolSection": {
                "identificationModule": {"nctId": nct, "briefTitle": title},
                "descriptionModule": {"briefSummary": summary},
            }
        }
        (folder / f"{nct}.json").write_text(json.dumps(record))
    return Vocabulary({t.id: t for r in ingest_paths([folder]) for t in r.trials})


def test_abbreviations_are_read_from_whole_words() -> None:
    nsclc = name_tokens("Irofulven in Relapsed or Refractory Non-small Cell Lung Cancer")
    assert "nsclc" in nsclc and "sclc" not in nsclc
    assert "sclc" in name_tokens("Topotecan in Small Cell Lung Cancer")
    assert "nhl" in name_tokens("Previously Untreated HIV-Associated Non-Hodgkin's Lymphoma")
    assert "escc" in name_tokens("Oesophageal Squamous Cell Carcinoma")


def test_a_compound_counts_through_its_parts_for_a_trial_without_it(tmp_path: Path) -> None:
    vocabulary = _titled(
        tmp_path / "records",
        {
            "NCT00000001": ("Irofulven in Relapsed or Refractory Non-small Cell Lung Cancer", ""),
            "NCT00000002": ("Irofulven in Pancreatic Cancer", ""),
            "NCT00000003": ("Irofulven in Colorectal Cancer", ""),
            "NCT00000004": ("Rituximab in Relapsed/Refractory Lymphoma", ""),
        },
    )
    question = understand(
        "Are CNS metastases allowed in the irofulven trial in relapsed/refractory NSCLC?",
        vocabulary,
    )
    assert question.trials == ("NCT00000001",), question.to_dict()


def test_words_after_the_noun_choose_among_the_trials_the_name_fits(tmp_path: Path) -> None:
    vocabulary = _titled(
        tmp_path / "records",
        {
            "NCT00000001": ("Zorbatinib in Lung Cancer", ""),
            "NCT00000002": ("Zorbatinib in Breast Cancer", ""),
            "NCT00000003": ("Combination Chemotherapy in Lymphoma", "Chemo plus or minus care."),
            "NCT00000004": ("Radiotherapy in Glioma", ""),
        },
    )
    settled = understand("Who sponsors the zorbatinib trial in breast cancer?", vocabulary)
    assert settled.trials == ("NCT00000002",), settled.to_dict()
    # "minus" names only the lymphoma trial, which "zorbatinib" does not fit: never that one.
    asked = understand("Who sponsors the zorbatinib trial of chemo plus or minus care?", vocabulary)
    assert asked.trials == () and set(asked.candidates) == {"NCT00000001", "NCT00000002"}, (
        asked.to_dict()
    )


def test_an_acronym_that_is_also_a_common_word_does_not_name_its_trial_outright(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "records"
    _titled(
        folder,
        {
            "NCT00000001": ("Visudyne and Dexamethasone for Macular Lesions", ""),
            "NCT00000002": ("Epidural Hydromorphone After Radical Prostatectomy", ""),
            "NCT00000003": ("Radical Cystectomy With or Without Chemotherapy", ""),
            "NCT00000004": ("Radical Nephrectomy in Kidney Cancer", ""),
        },
    )
    record = json.loads((folder / "NCT00000001.json").read_text())
    record["protocolSection"]["identificationModule"]["acronym"] = "RADICAL"
    (folder / "NCT00000001.json").write_text(json.dumps(record))
    vocabulary = Vocabulary({t.id: t for r in ingest_paths([folder]) for t in r.trials})
    # The words of a description outweigh an acronym that is a word of other trials' names.
    described = vocabulary.resolve(["epidural", "hydromorphone", "radical", "prostatectomy"])
    assert described.trials == ("NCT00000002",), described
    by_acronym = understand("Who sponsors the RADICAL trial?", vocabulary)
    assert by_acronym.trials == ("NCT00000001",), by_acronym.to_dict()


def _fillers(count: int) -> dict[str, tuple[str, str]]:
    """Records whose words are too common to name anything, to give a corpus its size."""
    return {f"NCT00000{900 + i}": ("Aspirin After Stroke", "") for i in range(count)}


def test_one_rare_word_of_a_summary_does_not_outweigh_a_description(tmp_path: Path) -> None:
    titles = {"NCT00000001": ("CHOP Chemotherapy for HIV-Associated Lymphoma", "")}
    for i in range(6):  # each word of the description is shared by seven trials
        titles[f"NCT0000010{i}"] = ("Zidovudine for HIV Infection", "")
        titles[f"NCT0000020{i}"] = ("Radiotherapy for Lymphoma", "")
        titles[f"NCT0000030{i}"] = ("CHOP Versus Observation in Sarcoma", "")
    titles["NCT00000400"] = ("Weight Loss Counselling", "Randomizing clinics to two programmes.")
    vocabulary = _titled(tmp_path / "records", titles | _fillers(13))
    question = understand(
        "How many were enrolled in the trial randomizing HIV patients with lymphoma to CHOP?",
        vocabulary,
    )
    assert question.trials == ("NCT00000001",), question.to_dict()


def test_a_trial_nearly_as_good_that_a_word_fits_better_is_asked_about(tmp_path: Path) -> None:
    titles = {
        "NCT00000001": ("Topical Ointment for Genital Warts", ""),
        "NCT00000002": ("Ointment in Common Warts", ""),
        "NCT00000003": ("Topical Cream in Psoriasis", ""),
        "NCT00000004": ("Common Cold in Children", ""),
        "NCT00000005": ("Common Variable Immunodeficiency", ""),
    }
    vocabulary = _titled(tmp_path / "records", titles | _fillers(10))
    # "topical" fits the genital warts trial, "common" the common warts one, and neither word
    # is much rarer than the other: the question does not say which it means.
    asked = understand("Who sponsors the topical ointment common warts study?", vocabulary)
    assert asked.trials == () and set(asked.candidates) == {"NCT00000001", "NCT00000002"}, (
        asked.to_dict()
    )
    named = understand("Who sponsors the ointment study for genital warts?", vocabulary)
    assert named.trials == ("NCT00000001",), named.to_dict()


def test_part_of_a_compound_counts_only_its_share_of_it(tmp_path: Path) -> None:
    titles = {
        "NCT00000001": ("Anlotinib in Esophageal Cancer", "A second-line study."),
        "NCT00000002": ("First-line Camrelizumab in Esophageal Cancer", ""),
    }
    vocabulary = _titled(tmp_path / "records", titles | _fillers(6))
    # "line", of "first-line", is half of "second-line": never more than the trial that says it.
    fit = vocabulary.resolve(["second-line", "second", "line"])
    assert "NCT00000001" in fit.trials, fit


def test_keywords_study_ids_and_nct_aliases_name_a_trial(tmp_path: Path) -> None:
    folder = tmp_path / "records"
    folder.mkdir()
    records: dict[str, tuple[str, dict[str, Any]]] = {
        "NCT00000001": ("QL1706 Plus Bevacizumab in NSCLC", {"keywords": ["iparomlimab"]}),
        "NCT00000002": ("Irofulven in Relapsed NSCLC", {"org": "CALGB-39805"}),
        "NCT00000003": ("Irofulven in Pancreatic Cancer", {"org": "SWOG-S0016"}),
    }
    for nct, (title, extra) in records.items():
        ident: dict[str, Any] = {"nctId": nct, "briefTitle": title}
        if "org" in extra:
            ident["orgStudyIdInfo"] = {"id": extra["org"]}
        if nct == "NCT00000001":
            ident["nctIdAliases"] = ["NCT09999999"]
        section: dict[str, Any] = {"identificationModule": ident}
        if "keywords" in extra:
            section["conditionsModule"] = {"keywords": extra["keywords"]}
        (folder / f"{nct}.json").write_text(json.dumps({"protocolSection": section}))
    trials = {t.id: t for r in ingest_paths([folder]) for t in r.trials}
    assert trials["NCT00000001"].study_ids == ("NCT09999999",)
    assert trials["NCT00000001"].keywords == ("iparomlimab",)
    vocabulary = Vocabulary(trials)
    for question, trial in (
        ("How many will the iparomlimab trial enroll?", "NCT00000001"),
        ("Who sponsors CALGB 39805?", "NCT00000002"),
        ("When did the S0016 irofulven study start?", "NCT00000003"),
        ("Is NCT09999999 still recruiting?", "NCT00000001"),
    ):
        understood = understand(question, vocabulary)
        assert understood.trials == (trial,), (question, understood.to_dict())


def test_a_name_of_common_words_gives_way_to_the_words_after_the_noun(tmp_path: Path) -> None:
    titles = {
        "NCT00000001": ("Skin Biopsy Methods in Arthritis", ""),
        "NCT00000002": ("Fibrillin-1 Processing in Patients With Systemic Sclerosis", ""),
    }
    for i in range(16):  # "skin" and "biopsy" are each shared by 17 trials
        titles[f"NCT000001{i:02d}"] = ("Skin Lesions Registry", "")
        titles[f"NCT000002{i:02d}"] = ("Biopsy Tissue Bank", "")
    vocabulary = _titled(tmp_path / "records", titles | _fillers(40))
    question = understand(
        "What is the status of the skin biopsy study of fibrillin-1 in systemic sclerosis?",
        vocabulary,
    )
    assert question.trials == ("NCT00000002",), question.to_dict()
    # A rare word before the noun still names its trial, whatever follows.
    named = understand("Who sponsors the arthritis skin biopsy study?", vocabulary)
    assert named.trials == ("NCT00000001",), named.to_dict()


# Blind wordings (a helper given no code or records wrote six, in six styles, for each of three
# patients, 2026-11-22): a patient whose only fact is ECOG 1, a 67-year-old asking by age alone,
# and a patient treated before with a PD-1 inhibitor. The first two give no trait beyond their
# fact, so no topic should be left; the third's topic must name the PD-1 or checkpoint class,
# in a question over every trial.
# Chatty wordings leave their other words as the topic ("work part time but I get tired"),
# which then decides hundreds of trials on index shared: the known misses are strict xfails.
BLIND_PATIENTS: list[tuple[str, dict[str, Any]]] = [
    (
        "pt ECOG 1, which trials can she enroll in? need list of studies that accept PS 1",
        {"ecog": 1},
    ),
    (
        "My oncologist says my performance status is 1. I still work part time but I get tired. Which clinical trials would accept someone like me?",
        {"ecog": 1},
    ),
    (
        "My dad's doctor wrote 'ECOG 1' in his chart. He's up and about but can't do heavy work anymore. Are there studies in your database that would take him with that score?",
        {"ecog": 1},
    ),
    ("trials accepting ECOG performance status 1", {"ecog": 1}),
    (
        "Hi, I hope this is the right place to ask. I've been reading about clinical trials for a while, and a lot of them seem to have rules about how well you're functioning day to day. My nurse told me I'm an ECOG 1, which I think means I have some symptoms but can still look after myself and do light work. I don't want to get my hopes up about trials that will turn me away, so could you tell me which of the studies you know about would actually accept someone with a performance status of 1?",
        {"ecog": 1},
    ),
    (
        "Screening question: for a candidate with ECOG PS 1 (Karnofsky roughly 80-90), which registered studies list this as within their eligibility range?",
        {"ecog": 1},
    ),
    ("67yo pt, which trials is she age-eligible for?", {"age": 67}),
    ("I'm 67. Which clinical trials am I old enough, or still young enough, to join?", {"age": 67}),
    (
        "My mom just turned 67 and wants to try a clinical trial. Which ones would let her in because of her age? Lots of them seem to stop at 65 or so.",
        {"age": 67},
    ),
    ("trials open to age 67", {"age": 67}),
    (
        "Hello! I'm a 67-year-old retired teacher and I've just started looking into taking part in medical research. A friend of mine got turned away from a study because she was too old, and now I'm worried the same thing will happen to me. I haven't told you anything else about my health yet because first I just want to know where I stand on age. Going only by age, which of the trials you have would accept a 67-year-old?",
        {"age": 67},
    ),
    (
        "Which studies have age criteria that a 67-year-old participant would meet (i.e., the minimum age is at or below 67 and the maximum age is at or above 67, or there's no upper limit)?",
        {"age": 67},
    ),
    ("pt s/p pembro, progressed. which trials allow prior anti-PD-1?", {"concept": True}),
    (
        "I was on Keytruda for about a year and it stopped working. Are there any trials that will still take me after I've already had immunotherapy?",
        {"concept": True},
    ),
    (
        "My husband was treated with nivolumab (Opdivo) last year. Now the doctors are talking about clinical trials, but we've heard some studies exclude people who've already had that kind of drug. Which ones would still accept him?",
        {"concept": True},
    ),
    ("trials allowing prior PD-1 inhibitor", {"concept": True}),
    (
        "Hi there, I'm trying to work out my options and I'd really appreciate some help. I've had several rounds of treatment, including an immunotherapy, a PD-1 drug, I believe it was pembrolizumab, though at one point they mentioned nivolumab too so I might be mixing them up. Either way, it was one of those checkpoint inhibitors. I keep reading trial descriptions that say 'no prior immunotherapy' and it's pretty discouraging. Could you go through the studies you have and tell me which ones would still let me enroll even though I've already had a PD-1 inhibitor?",
        {"concept": True},
    ),
    (
        "hx anti-PD-1 tx (nivo), refractory. Looking for studies where prior checkpoint inhibitor exposure is allowed or required. What's available?",
        {"concept": True},
    ),
    # A second helper, asked for clinicians' shorthand about a patient treated before with an
    # anti-PD-1 or anti-PD-L1 drug (2026-11-22). Read since be5ff05 and the commit after it:
    # "atezo", "durva", "CPI", "which trials still take prior ...", "what's enrolling".
    (
        "pt progressed on pembro 2L NSCLC — which trials still take prior anti-PD-1?",
        {"concept": True},
    ),
    (
        "any open studies that allow prior Opdivo? melanoma pt, PD on nivo adjuvant at 8mo",
        {"concept": True},
    ),
    ("which trials exclude pts who got atezo? SCLC, had carbo/etop/atezo 1L", {"concept": True}),
    (
        "IO-refractory RCC after ipi/nivo, what's enrolling that doesn't exclude prior CPI",
        {"concept": True},
    ),
    (
        "s/p durva consolidation post-CRT stage III, PD at 10 mo. which trials exclude prior anti-PD-L1 and which are ok w/ it?",
        {"concept": True},
    ),
    (
        "h/o grade 3 colitis on Keytruda, stopped. which studies exclude prior irAE / prior PD-1?",
        {"concept": True},
    ),
    (
        "endometrial dMMR, progressed on dostarlimab — any trials allowing prior Jemperli?",
        {"concept": True},
    ),
    (
        "cSCC on Libtayo ~1yr then PD. which trials require CPI-naive? need to rule those out",
        {"concept": True},
    ),
    # A third helper, the same patient, some asking only for what is open (2026-11-22), written
    # after the change above: run blind against it, 7 of 8 read right.
    (
        "any open trials for NSCLC pt who progressed on pembro? still recruiting only pls",
        {"concept": True},
    ),
    (
        "melanoma s/p ipi/nivo, now w/ brain mets — what can she go on? need stuff actively accruing",
        {"concept": True},
    ),
    (
        "which trials exclude prior anti-PD-1? pt got 6 mo of nivo adjuvant for stage III melanoma",
        {"concept": True},
    ),
    ("2L HNSCC after keytruda + chemo, PS 1. anything open right now?", {"concept": True}),
    (
        "Got a bladder ca pt who failed atezo, wondering which studies would still take him or if prior PD-L1 rules him out",
        {"concept": True},
    ),
    ("RCC, prior ipi-nivo then cabo. options? only ones currently enrolling", {"concept": True}),
    (
        "pt had durva consolidation after chemoRT for stage III lung, recurred 8 mo later - which trials is he eligible for",
        {"concept": True},
    ),
    (
        "MSI-H CRC progressed on pembro. IO-refractory trials? also any that bar prior CTLA-4 since he might get ipi next",
        {"concept": True},
    ),
]
LEFTOVER_TOPIC = "the wording's other words are left as the topic"
LEFTOVER = {0, 1, 2, 4, 5, 6, 7, 8, 10, 11}
LISTING = {31}  # "options? only ones currently enrolling": no word of eligibility, a listing


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        pytest.param(
            q,
            e,
            id=f"blind-{i}",
            marks=[pytest.mark.xfail(reason=LEFTOVER_TOPIC, strict=True)]
            if i in LEFTOVER
            else [pytest.mark.xfail(reason="read as a listing", strict=True)]
            if i in LISTING
            else [],
        )
        for i, (q, e) in enumerate(BLIND_PATIENTS)
    ],
)
def test_a_patient_described_in_any_words_leaves_no_other_topic(
    question: str, expected: dict[str, Any], vocabulary: Vocabulary
) -> None:
    understood = understand(question, vocabulary)
    assert understood.kind in ("scan", "count", "exists"), understood.to_dict()
    if "concept" in expected:
        named = {key for key, _ in concepts_in(understood.topic)}
        assert named & {"pd1_pdl1", "checkpoint_inhibitor"}, understood.to_dict()
        return
    assert understood.patient.ecog == expected.get("ecog"), understood.to_dict()
    assert understood.patient.age == expected.get("age"), understood.to_dict()
    assert understood.topic == "", understood.to_dict()
