"""Cited answers from the offline extractive backend over the seed corpus, as a user asks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag import store
from rag.answer import Assistant, Conversation
from rag.citations import check_citations, summary_line
from rag.cli import app
from rag.embed import SentenceEmbedder
from rag.llm.base import Passage, get_backend
from rag.types import Chunk


@pytest.fixture(scope="module")
def assistant(seed_index: store.Index, embedder: SentenceEmbedder) -> Assistant:
    return Assistant(seed_index, embedder, get_backend("extractive"))


def verdicts(assistant: Assistant, question: str) -> dict[str, tuple[str, str | None]]:
    answer = assistant.ask(question)
    return {v.trial_id: (v.verdict, v.criterion_id) for v in answer.verdicts}


def test_which_trials_allow_prior_pd1_inhibitors(assistant: Assistant) -> None:
    answer = assistant.ask("which trials allow prior PD-1 inhibitors?")
    assert {v.trial_id: (v.verdict, v.criterion_id) for v in answer.verdicts} == {
        "NCT04984096": ("requires", "NCT04984096/inclusion/5"),
        "T-ee5e47e5ae": ("excludes", "T-ee5e47e5ae/exclusion/1"),
        "T-01c13b784d": ("not stated", None),
        "T-fcd9d254a2": ("allows with conditions", "T-fcd9d254a2/inclusion/4"),
        "NCT03913182": ("not stated", None),
    }
    lines = answer.text.splitlines()
    # the washout is the condition, quoted
    assert 'excluded only if "within 3 months"' in lines[3]
    assert lines[-1] == (
        "5 trials checked: 1 allows it with conditions, 1 requires, 1 excludes, 2 do not state it"
    )
    # the camrelizumab trial's own chemo-immunotherapy (inclusion 5) is not read as prior
    # therapy; what excludes prior PD-1 is cited, its "no immunotherapy before" too
    cited = {c.chunk_id for c in answer.citations}
    assert {"T-ee5e47e5ae/exclusion/1", "T-ee5e47e5ae/inclusion/10"} <= cited
    assert "T-ee5e47e5ae/inclusion/5" not in cited


def test_a_patient_with_several_facts_gets_one_verdict_per_trial(assistant: Assistant) -> None:
    answer = assistant.ask(
        "Which trials could take a 70-year-old woman with ECOG 1 and controlled hepatitis B "
        "who was previously on nivolumab?"
    )
    found = {v.trial_id: v for v in answer.verdicts}
    # the camrelizumab trial excludes prior checkpoint inhibitors
    assert found["T-ee5e47e5ae"].verdict == "excludes"
    assert found["T-ee5e47e5ae"].criterion_id == "T-ee5e47e5ae/exclusion/1"
    # APEC requires prior PD-1 treatment (with anlotinib): for her a condition, not a bar
    assert found["NCT04984096"].verdict == "allows with conditions"
    assert "requires it" in found["NCT04984096"].note
    # hepatitis B is excluded only when active by the trial's viral-load definition
    assert found["T-01c13b784d"].verdict == "allows with conditions"
    assert "DNA ≥ 104" in found["T-01c13b784d"].note
    # every fact counted: what a trial does not state is said
    assert "1 of the facts not stated" in found["T-fcd9d254a2"].note


def test_trials_a_patients_status_or_age_leaves_out_are_named(assistant: Assistant) -> None:
    answer = assistant.ask(
        "recruiting trials for a 79 year old man with ECOG 2 and treated stable brain metastases"
    )
    assert {v.trial_id for v in answer.verdicts} == {"T-fcd9d254a2", "NCT03913182"}
    assert answer.text.splitlines()[-1] == (
        "Left out by their record's fields: 3 trials: T-01c13b784d (status: not stated); "
        "NCT04984096 (status: Unknown status); T-ee5e47e5ae (status: Not yet recruiting)"
    )


def test_which_trials_accept_ecog_2(assistant: Assistant) -> None:
    assert verdicts(assistant, "which trials accept ECOG 2?") == {
        "NCT04984096": ("allows", "NCT04984096/inclusion/2"),
        "T-01c13b784d": ("excludes", "T-01c13b784d/inclusion/6"),
        "T-fcd9d254a2": ("excludes", "T-fcd9d254a2/inclusion/6"),
        "T-ee5e47e5ae": ("excludes", "T-ee5e47e5ae/inclusion/7"),
        "NCT03913182": ("not stated", None),
    }


def test_which_trials_would_exclude_a_78_year_old(assistant: Assistant) -> None:
    found = verdicts(assistant, "which trials would exclude a 78-year-old?")
    assert found["T-ee5e47e5ae"] == ("excludes", "T-ee5e47e5ae/inclusion/1")
    assert found["T-01c13b784d"] == ("allows", "T-01c13b784d/inclusion/4")
    assert found["NCT03913182"] == ("allows", None)  # its card: ages 18 to 125
    assert {v for v, _ in found.values()} == {"allows", "excludes"}


def test_threshold_of_a_named_trial(assistant: Assistant) -> None:
    answer = assistant.ask("what platelet count does the Fudan trial require?")
    assert "platelets ≥ 100 × 10^9 / L" in answer.text
    assert [c.chunk_id for c in answer.citations] == ["T-fcd9d254a2/inclusion/8.2"]
    (citation,) = answer.citations
    source = (
        Path(__file__).resolve().parents[1] / "corpus" / "003_3a8d64e594130fed.txt"
    ).read_text()
    assert citation.span is not None
    assert source[citation.span[0] : citation.span[1]] == "platelets ≥ 100 × 10^9 / L;"
    assert not answer.abstained


def test_field_question_cites_the_card_and_follow_up_keeps_the_trial(assistant: Assistant) -> None:
    conversation = Conversation()
    answer = assistant.ask("who sponsors the camrelizumab trial?", conversation=conversation)
    assert "Zhejiang Cancer Hospital" in answer.text
    assert [c.chunk_id for c in answer.citations] == ["T-ee5e47e5ae/card"]
    follow = assistant.ask("and its platelet threshold?", conversation=conversation)
    assert "platelets ≥10×10 9 /L" in follow.text
    assert {c.trial_id for c in follow.citations} == {"T-ee5e47e5ae"}


def test_abstentions_tell_no_match_from_not_stated(assistant: Assistant) -> None:
    answer = assistant.ask("What is the Fudan trial's policy on tattoos?")
    assert answer.abstained
    assert answer.text == (
        "The record of T-fcd9d254a2 (Local Therapy for Oligorecurrent and Oligometastatic "
        "Esophageal Squamous Cell Carcinoma) does not state this."
    )
    assert answer.citations == ()
    answer = assistant.ask("What is the capital of France?")
    assert answer.abstained
    assert answer.text == (
        "I cannot answer this from the trial records: no retrieved passage supports an answer."
    )


def test_invented_markers_are_removed_and_reported() -> None:
    chunk = Chunk("T-1/inclusion/1", "T-1", "criterion", "inclusion", "Age ≥ 18", "", "T")
    text, citations, removed = check_citations(
        "Adults only [1]. Also children [7].", (Passage(1, chunk),)
    )
    assert text == "Adults only [1]. Also children."
    assert [c.chunk_id for c in citations] == ["T-1/inclusion/1"]
    assert removed == (7,)


def test_summary_line_wording() -> None:
    from rag.types import Verdict

    line = summary_line([Verdict("a", "allows", None), Verdict("b", "allows", None)])
    assert line == "2 trials checked: 2 allow"


def test_ask_command_json(seed_index_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(seed_index_root)
    result = CliRunner().invoke(app, ["ask", "which trials allow prior PD-1 inhibitors?", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"answer", "citations", "verdicts", "abstained", "unsupported", "question"}
    assert data["unsupported"] == []  # the extractive backend writes only cited sentences
    assert (
        data["question"]["kind"] == "scan" and data["question"]["topic"] == "prior PD-1 inhibitors"
    )
    assert {
        "trial_id": "NCT04984096",
        "verdict": "requires",
        "criterion_id": "NCT04984096/inclusion/5",
        "note": "",
    } in data["verdicts"]
    assert set(data["citations"][0]) == {
        "marker", "trial_id", "chunk_id", "criterion_id", "section", "text", "span"
    }  # fmt: skip
    result = CliRunner().invoke(app, ["ask", "x", "--backend", "nope"])
    assert result.exit_code == 1
    assert result.stderr == "error: Unknown backend 'nope'; available: extractive, openai\n"


def test_age_limits_of_an_exclusion_criterion_say_whom_it_excludes() -> None:
    from rag.types import Source, Trial
    from rag.verdicts import decide_age

    def criterion(section: str, text: str) -> Chunk:
        return Chunk(f"T-1/{section}/1", "T-1", "criterion", section, text, "", "T")

    trial = Trial("T-1", Source("x", "text"))
    card = Chunk("T-1/card", "T-1", "card", "card", "Trial: T-1", "", "T")
    older = criterion("exclusion", "Patients older than 75 years")
    assert decide_age(78, trial, [older], card).verdict == "excludes"
    assert decide_age(60, trial, [older], card).verdict == "allows"
    adults = criterion("inclusion", "Age 18 to 75 years")
    assert decide_age(78, trial, [adults], card).verdict == "excludes"
    assert decide_age(60, trial, [adults], card).verdict == "allows"


def test_trial_ids_are_found_in_any_case(
    seed_index: store.Index, embedder: SentenceEmbedder
) -> None:
    assistant = Assistant(seed_index, embedder, get_backend("extractive"))
    for typed in ("T-fcd9d254a2", "t-FCD9D254A2", "t-fcd9d254a2"):
        answer = assistant.ask(f"who sponsors {typed}?")
        assert answer.trial_id == "T-fcd9d254a2" and "Fudan University" in answer.text, typed
    assert assistant.ask("who sponsors nct04984096?").trial_id == "NCT04984096"


def test_comparison_says_which_fields_each_trial_leaves_out(assistant: Assistant) -> None:
    answer = assistant.ask("compare the phase and enrollment of the APEC study and the Fudan trial")
    apec, fudan = answer.text.split("\n\n")[0].splitlines()
    assert apec.startswith("NCT04984096 (APEC: ")
    assert "enrollment is 50 [1]; phase is not stated in the record." in apec
    assert fudan.startswith("T-fcd9d254a2 (Local Therapy")
    assert "phase is Phase 2 [2]; enrollment is not stated in the record." in fudan
    assert [c.chunk_id for c in answer.citations] == ["NCT04984096/card", "T-fcd9d254a2/card"]


def test_patient_facts_give_one_verdict_citing_every_deciding_criterion(
    assistant: Assistant,
) -> None:
    answer = assistant.ask("which trials would take a 70-year-old woman with ECOG 1?")
    cited = {c.chunk_id for c in answer.citations}
    # Age and ECOG are two criteria in these trials: both are cited for the one verdict.
    assert {"T-ee5e47e5ae/inclusion/1", "T-ee5e47e5ae/inclusion/7"} <= cited
    assert {"NCT04984096/inclusion/1", "NCT04984096/inclusion/2"} <= cited
    assert {v.trial_id: v.verdict for v in answer.verdicts}["T-ee5e47e5ae"] == "allows"
    older = verdicts(assistant, "which trials would take a 78-year-old man with ECOG 1?")
    # Excluded by age: the age criterion alone is the reason given.
    assert older["T-ee5e47e5ae"] == ("excludes", "T-ee5e47e5ae/inclusion/1")


def test_an_exclusion_carve_out_allows_what_it_names(assistant: Assistant) -> None:
    # 004 exclusion 12: "Autoimmune diseases (such as: systemic lupus erythematosus, ...), but
    # allow the following diseases to enter the next step of screening: type I diabetes, ..."
    carved = assistant.ask("my patient has type 1 diabetes - can he join the camrelizumab trial?")
    # let in on the carve-out's terms ("to the next step of screening"), which are quoted
    assert carved.text.startswith("Yes, with conditions.")
    assert [v.criterion_id for v in carved.verdicts] == ["T-ee5e47e5ae/exclusion/12"]
    assert carved.verdicts[0].note.startswith('let in by "allow the following diseases')
    lupus = assistant.ask("can a patient with lupus join the camrelizumab trial?")
    assert lupus.text.startswith("No.")
    assert [v.criterion_id for v in lupus.verdicts] == ["T-ee5e47e5ae/exclusion/12"]
