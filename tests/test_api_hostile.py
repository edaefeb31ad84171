"""What a hostile client tries against `rag serve`, through a real uvicorn on loopback: bodies
FastAPI cannot parse, CORS preflights against a token, forged log lines, slow bodies, a
backend the operator did not enable, and hanging up on (or outwaiting) an upstream answer."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from typer.testing import CliRunner

from rag.api import configure_logging, create_app
from rag.cli import app as cli
from tests.api_server import free_port, running
from tests.openai_server import Behaviour, serve

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ORIGIN = "https://portal.example"
ASK_TIMEOUT = 3.0
BODY_TIMEOUT = 1.0
PLATELETS = "what platelet count does the Fudan trial require?"
# 280 words a twentieth of a second apart: 14 s, far past the deadline.
LONG_REPLY = " ".join(["Platelets of at least 100 × 10^9/L [1]."] * 40)


@pytest.fixture(scope="module")
def llm() -> Iterator[tuple[Behaviour, str]]:
    behaviour = Behaviour()
    with serve(behaviour) as url:
        yield behaviour, url


@pytest.fixture(scope="module")
def api(seed_index_root: Path, llm: tuple[Behaviour, str]) -> Iterator[str]:
    """A server as an operator runs it: a token, one CORS origin, openai enabled."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPENAI_BASE_URL", llm[1])
        app = create_app(
            root=seed_index_root / "index",
            token=TOKEN,
            cors_origins=[ORIGIN],
            allow_backends=["openai"],
            ask_timeout=ASK_TIMEOUT,
            body_timeout=BODY_TIMEOUT,
        )
        with running(app) as url:
            yield url


@pytest.fixture
def upstream(llm: tuple[Behaviour, str]) -> Behaviour:
    """The OpenAI-compatible server, streaming a long reply slowly."""
    behaviour = llm[0]
    behaviour.reply, behaviour.word_delay = LONG_REPLY, 0.05
    return behaviour


@pytest.fixture
def server_log() -> Iterator[io.StringIO]:
    """What `rag serve` logs (its own format), captured."""
    logger = logging.getLogger("rag.api")
    handlers, level, propagate = logger.handlers, logger.level, logger.propagate
    configure_logging()
    stream = io.StringIO()
    handler = logger.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    yield stream
    logger.handlers, logger.propagate = handlers, propagate
    logger.setLevel(level)


def ask(url: str, body: object, headers: dict[str, str] = AUTH) -> httpx.Response:
    return httpx.post(f"{url}/v1/ask", json=body, headers=headers, timeout=30)


def wait_for(condition: Callable[[], object], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def hung_up(upstream: Behaviour, since: int) -> float | None:
    """When the API first hung up on one of the upstream's replies to requests from `since`
    on, waiting up to 5 s for it; None if it read them on."""

    def mine() -> list[float]:
        return [t for n, t in dict(upstream.hangups).items() if n >= since]

    return min(mine()) if wait_for(mine, 5) else None


def assert_error_shape(response: httpx.Response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    data = response.json()
    assert set(data) == {"error", "request_id"}, data
    assert data["error"].startswith(message), data
    assert "\n" not in data["error"] and "Traceback" not in response.text
    assert data["request_id"] == response.headers["x-request-id"]


# --- 1. every request error in the project's shape ------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'{"question": "caf\xe9"}',
            "body: not valid UTF-8 (byte 0xe9 at offset 17); send JSON encoded as UTF-8",
        ),
        (b"[" * 10_000 + b"]" * 10_000, "body: JSON nested too deeply; send one flat object"),
        (b'{"q":' * 10_000 + b"1" + b"}" * 10_000, "body: JSON nested too deeply; send one"),
        (
            b'{"question": "q", "filters": {"size": "2"}}',
            "filters.size: unknown field; the fields are status, phase",
        ),
        (b'{"question": "q", "x\\n2025 INFO [forged]": 1}', "x\\n2025 INFO [forged]: unknown"),
        (json.dumps({f"f{n}": n for n in range(500)}).encode(), "question: Field required; f0:"),
    ],
    ids=["invalid UTF-8", "10,000 arrays deep", "10,000 objects deep", "filters", "newline", "500"],
)
def test_bad_bodies_get_the_error_shape_in_one_line(api: str, body: bytes, message: str) -> None:
    response = httpx.post(
        f"{api}/v1/ask", content=body, headers=AUTH | {"content-type": "application/json"}
    )
    assert_error_shape(response, 422, message)
    if body.startswith(b'{"f0"'):
        assert response.json()["error"].endswith("; and 496 more problems")


def test_unknown_routes_and_methods_get_the_error_shape(api: str) -> None:
    assert_error_shape(
        httpx.get(f"{api}/v2/ask"), 404, "no endpoint at GET /v2/ask; GET /docs lists them"
    )
    wrong = httpx.delete(f"{api}/v1/ask", headers=AUTH)
    assert_error_shape(wrong, 405, "method not allowed: DELETE /v1/ask; use POST")
    assert wrong.headers["allow"] == "POST"


# --- 2. CORS preflights pass without the token; the request still needs it ------------------


def test_a_preflight_needs_no_token_but_the_request_does(api: str) -> None:
    preflight = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    granted = httpx.options(f"{api}/v1/ask", headers=preflight)
    assert granted.status_code == 200
    assert granted.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in granted.headers["access-control-allow-methods"]
    assert "Authorization" in granted.headers["access-control-allow-headers"]

    refused = httpx.options(f"{api}/v1/ask", headers=preflight | {"Origin": "https://evil.example"})
    assert_error_shape(refused, 400, "CORS preflight refused (origin not allowed); the server")
    assert not any(h.startswith("access-control-allow") for h in refused.headers)

    without = ask(api, {"question": PLATELETS}, headers={"Origin": ORIGIN})
    assert_error_shape(without, 401, "missing or wrong bearer token")
    assert without.headers["access-control-allow-origin"] == ORIGIN  # the page can read why
    answered = ask(api, {"question": PLATELETS}, headers=AUTH | {"Origin": ORIGIN})
    assert answered.status_code == 200 and answered.json()["citations"]
    assert answered.headers["access-control-allow-origin"] == ORIGIN


# --- 3. no forged log lines -----------------------------------------------------------------

FORGED = "2025-01-01 00:00:00,000 INFO [forged] GET /admin 200 0.1 ms"
ENTRY = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO \[[0-9a-f]{16}\] GET /forge")


def test_log_lines_cannot_be_forged(api: str, server_log: io.StringIO) -> None:
    breaks = {
        "%0a": "\\n",
        "%0d%0a": "\\r\\n",
        "%0d": "\\r",
        "%e2%80%a8": "\\u2028",
        "%1b": "\\x1b",
    }
    for sent, escaped in breaks.items():
        response = httpx.get(f"{api}/forge{sent}{quote(FORGED)}")
        assert_error_shape(response, 404, f"no endpoint at GET /forge{escaped}2025-01-01")
    assert wait_for(lambda: server_log.getvalue().count("\n") == len(breaks), 5)
    lines = server_log.getvalue().splitlines()  # splits at \r, \x1c..\x1e, \x85, \u2028 too
    assert len(lines) == len(breaks), lines
    for line, escaped in zip(lines, breaks.values(), strict=True):
        assert ENTRY.match(line), line
        assert f"GET /forge{escaped}{FORGED} 404 " in line
    assert not any(line.startswith(FORGED[:10]) for line in lines)


# --- 4. a body that does not arrive in time --------------------------------------------------

HEAD = (
    "POST /v1/ask HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
    "Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
)


def dribble(conn: socket.socket, answered: threading.Event) -> None:
    """A byte of the body every 0.2 s, until the server answers."""
    while not answered.wait(0.2):
        try:
            conn.sendall(b" ")
        except OSError:
            return


def slow_body(url: str, token: str, trickle: bool) -> tuple[int, dict[str, str], bytes, float]:
    """Send headers and the start of a body, then a byte now and then or nothing; read until
    the server closes the connection: (status, headers, body, seconds)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=6) as conn:
        conn.sendall(HEAD.format(token=token).encode() + b'{"question": ')
        started = time.monotonic()
        answered = threading.Event()
        if trickle:
            threading.Thread(target=dribble, args=(conn, answered), daemon=True).start()
        reply = b""
        try:
            while chunk := conn.recv(65536):  # a server that never closes: socket timeout
                answered.set()
                reply += chunk
        except ConnectionResetError:  # closed with a dribbled byte unread: TCP resets
            pass
        elapsed = time.monotonic() - started
        answered.set()
    head, _, body = reply.partition(b"\r\n\r\n")
    status, *fields = head.decode("latin-1").split("\r\n")
    headers = dict(f.lower().split(": ", 1) for f in fields)
    return int(status.split()[1]), headers, body, elapsed


@pytest.mark.parametrize("trickle", [False, True], ids=["never", "a byte every 0.2 s"])
def test_a_body_slower_than_the_deadline_gets_408(api: str, trickle: bool) -> None:
    status, headers, body, elapsed = slow_body(api, TOKEN, trickle)
    assert status == 408 and headers["connection"] == "close"
    data = json.loads(body)
    assert data == {
        "error": "body not complete within 1 s; send the whole body at once",
        "request_id": headers["x-request-id"],
    }
    assert BODY_TIMEOUT <= elapsed < BODY_TIMEOUT + 2


def test_rag_serve_sets_its_limits(tmp_path: Path) -> None:
    """The options of `rag serve` reach uvicorn and the app (no index needed for these)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in ("RAG_API_TOKEN", "RAG_BACKEND")}
    command = [sys.executable, "-c", "from rag.cli import app; app()", "serve", "--index"]
    command += ["absent", "--port", str(port), "--allow-backend", "openai"]
    command += ["--timeout-keep-alive", "1", "--limit-concurrency", "3", "--body-timeout", "1"]
    command += ["--h11-max-incomplete-event-size", "4096"]
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=log, stdout=log)
    try:
        assert wait_for(lambda: _up(url), 30), (tmp_path / "serve.log").read_text()
        status, _, body, elapsed = slow_body(url, "-", trickle=False)
        assert status == 408 and b"within 1 s" in body and elapsed < 3

        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            reply = b""
            while not reply.endswith(b'{"status":"ok"}'):
                reply += conn.recv(65536)
            assert reply.startswith(b"HTTP/1.1 200 OK")
            answered = time.monotonic()
            assert conn.recv(65536) == b""  # left idle, the connection is closed
            assert 0.8 < time.monotonic() - answered < 3

        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        assert httpx.get(f"{url}/healthz").status_code == 503  # 3 connections: the limit
        for conn in idle:
            conn.close()
        assert wait_for(lambda: httpx.get(f"{url}/healthz").status_code == 200, 5)

        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"x" * 5000)
            assert conn.recv(65536).startswith(b"HTTP/1.1 400 ")  # an unfinished head too big

        chosen = httpx.post(f"{url}/v1/ask", json={"question": "q", "backend": "nope"})
        assert_error_shape(chosen, 400, "backend 'nope' is not enabled on this server; choose")
        assert "choose one of extractive, openai, or leave it out" in chosen.json()["error"]
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz").status_code == 200
    except httpx.TransportError:
        return False


# --- 5. only the backends the operator enabled -----------------------------------------------


def test_a_request_may_choose_only_an_enabled_backend(api: str, upstream: Behaviour) -> None:
    refused = ask(api, {"question": PLATELETS, "backend": "nope"})
    assert_error_shape(
        refused,
        400,
        "backend 'nope' is not enabled on this server; choose one of extractive, openai, or "
        "leave it out",
    )
    upstream.reply, upstream.word_delay = "Platelets of at least 100 × 10^9/L [1].", 0.0
    chosen = ask(api, {"question": PLATELETS, "backend": "openai"})
    assert chosen.status_code == 200
    assert chosen.json()["answer"] == "Platelets of at least 100 × 10^9/L [1]."


def test_serve_refuses_an_unknown_backend_to_allow() -> None:
    result = CliRunner().invoke(cli, ["serve", "--allow-backend", "nope"])
    assert result.exit_code == 2
    assert "no backend 'nope'; the backends are extractive, openai" in result.output


# --- 6. a client gone or a deadline passed stops the upstream request -----------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_hanging_up_stops_the_upstream(api: str, upstream: Behaviour, stream: bool) -> None:
    since = len(upstream.requests)
    body = {"question": PLATELETS, "backend": "openai", "stream": stream}
    if stream:
        with httpx.stream("POST", f"{api}/v1/ask", json=body, headers=AUTH) as response:
            assert response.status_code == 200
            assert "event: token" in response.iter_lines()
    else:
        with pytest.raises(httpx.ReadTimeout):  # the client gives up long before the deadline
            httpx.post(f"{api}/v1/ask", json=body, headers=AUTH, timeout=0.5)
    gone = time.monotonic()
    stopped = hung_up(upstream, since)
    assert stopped is not None, "the upstream reply was read on after the client hung up"
    assert stopped - gone < 1.5  # the deadline would take 2 s more
    assert ask(api, {"question": PLATELETS}).status_code == 200  # the server carries on


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_past_the_deadline_the_upstream_stops(api: str, upstream: Behaviour, stream: bool) -> None:
    since, started = len(upstream.requests), time.monotonic()
    body = {"question": PLATELETS, "backend": "openai", "stream": stream}
    response = ask(api, body)
    if stream:
        kind, data = response.text.strip().split("\n\n")[-1].split("\n")
        assert kind == "event: error"
        failure = json.loads(data.removeprefix("data: "))
    else:
        assert response.status_code == 504
        failure = response.json()
    assert failure["error"] == "no answer within 3 s; the passages retrieved are given"
    assert "T-fcd9d254a2/inclusion/8.2" in [p["chunk_id"] for p in failure["passages"]]
    assert time.monotonic() - started < ASK_TIMEOUT + 2
    stopped = hung_up(upstream, since)
    assert stopped is not None, "the upstream reply was read on past the deadline"
    assert stopped - started < ASK_TIMEOUT + 2
