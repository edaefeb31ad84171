"""The hand-verified seed questions of eval/questions.jsonl, answered by the extractive backend.

Every question must be answered right: the expected values in the text, the expected verdict
for every trial, the right abstention, and the gold passages cited.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rag import store
from rag.answer import CANNOT_ANSWER, NO_TRIAL_MATCHES, Answer, Assistant, Conversation
from rag.embed import SentenceEmbedder
from rag.llm.base import get_backend

QUESTIONS = Path(__file__).resolve().parents[1] / "eval" / "questions.jsonl"
CASES = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def answers(seed_index: store.Index, embedder: SentenceEmbedder) -> dict[str, Answer]:
    assistant = Assistant(seed_index, embedder, get_backend("extractive"))
    conversations: dict[str, Conversation] = {}
    found: dict[str, Answer] = {}
    for case in CASES:
        conversation = conversations.setdefault(
            case.get("conversation", case["id"]), Conversation()
        )
        found[case["id"]] = assistant.ask(case["question"], conversation=conversation)
    return found


def test_the_set_is_large_and_varied() -> None:
    categories = {c["category"] for c in CASES}
    assert len(CASES) >= 25
    assert categories >= {"field", "threshold", "corpus", "followup", "unanswerable"}


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_question(case: dict[str, Any], answers: dict[str, Answer]) -> None:
    answer = answers[case["id"]]
    expected = case["expected"]
    shown = f"{case['question']!r} -> {answer.text!r}"
    if "abstain" in expected:
        assert answer.abstained, shown
        if expected["abstain"] == "no_match":
            assert answer.text in {NO_TRIAL_MATCHES, CANNOT_ANSWER}, shown
        else:
            assert answer.text.endswith("does not state this."), shown
        return
    assert not answer.abstained or "verdicts" in expected, shown
    for value in expected.get("contains", []):
        assert value in answer.text, shown
    if "verdicts" in expected:
        got = {v.trial_id: v.verdict for v in answer.verdicts}
        assert got == expected["verdicts"], shown
    cited = {c.chunk_id for c in answer.citations}
    assert set(case["cite"]) <= cited, shown
