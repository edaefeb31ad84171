"""The eval harness itself: normalised matching, scoring, set files and thresholds."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag import evaluation
from rag.citations import NO_TRIAL_MATCHES, NOT_STATED
from rag.evaluation import EvalError, contains, normalise, score
from rag.types import Answer, Citation, Verdict


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Phase: PHASE2 [1]", "Phase 2"),
        ("It is a Phase II study", "PHASE2"),
        ("Phase: PHASE1/PHASE2", "Phase 1"),
        ("Phase: PHASE1/PHASE2", "Phase 2"),
        ("a phase 1/2 trial", "Phase 2"),
        ("Status: ACTIVE_NOT_RECRUITING", "Active, not recruiting"),
        ("Status: NOT_YET_RECRUITING", "Not yet recruiting"),
        ("Status: UNKNOWN", "Unknown status"),
        ("Start date: 1982-04", "April 1982"),
        ("Completion date: 2025-12-01", "December 1, 2025"),
        ("completes on 1 December 2025", "2025-12-01"),
        ("Enrollment: 1200", "1,200"),
        ("Ages: 18 to 75 years", "18 Years"),
        ("Ages: 18 to 75 years", "75 Years"),
        ("Ages: 18 years and older", "18 Years"),
        ("aged 18-75 yrs", "75 years"),
        (
            "Sponsor: National Center for Research Resources (NCRR)",
            "National Center for Research Resources (NCRR)",
        ),
        ("Conditions: Carcinoma, Non-Small-Cell Lung", "carcinoma non small cell lung"),
        ("platelets ≥ 100 × 10^9/L", "100"),
        ("requires HB ≥90g/L", "90"),
        ("excludes BMI <18.5kg/m", "18.5"),
    ],
)
def test_values_match_after_normalising(text: str, value: str) -> None:
    assert contains(text, value), (normalise(text), normalise(value))


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Status: NOT_YET_RECRUITING", "Recruiting"),
        ("Status: ACTIVE_NOT_RECRUITING", "Recruiting"),
        ("Sex: FEMALE", "male"),
        ("Enrollment: 180", "18"),
        ("Enrollment: 1.5", "1"),
        ("Enrollment: 1,500", "1"),
        ("HB ≥900g/L", "90"),
        ("a 5mm lesion", "5 cm"),
        ("Phase: PHASE2", "Phase 3"),
        ("Start date: 2019-03", "March 2018"),
        ("Start date: 2019-03-15", "2019-03-16"),
        ("Ages: 18 to 75 years", "17 years"),
        ("anything", ""),
    ],
)
def test_values_that_differ_do_not_match(text: str, value: str) -> None:
    assert not contains(text, value), (normalise(text), normalise(value))


def _citation(chunk_id: str, text: str, marker: int = 1) -> Citation:
    trial_id = chunk_id.split("/")[0]
    return Citation(marker, trial_id, chunk_id, None, "card", text, None, "T")


def _case(expected: dict[str, object], cite: list[str] | None = None) -> dict[str, object]:
    return {"id": "x", "question": "q?", "category": "c", "expected": expected, "cite": cite or []}


def test_a_right_value_with_its_passage_cited_scores_fully() -> None:
    answer = Answer(
        "q?", "The phase is PHASE2 [1].", citations=(_citation("T-1/card", "Phase: PHASE2"),)
    )
    outcome = score(_case({"contains": ["Phase 2"]}, ["T-1/card"]), answer, 5, 1.0)
    assert outcome.correct
    assert outcome.citation_precision == 1.0 and outcome.citation_recall == 1.0


def test_a_cited_passage_without_the_value_lowers_precision() -> None:
    answer = Answer(
        "q?",
        "PHASE2 [1] [2].",
        citations=(
            _citation("T-1/card", "Phase: PHASE2"),
            _citation("T-1/inclusion/1", "Age 18 or over", marker=2),
        ),
    )
    outcome = score(_case({"contains": ["Phase 2"]}, ["T-1/card"]), answer, 5, 1.0)
    assert outcome.correct
    assert outcome.citation_precision == 0.5


def test_the_right_value_in_an_abstention_is_not_an_answer() -> None:
    answer = Answer("q?", "PHASE2 maybe", abstained=True)
    assert not score(_case({"contains": ["Phase 2"]}), answer, 5, 1.0).correct


def test_answering_an_unanswerable_question_is_wrong() -> None:
    answered = Answer("q?", "Enrollment is 50 [1].", citations=(_citation("T-1/card", "50"),))
    case = _case({"abstain": "not_stated"})
    outcome = score(case, answered, 5, 1.0)
    assert not outcome.correct
    report = evaluation.Report("s", "b", "i", 5, [outcome])
    assert report.rows()["all"]["wrong_on_unanswerable"] == 1
    assert report.rows()["all"]["abstention_accuracy"] == 0.0
    # The right kind of abstention counts; the wrong kind does not.
    stated = Answer("q?", NOT_STATED.format(trial="T-1 (x)"), abstained=True)
    assert score(case, stated, 5, 1.0).correct
    assert not score(case, Answer("q?", NO_TRIAL_MATCHES, abstained=True), 5, 1.0).correct


def test_verdicts_are_scored_per_trial() -> None:
    answer = Answer(
        "q?",
        "...",
        verdicts=(
            Verdict("T-1", "excludes", "T-1/exclusion/1"),
            Verdict("T-2", "allows", "T-2/inclusion/3"),
            Verdict("T-3", "not stated", None),
        ),
    )
    case = _case({"verdicts": {"T-1": "excludes", "T-2": "not stated", "T-3": "not stated"}})
    outcome = score(case, answer, 5, 1.0)
    assert not outcome.correct
    assert outcome.verdict_accuracy == pytest.approx(2 / 3)
    # the report shows where verdicts went: expected (rows) against given (columns)
    report = evaluation.Report("s", "b", "i", 5, [outcome])
    assert report.confusion() == {
        "c": {
            ("excludes", "excludes"): 1,
            ("not stated", "allows"): 1,
            ("not stated", "not stated"): 1,
        }
    }
    markdown = report.to_markdown()
    assert "### c: expected (rows) against given (columns)" in markdown
    assert "| not stated | 1 | 0 | 0 | 0 | 1 |" in markdown  # given allows once, not stated once
    assert {"expected": "not stated", "given": "allows", "n": 1} in report.to_json()["confusion"][
        "c"
    ]


def test_trial_lists_must_match_exactly() -> None:
    cards = tuple(_citation(f"NCT0000000{i}/card", "Sponsor: X", i) for i in (1, 2, 3))
    answer = Answer("q?", "3 trials match", citations=cards)
    outcome = score(_case({"trials": ["NCT00000001", "NCT00000002"]}), answer, 5, 1.0)
    assert not outcome.correct
    assert outcome.verdict_accuracy == pytest.approx(2 / 3)


def test_thresholds_fail_the_report_by_name() -> None:
    wrong = score(_case({"contains": ["7"]}), Answer("q?", "six"), 5, 1.0)
    report = evaluation.Report("s", "b", "i", 5, [wrong], {"answer_accuracy": 0.5})
    assert report.failures() == ["answer_accuracy 0.000 is below the threshold 0.500"]
    assert "- FAIL: answer_accuracy" in report.to_markdown()


def test_thresholds_on_the_command_line_are_checked() -> None:
    assert evaluation.parse_thresholds(["mrr=0.5", "answer_accuracy=1"]) == {
        "mrr": 0.5,
        "answer_accuracy": 1.0,
    }
    with pytest.raises(EvalError, match="unknown metric 'accuracy'; use answer_accuracy"):
        evaluation.parse_thresholds(["accuracy=0.5"])
    with pytest.raises(EvalError, match="write METRIC=VALUE"):
        evaluation.parse_thresholds(["mrr"])
    with pytest.raises(EvalError, match="must be a number in 0..1"):
        evaluation.parse_thresholds(["mrr=5"])


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "eval.jsonl:2: not JSON"),
        ('{"id": "a", "question": "q", "category": "c"}', "eval.jsonl:2: missing field 'expected'"),
        (
            '{"id": "a", "question": "q", "category": "c", "expected": {"abstain": "maybe"}}',
            "'abstain' must be 'not_stated' or 'no_match'",
        ),
        (
            '{"id": "a", "question": "q", "category": "c", "expected": {}}',
            "'expected' must hold exactly one of contains, verdicts, trials, yes_no, count, "
            "abstain",
        ),
        ('{"meta": {"thresholds": {"speed": 1}}}', "unknown metric 'speed'"),
    ],
)
def test_bad_set_files_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    good = '{"id": "ok", "question": "q", "category": "c", "expected": {"contains": ["x"]}}'
    path = tmp_path / "eval.jsonl"
    path.write_text(good + "\n" + line + "\n")
    with pytest.raises(EvalError, match=message.replace("(", r"\(").replace(".", r"\.")):
        evaluation.load_set(str(path))


def test_a_missing_set_lists_the_known_ones(tmp_path: Path) -> None:
    (tmp_path / "seed.jsonl").write_text("")
    with pytest.raises(EvalError, match=r"nope\.jsonl: cannot read the eval set .*: seed"):
        evaluation.load_set("nope", root=tmp_path)
