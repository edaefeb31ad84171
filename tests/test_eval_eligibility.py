"""The hand-labelled eligibility set over the NSCLC trials of ../shared/data, run by the eval.

Labels were written by people reading each trial's criteria (eval/eligibility.jsonl notes
how); this holds the per-topic verdict accuracy at the level reached (a ratchet the next
issue raises).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rag import evaluation, store
from rag.answer import Assistant
from rag.embed import SentenceEmbedder
from rag.llm.base import get_backend
from tests.conftest import NSCLC, run_set

SET = Path(__file__).resolve().parents[1] / "eval" / "eligibility.jsonl"
pytestmark = pytest.mark.skipif(
    not NSCLC.exists(), reason=f"{NSCLC} is absent: the labelled trials live beside the repo"
)
# Verdict accuracy per topic (40 trials each; a conditional verdict counts only when it cites
# a criterion the labels give for its condition), the floor CI holds. When the set was built:
# pd1 .40, egfr_alk .525, hepatitis .80, ild .475, autoimmune .85, thoracic_rt .275; with
# typed criteria (rag.facts) as below: 0.9 or more on every topic, as issue 11 asks.
FLOORS = {
    "eligibility-pd1": 0.90,
    "eligibility-egfr_alk": 0.92,
    "eligibility-hepatitis": 0.90,
    "eligibility-ild": 0.95,
    "eligibility-autoimmune": 1.0,
    "eligibility-thoracic_rt": 0.97,
}


def test_the_set_labels_forty_trials_per_topic() -> None:
    labelled = evaluation.load_set(str(SET))
    assert {q["category"] for q in labelled.questions} == set(FLOORS)
    for question in labelled.questions:
        assert question["judge"] == "listed"
        assert len(question["expected"]["verdicts"]) == 40
        assert question["cite"], question["id"]


def test_eligibility_verdicts_hold_their_floor(
    eval_index: store.Index, embedder: SentenceEmbedder
) -> None:
    labelled = evaluation.load_set(str(SET))
    assistant = Assistant(eval_index, embedder, get_backend("extractive"))
    report = evaluation.run(labelled, assistant, backend="extractive", index="eval")
    rows = report.rows()
    for topic, floor in FLOORS.items():
        accuracy = rows[topic]["verdict_accuracy"]
        assert accuracy is not None
        assert accuracy >= floor - 1e-9, (topic, rows[topic])
    assert report.failures() == []


BLIND_SET = Path(__file__).resolve().parents[1] / "eval" / "blind_nsclc.jsonl"
# Wordings a helper wrote blind (the criteria and the facts only) that the extractive backend
# still gets wrong, with why.
BLIND_MISSES = {
    "f03": "'a week back' with 'how well chemo works' describing the trial: chemotherapy is "
    "read as a second trait the trial requires",
    "f09": "psoriasis is not read as an autoimmune disease: lay names of autoimmune diseases "
    "are not in the concept table",
    "f11": "psoriasis is not read as an autoimmune disease (as f09)",
    "f17": "'and needed steroids for it' is split off as a trait of its own, so the pneumonitis "
    "is not read as steroid-requiring",
    "f19": "'they put her on steroids' is split off as a trait of its own (as f17)",
}


def test_blind_wordings_over_nsclc_trials(
    eval_index: store.Index, embedder: SentenceEmbedder
) -> None:
    """eval/blind_nsclc.jsonl: yes/no questions a helper wrote from the criteria alone."""
    report, wrong = run_set(BLIND_SET, eval_index, embedder, "eval")
    assert len(report.outcomes) == 20
    assert set(wrong) == set(BLIND_MISSES), wrong
