"""The openai backend against our own OpenAI-compatible server on loopback."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rag import store
from rag.answer import Assistant
from rag.cli import app
from rag.embed import SentenceEmbedder
from rag.llm.base import BackendError, Passage, Task, get_backend
from rag.llm.openai import OpenAIBackend
from rag.types import Chunk
from tests.openai_server import Behaviour, serve

CHUNK = Chunk("T-1/inclusion/1", "T-1", "criterion", "inclusion", "Age 18 to 75 years", "", "T")
TASK = Task(
    kind="answer",
    question="What ages?",
    passages=(Passage(1, CHUNK),),
    messages=({"role": "user", "content": "What ages?"},),
)


@pytest.fixture
def server() -> Iterator[tuple[str, Behaviour]]:
    behaviour = Behaviour()
    with serve(behaviour) as url:
        yield url, behaviour


def backend(url: str, **options: Any) -> OpenAIBackend:
    return OpenAIBackend(
        base_url=url, model="test-model", api_key="sk-test", backoff=0.01, **options
    )


def test_plain_and_streamed_answers(server: tuple[str, Behaviour]) -> None:
    url, behaviour = server
    assert "".join(backend(url, stream=False).generate(TASK)) == "Adults aged 18 to 75 years [1]."
    pieces = list(backend(url, stream=True).generate(TASK))
    assert len(pieces) == 7  # one event per word
    assert "".join(pieces).strip() == "Adults aged 18 to 75 years [1]."
    sent = behaviour.requests[-1]
    assert sent["model"] == "test-model" and sent["stream"] is True
    assert sent["messages"] == [{"role": "user", "content": "What ages?"}]


@pytest.mark.parametrize("stream", [False, True])
def test_500_then_success_is_retried(server: tuple[str, Behaviour], stream: bool) -> None:
    url, behaviour = server
    behaviour.fail_status, behaviour.fail_times = 500, 2
    text = "".join(backend(url, stream=stream).generate(TASK))
    assert text.strip() == "Adults aged 18 to 75 years [1]."
    assert len(behaviour.requests) == 3


def test_persistent_429_gives_up_with_one_line(server: tuple[str, Behaviour]) -> None:
    url, behaviour = server
    behaviour.fail_status, behaviour.fail_times = 429, 10
    with pytest.raises(BackendError) as caught:
        list(backend(url, stream=False, retries=2).generate(TASK))
    assert str(caught.value).startswith(f"The server at {url} answered HTTP 429 after 2 retries")
    assert len(behaviour.requests) == 3


def test_timeout(server: tuple[str, Behaviour]) -> None:
    url, behaviour = server
    behaviour.delay = 2.0
    started = time.monotonic()
    with pytest.raises(BackendError, match="did not answer in time"):
        list(backend(url, stream=False, timeout=0.3).generate(TASK))
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize("stream", [False, True])
def test_garbage_is_reported(server: tuple[str, Behaviour], stream: bool) -> None:
    url, behaviour = server
    behaviour.garbage = True
    with pytest.raises(BackendError, match="not a chat completion"):
        list(backend(url, stream=stream).generate(TASK))


def test_server_down() -> None:
    with pytest.raises(
        BackendError, match=r"Cannot reach an OpenAI-compatible server at http://127\.0\.0\.1:9/v1"
    ):
        list(backend("http://127.0.0.1:9/v1", retries=1).generate(TASK))


def test_answer_through_openai_strips_invented_markers_and_marks_what_cites_nothing(
    server: tuple[str, Behaviour], seed_index: store.Index, embedder: SentenceEmbedder
) -> None:
    url, behaviour = server
    behaviour.reply = (
        "The Fudan trial requires platelets ≥ 1.5 × 10^11/L [1]. It also needs a pet [42]. "
        "Dr. Li runs it. Its neutrophils bound is also given. [1]"
    )
    assistant = Assistant(seed_index, embedder, get_backend("openai", base_url=url, api_key="k"))
    answer = assistant.ask("what platelet count does the Fudan trial require?")
    assert answer.removed_markers == (42,)
    assert answer.text == (
        "The Fudan trial requires platelets ≥ 1.5 × 10^11/L [1]. It also needs a pet "
        "[unsupported]. Dr. Li runs it [unsupported]. Its neutrophils bound is also given. [1]"
    )
    assert answer.unsupported == ("It also needs a pet.", "Dr. Li runs it.")
    assert [c.marker for c in answer.citations] == [1]
    assert answer.citations[0].trial_id == "T-fcd9d254a2"
    prompt = behaviour.requests[-1]["messages"]
    assert prompt[0]["role"] == "system" and "[1]" in prompt[1]["content"]


def test_llm_verdicts_are_checked_against_the_cited_text(
    server: tuple[str, Behaviour], seed_index: store.Index, embedder: SentenceEmbedder
) -> None:
    url, behaviour = server
    assistant = Assistant(seed_index, embedder, get_backend("openai", base_url=url, api_key="k"))
    # Learn the markers the prompt gives, then answer with one right, one wrong and one
    # invented citation.
    behaviour.reply = "nothing yet"
    assistant.ask("which trials allow prior PD-1 inhibitors?")
    prompt = behaviour.requests[-1]["messages"][1]["content"]
    blocks = re.findall(r"^\[(\d+)\] [^\n]*\((\S+)\) \| (\w+)[^\n]*\n([^\n]*)", prompt, re.M)
    pd1 = next(m for m, trial, _, text in blocks if trial == "T-ee5e47e5ae" and "anti-PD-1" in text)
    other = next(
        m
        for m, trial, section, text in blocks
        if trial == "NCT04984096" and section != "card" and "PD-1" not in text
    )
    behaviour.reply = (
        f"- T-ee5e47e5ae: excludes [{pd1}]\n"
        f"- NCT04984096: requires [{other}]\n"
        "- T-fcd9d254a2: allows [999]\n"
        "5 trials checked: 1 excludes, 1 requires, 1 allows"
    )
    answer = assistant.ask("which trials allow prior PD-1 inhibitors?")
    got = {v.trial_id: v.verdict for v in answer.verdicts}
    assert got["T-ee5e47e5ae"] == "excludes"
    assert got["NCT04984096"] == "not stated"  # its cited passage is not about PD-1
    assert got["T-fcd9d254a2"] == "not stated"  # [999] was never retrieved
    assert answer.removed_markers == (999,)
    assert "- T-fcd9d254a2: allows [unsupported]" in answer.text.splitlines()
    assert answer.text.splitlines()[-1] == "5 trials checked: 1 excludes, 4 do not state it"


def test_ask_with_the_server_down_still_shows_the_passages(
    seed_index_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(seed_index_root)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    result = CliRunner().invoke(
        app, ["ask", "what platelet count does the Fudan trial require?", "-b", "openai"]
    )
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        "error: Cannot reach an OpenAI-compatible server at http://127.0.0.1:9/v1"
    )
    assert result.stdout.startswith("Retrieved passages (no answer was written):\n 1. ")
    assert "T-fcd9d254a2/inclusion/8.2" in result.stdout


def test_ask_warns_of_each_sentence_that_cites_nothing(
    server: tuple[str, Behaviour], seed_index_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, behaviour = server
    behaviour.reply = "Platelets of at least 100 × 10^9/L [1]. Parking is free."
    monkeypatch.chdir(seed_index_root)
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    result = CliRunner().invoke(
        app, ["ask", "what platelet count does the Fudan trial require?", "-b", "openai"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(
        "Platelets of at least 100 × 10^9/L [1]. Parking is free [unsupported].\n"
    )
    assert result.stderr.splitlines() == [
        "warning: cites no passage, marked [unsupported]: Parking is free."
    ]


SEED_SET = Path(__file__).resolve().parents[1] / "eval" / "seed.jsonl"


def test_eval_runs_the_seed_set_through_the_server(
    server: tuple[str, Behaviour],
    seed_index_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    url, behaviour = server
    behaviour.reply = "The record gives Status: RECRUITING [1]."
    monkeypatch.chdir(seed_index_root)
    result = CliRunner().invoke(
        app,
        ["eval", "--set", str(SEED_SET), "-b", "openai", "--base-url", url, "--out", str(tmp_path)],
    )
    # The same answer to every question: below the set's thresholds, so the run fails.
    assert result.exit_code == 1, result.output
    assert "FAIL: answer_accuracy" in result.stderr
    data = json.loads((tmp_path / "seed-openai.json").read_text())
    assert data["backend"] == "openai"
    outcomes = {q["id"]: q for q in data["questions"]}
    asked = {m["content"] for r in behaviour.requests for m in r["messages"]}
    # Each question that reached the backend was sent in its prompt, and its reply scored.
    assert any("Is NCT03913182 still recruiting?" in text for text in asked)
    assert outcomes["q02"]["correct"] and outcomes["q02"]["answer"].startswith(
        "The record gives Status: RECRUITING [1]"
    )
    assert not outcomes["q01"]["correct"]  # asks for the phase
    # Corpus-wide questions get no verdict lines back: every trial is "not stated".
    corpus = data["categories"]["corpus"]
    assert corpus["answer_accuracy"] == 0.0 and corpus["verdict_accuracy"] < 0.5
    assert data["categories"]["all"]["errors"] == 0


def test_eval_with_the_server_down_records_every_failure(
    seed_index_root: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(seed_index_root)
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--set",
            str(SEED_SET),
            "-b",
            "openai",
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 1
    assert "questions failed; first: Cannot reach an OpenAI-compatible server" in result.stderr
    data = json.loads((tmp_path / "seed-openai.json").read_text())
    failed = [q for q in data["questions"] if q["error"]]
    assert failed and all(not q["correct"] for q in failed)
    assert data["categories"]["all"]["errors"] == len(failed)


def test_the_model_plans_the_question_when_its_plan_is_valid(
    server: tuple[str, Behaviour], seed_index: store.Index, embedder: SentenceEmbedder
) -> None:
    url, behaviour = server
    assistant = Assistant(seed_index, embedder, get_backend("openai", base_url=url, api_key="k"))
    question = "tell me about the money behind Fudan's study"
    rules = assistant.understand(question)  # the loopback reply is no JSON: the rules stand
    assert rules.kind != "field" or rules.fields != ("sponsor",)
    behaviour.plan_reply = (
        '{"kind": "field", "trials": ["T-fcd9d254a2"], "fields": ["sponsor"], "topic": ""}'
    )
    behaviour.reply = "Fudan University sponsors it [1]."
    answer = assistant.ask(question)
    plan_request, answer_request = behaviour.requests[-2:]
    assert plan_request["stream"] is False
    assert '"required": ["kind"]' in plan_request["messages"][0]["content"]  # the schema
    assert answer.understood is not None
    assert (answer.understood.kind, answer.understood.fields) == ("field", ("sponsor",))
    # The plan decided what was read: the Fudan trial's card, whose sponsor the model cites.
    assert "Sponsor: Fudan University" in answer_request["messages"][1]["content"]
    assert answer.text == "Fudan University sponsors it [1]."
    assert [c.chunk_id for c in answer.citations] == ["T-fcd9d254a2/card"]


@pytest.mark.parametrize(
    "plan",
    [
        "Sure! The question is about the sponsor.",  # no JSON
        '{"kind": "gossip"}',  # no such kind
        '{"kind": "field", "trials": ["NCT00000000"], "fields": ["sponsor"]}',  # no such trial
        '{"kind": "field", "trials": ["T-fcd9d254a2"], "fields": ["favourite colour"]}',
        '{"kind": "field", "trials": ["T-fcd9d254a2"], "mood": "happy"}',  # unknown key
        '{"kind": "scan", "filters": {"colour": "red"}}',  # unknown filter
        '{"kind": "scan", "patient": {"ecog": 9}}',  # impossible value
    ],
)
def test_an_invalid_plan_leaves_the_rules_reading(
    plan: str,
    server: tuple[str, Behaviour],
    seed_index: store.Index,
    embedder: SentenceEmbedder,
) -> None:
    url, behaviour = server
    backend = get_backend("openai", base_url=url, api_key="k")
    assistant = Assistant(seed_index, embedder, backend)
    question = "who sponsors the Fudan trial?"
    behaviour.plan_reply = plan
    planned = assistant.understand(question)
    backend.plans = False  # type: ignore[attr-defined]
    assert planned == assistant.understand(question)
    assert (planned.kind, planned.trials, planned.fields) == (
        "field",
        ("T-fcd9d254a2",),
        ("sponsor",),
    )


def test_planning_is_skipped_fast_when_the_server_fails(
    server: tuple[str, Behaviour], seed_index: store.Index, embedder: SentenceEmbedder
) -> None:
    url, behaviour = server
    behaviour.fail_status, behaviour.fail_times = 500, 1  # the plan request fails, once
    assistant = Assistant(seed_index, embedder, get_backend("openai", base_url=url, api_key="k"))
    answer = assistant.ask("who sponsors the Fudan trial?")
    assert len(behaviour.requests) == 2  # the plan (not retried), then the answer
    assert answer.understood is not None and answer.understood.fields == ("sponsor",)
