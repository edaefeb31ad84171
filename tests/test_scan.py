"""Corpus-wide eligibility questions ("which trials ...") over the seeds plus the 100 NSCLC
studies of ../shared/data (the seeds alone without it): which trials a question reads, and
what its answer writes when many trials have a verdict."""

from __future__ import annotations

import re

import pytest

from rag import answer, store
from rag.answer import Assistant
from rag.embed import SentenceEmbedder
from rag.llm.base import get_backend
from rag.retrieve import Retriever
from rag.types import Chunk
from rag.verdicts import decide, decide_ecog, scope

# Each kind of fact a verdict is decided by: a curated concept (with qualifiers), a topic's
# words, healthy volunteers, an age and sex, sex with a concept, performance status, a lab value,
# several at once.
QUESTIONS = (
    "which trials exclude people with hepatitis B?",
    "which trials exclude patients who had radiotherapy to the chest in the last 4 weeks?",
    "which trials accept patients with brain metastases?",
    "which trials require ECOG 0 or 1?",
    "which trials accept patients with adenosquamous carcinoma?",
    "which trials accept healthy volunteers?",
    "which trials would take a 78 year old woman?",
    "could a man with HIV join any of these trials?",
    "which trials take a patient with ECOG 2?",
    "which trials allow a platelet count of 80 x 10^9/L?",
    "could a man with hemoglobin 9 g/dL and prior immunotherapy join any of these trials?",
)


@pytest.fixture(scope="module")
def assistant(eval_index: store.Index, embedder: SentenceEmbedder) -> Assistant:
    return Assistant(eval_index, embedder, get_backend("extractive"))


@pytest.mark.parametrize("question", QUESTIONS)
def test_a_scan_reads_only_trials_that_could_decide_it_and_decides_them_alike(
    assistant: Assistant, eval_index: store.Index, question: str
) -> None:
    """Every trial left out of the scope gets "not stated" when read in full, and every trial
    in it gets the verdict, passages and note it gets when read in full."""
    q = assistant.understand(question)
    reads = scope(q, eval_index)
    assert reads.trials, f"{question!r} reads no trial"
    for trial_id, trial in eval_index.trials.items():
        chunks = [eval_index.chunks[i] for i in eval_index.trial_chunks[trial_id]]
        card = eval_index.card(trial_id)
        full = decide(q, trial, chunks, card, eval_index.typed(trial_id))
        if trial_id not in reads.trials:
            assert full.verdict == "not stated", f"{question!r}: {trial_id} left unread"
            continue
        typed = eval_index.typed_naming(trial_id, reads.keys)
        assert decide(q, trial, chunks, card, typed, reads.holding) == full, trial_id


def test_a_concept_question_reads_only_the_trials_whose_criteria_name_it(
    assistant: Assistant, eval_index: store.Index
) -> None:
    q = assistant.understand("which trials exclude people with hepatitis B?")
    reads = scope(q, eval_index)
    assert 0 < len(reads.trials) < len(eval_index.trials)
    answered = assistant.ask("which trials exclude people with hepatitis B?")
    unread = [v for v in answered.verdicts if v.trial_id not in reads.trials]
    assert unread and all(v.verdict == "not stated" for v in unread)


def test_a_scan_over_more_trials_than_it_lists_writes_the_asked_verdicts_first(
    assistant: Assistant, eval_index: store.Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With more trials than MAX_LISTED_TRIALS, the text lists that many trials with a verdict,
    those excluding first for an "exclude" question, says how many more have one, and counts
    every trial; the answer's verdicts hold every trial's."""
    monkeypatch.setattr(answer, "MAX_LISTED_TRIALS", 3)
    question = "which trials exclude patients with brain metastases?"
    got = assistant.ask(question)
    assert {v.trial_id for v in got.verdicts} == set(eval_index.trials)
    by_trial = {v.trial_id: v.verdict for v in got.verdicts}
    stated = [v for v in got.verdicts if v.verdict != "not stated"]
    assert len(stated) > 3, "the corpus must have more verdicts than the text lists"
    listed = re.findall(r"^- (NCT\d{8}|T-[0-9a-f]{10}) .*?: ([a-z ]+?)(?: \[|$)", got.text, re.M)
    assert len(listed) == 3
    assert all(by_trial[t] == verdict for t, verdict in listed)
    excluding = [v for v in stated if v.verdict in ("excludes", "allows with conditions")]
    wanted = min(3, len(excluding))
    assert all(verdict in ("excludes", "allows with conditions") for _, verdict in listed[:wanted])
    assert f"{len(stated) - 3} more trials with a verdict are not listed here" in got.text
    assert f"{len(eval_index.trials)} trials checked:" in got.text
    assert got.citations and {c.trial_id for c in got.citations} <= {t for t, _ in listed}


def test_search_trials_among_some_trials_returns_only_those(eval_index: store.Index) -> None:
    retriever = Retriever(eval_index, SentenceEmbedder(eval_index.model))
    everyone = retriever.search_trials("prior PD-1 inhibitor treatment", per_trial=2)
    assert {g.trial.id for g in everyone} == set(eval_index.trials)
    some = [g.trial.id for g in everyone[-3:]] + ["NCT00000000"]
    groups = retriever.search_trials("prior PD-1 inhibitor treatment", per_trial=2, among=some)
    assert {g.trial.id for g in groups} == set(some[:3])
    for group in groups:
        assert 1 <= len(group.hits) <= 2
        assert all(h.chunk.trial_id == group.trial.id for h in group.hits)
        scores = [h.score for h in group.hits]
        assert scores == sorted(scores, reverse=True)
    best = [g.hits[0].score for g in groups]
    assert best == sorted(best, reverse=True)


@pytest.mark.parametrize(
    ("section", "text", "verdict"),
    [
        ("inclusion", "ECOG performance status must be less than or equal to 2", "allows"),
        ("exclusion", "ECOG performance status greater than 2", "allows"),
        ("exclusion", "ECOG performance status of 2 or more.", "excludes"),
        ("inclusion", "ECOG performance status of 0 or 1", "excludes"),
        ("inclusion", "ECOG performance status of at least 3", "excludes"),
    ],
)
def test_performance_status_bounds_in_words_decide_ecog_2(
    section: str, text: str, verdict: str
) -> None:
    chunk = Chunk("T/1", "T", "criterion", section, text, text, "T", "T/1", (0, len(text)))
    assert decide_ecog(2, [chunk]).verdict == verdict
