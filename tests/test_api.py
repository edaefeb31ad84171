"""The HTTP API through a real uvicorn on loopback: answers, streaming, trials, limits, auth,
a failing or slow LLM backend, and concurrent requests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from rag.api import MAX_BODY_BYTES, create_app
from rag.cli import app as cli
from tests.api_server import running
from tests.openai_server import Behaviour, serve

PLATELETS = "what platelet count does the Fudan trial require?"


@pytest.fixture(scope="module")
def api(seed_index_root: Path) -> Iterator[str]:
    with running(create_app(root=seed_index_root / "index")) as url:
        yield url


def ask(url: str, body: object, **options: object) -> httpx.Response:
    return httpx.post(f"{url}/v1/ask", json=body, timeout=60, **options)  # type: ignore[arg-type]


def test_health_and_readiness(api: str) -> None:
    assert httpx.get(f"{api}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{api}/readyz", headers={"X-Request-ID": "trace-42"})
    assert ready.json() == {
        "status": "ready",
        "index": "default",
        "trials": 5,
        "chunks": 135,
        "model": "all-MiniLM-L6-v2",
    }
    assert ready.headers["x-request-id"] == "trace-42"
    assert len(httpx.get(f"{api}/healthz").headers["x-request-id"]) == 16
    assert httpx.get(f"{api}/docs").status_code == 200
    assert "/v1/ask" in httpx.get(f"{api}/openapi.json").json()["paths"]


def test_ask_gives_what_rag_ask_json_gives(
    api: str, seed_index_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(seed_index_root)
    for question in (PLATELETS, "which trials allow prior PD-1 inhibitors?"):
        cli_answer = json.loads(CliRunner().invoke(cli, ["ask", question, "--json"]).stdout)
        response = ask(api, {"question": question})
        assert response.status_code == 200
        got = response.json()
        assert got["timings"]["total_ms"] > 0
        assert {k: got[k] for k in cli_answer} == cli_answer
    assert got["verdicts"] and got["verdicts"][0]["trial_id"]


def test_streamed_answer_ends_with_the_checked_answer(api: str) -> None:
    plain = ask(api, {"question": PLATELETS}).json()
    with httpx.stream(
        "POST", f"{api}/v1/ask", json={"question": PLATELETS, "stream": True}, timeout=60
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [
            (block.split("\n")[0].removeprefix("event: "), json.loads(block.split("data: ")[1]))
            for block in response.read().decode().strip().split("\n\n")
        ]
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "answer" and set(kinds[:-1]) == {"token"}
    final = events[-1][1]
    assert {k: final[k] for k in ("answer", "citations", "verdicts", "abstained")} == {
        k: plain[k] for k in ("answer", "citations", "verdicts", "abstained")
    }
    assert "".join(data["text"] for kind, data in events[:-1]) == final["answer"]
    assert final["timings"]["first_token_ms"] <= final["timings"]["total_ms"]


def test_follow_ups_stay_with_their_conversation(api: str) -> None:
    ask(api, {"question": PLATELETS, "conversation_id": "c-1"})
    follow = ask(api, {"question": "and who sponsors it?", "conversation_id": "c-1"}).json()
    assert "Fudan University" in follow["answer"] and follow["trial_id"] == "T-fcd9d254a2"
    assert follow["conversation_id"] == "c-1"
    ask(api, {"question": "how many will NCT04984096 enroll?", "conversation_id": "c-2"})
    other = ask(api, {"question": "and who sponsors it?", "conversation_id": "c-2"}).json()
    assert "Shanghai Chest Hospital" in other["answer"] and other["trial_id"] == "NCT04984096"
    again = ask(api, {"question": "what phase is it?", "conversation_id": "c-1"}).json()
    assert again["trial_id"] == "T-fcd9d254a2"


def test_search_and_trials(api: str, seed_index_root: Path) -> None:
    hits = httpx.get(f"{api}/v1/search", params={"q": "ECOG performance status", "k": 3}).json()
    assert len(hits["hits"]) == 3 and all("ECOG" in h["text"] for h in hits["hits"])
    page = httpx.get(f"{api}/v1/trials", params={"limit": 2}).json()
    assert (page["total"], page["offset"], page["limit"], len(page["trials"])) == (5, 0, 2, 2)
    rest = httpx.get(f"{api}/v1/trials", params={"offset": 2, "limit": 10}).json()
    ids = [t["id"] for t in page["trials"] + rest["trials"]]
    assert len(set(ids)) == 5 and ids == sorted(ids)
    recruiting = httpx.get(f"{api}/v1/trials", params={"status": "recruiting"}).json()
    assert recruiting["total"] == 2
    assert {t["status"] for t in recruiting["trials"]} == {"RECRUITING"}
    trial = httpx.get(f"{api}/v1/trials/t-fcd9d254a2").json()
    assert trial["sponsor"] == "Fudan University"
    criterion = next(c for c in trial["criteria"] if c["id"] == "T-fcd9d254a2/inclusion/8.2")
    page_text = Path(trial["source"]["path"]).read_text(encoding="utf-8")
    start, end = criterion["span"]
    assert page_text[start:end] == criterion["text"]
    # Values the page leaves empty, read from its own words, each saying where.
    zhejiang = httpx.get(f"{api}/v1/trials/T-ee5e47e5ae").json()
    assert zhejiang["name"].startswith("A Multicenter, Randomized Controlled, Phase II")
    assert zhejiang["allocation"] is None  # the page states no design section
    derived = {d["field"]: d for d in zhejiang["derived"]}
    assert derived["max_age_years"]["value"] == 75
    assert derived["max_age_years"]["criterion_id"] == "T-ee5e47e5ae/inclusion/1"
    assert (derived["allocation"]["value"], derived["allocation"]["quote"]) == (
        "RANDOMIZED",
        "Randomized",
    )
    assert "Ages: 18 to 75 years (from inclusion criterion 1)" in zhejiang["card"].splitlines()
    assert httpx.get(f"{api}/v1/trials/T-01c13b784d").json()["contacts"] == ["Jianwei Zhou"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("POST", "/v1/ask", {"question": "x" * 2001}, 422, "question: String should have at most"),
        ("POST", "/v1/ask", {"question": ""}, 422, "question: String should have at least 1"),
        ("POST", "/v1/ask", {"question": "q", "colour": "red"}, 422, "colour: unknown field"),
        ("POST", "/v1/ask", {"question": "q", "k": 0}, 422, "k: Input should be greater"),
        ("POST", "/v1/ask", {"question": "q", "filters": {"phase": "7"}}, 422, "'phase=7': use"),
        ("POST", "/v1/ask", {"question": "q", "filters": {"size": "2"}}, 422, "size: unknown"),
        ("POST", "/v1/ask", {"question": "q", "backend": "nope"}, 400, "backend 'nope' is not"),
        ("POST", "/v1/ask", {"question": "q", "backend": "openai"}, 400, "choose one of extrac"),
        ("POST", "/v1/ask", "not json", 422, "body: Input should be a valid dictionary"),
        ("GET", "/v1/trials/NCT99999999", None, 404, "no trial 'NCT99999999' in index default"),
        ("GET", "/v1/trials?colour=red", None, 422, "unknown query parameter 'colour'"),
        ("GET", "/v1/trials?sex=robot", None, 422, "sex: Input should be 'female', 'male'"),
        ("GET", "/v1/trials?phase=7", None, 422, "'phase=7': use a phase such as phase=2"),
        ("GET", "/v1/search", None, 422, "q: Field required"),
    ],
)
def test_bad_requests_say_what_to_fix(
    api: str, method: str, path: str, body: object, status: int, message: str
) -> None:
    response = httpx.request(method, f"{api}{path}", json=body, timeout=30)
    assert response.status_code == status, response.text
    data = response.json()
    assert message in data["error"], data
    assert data["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text


def test_bodies_over_the_cap_are_refused(api: str) -> None:
    big = {"question": "q", "pad": "x" * MAX_BODY_BYTES}
    response = ask(api, big)
    assert response.status_code == 413
    assert response.json()["error"] == f"body over {MAX_BODY_BYTES} bytes; send a shorter question"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap still holds
        yield b'{"question": "'
        for _ in range(70):
            yield b"x" * 1024
        yield b'"}'

    chunked = httpx.post(
        f"{api}/v1/ask", content=chunks(), headers={"content-type": "application/json"}
    )
    assert chunked.status_code == 413


def test_concurrent_requests_get_the_same_answers(api: str) -> None:
    questions = [PLATELETS, "who sponsors NCT04984096?", "which trials allow ECOG 2?"] * 6
    serial = {q: ask(api, {"question": q}).json()["answer"] for q in set(questions)}

    async def all_at_once() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=api, timeout=60) as client:
            return await asyncio.gather(
                *(client.post("/v1/ask", json={"question": q}) for q in questions)
            )

    responses = asyncio.run(all_at_once())
    assert [r.status_code for r in responses] == [200] * len(questions)
    assert [r.json()["answer"] for r in responses] == [serial[q] for q in questions]
    assert len({r.headers["x-request-id"] for r in responses}) == len(questions)


def test_bearer_token(seed_index_root: Path) -> None:
    with running(create_app(root=seed_index_root / "index", token="s3cret")) as url:
        assert httpx.get(f"{url}/healthz").status_code == 200
        missing = ask(url, {"question": PLATELETS})
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert "bearer token" in missing.json()["error"]
        wrong = ask(url, {"question": PLATELETS}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = ask(url, {"question": PLATELETS}, headers={"Authorization": "Bearer s3cret"})
        assert right.status_code == 200


def test_cors_is_off_unless_asked(api: str, seed_index_root: Path) -> None:
    preflight = {"Origin": "https://portal.example", "Access-Control-Request-Method": "POST"}
    refused = httpx.options(f"{api}/v1/ask", headers=preflight)
    assert "access-control-allow-origin" not in refused.headers
    app = create_app(root=seed_index_root / "index", cors_origins=["https://portal.example"])
    with running(app) as url:
        allowed = httpx.options(f"{url}/v1/ask", headers=preflight)
        assert allowed.headers["access-control-allow-origin"] == "https://portal.example"


def test_a_missing_index_is_not_ready(tmp_path: Path) -> None:
    with running(create_app("nope", root=tmp_path), ready=False) as url:
        for _ in range(100):
            ready = httpx.get(f"{url}/readyz")
            if "No index" in ready.text:
                break
            asyncio.run(asyncio.sleep(0.05))
        assert ready.status_code == 503
        assert "No index 'nope'" in ready.json()["error"] and "rag index" in ready.json()["error"]
        assert ask(url, {"question": PLATELETS}).status_code == 503


def test_backend_failures_return_the_passages(
    seed_index_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    behaviour = Behaviour()
    with serve(behaviour) as llm:
        monkeypatch.setenv("OPENAI_BASE_URL", llm)
        app = create_app(root=seed_index_root / "index", ask_timeout=5.0, allow_backends=["openai"])
        with running(app) as url:
            body = {"question": PLATELETS, "backend": "openai"}
            behaviour.fail_status, behaviour.fail_times = 500, 100
            failed = ask(url, body)
            assert failed.status_code == 502
            data = failed.json()
            assert data["error"].startswith(f"The server at {llm} answered HTTP 500 after 3")
            assert "T-fcd9d254a2/inclusion/8.2" in [p["chunk_id"] for p in data["passages"]]

            behaviour.fail_times, behaviour.delay = 0, 8.0
            slow = ask(url, body)
            assert slow.status_code == 504
            assert slow.json()["error"] == (
                "no answer within 5 s; the passages retrieved are given"
            )
            assert slow.json()["passages"] and slow.elapsed.total_seconds() < 7

            behaviour.delay = 0.0
            behaviour.reply = "Platelets of at least 100 × 10^9/L [1]. It is free."
            good = ask(url, body).json()
            assert good["answer"] == (
                "Platelets of at least 100 × 10^9/L [1]. It is free [unsupported]."
            )
            assert good["citations"][0]["marker"] == 1
            assert good["unsupported"] == ["It is free."]


def test_serve_binds_loopback_by_default() -> None:
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert "[default: 127.0.0.1]" in result.stdout
