"""The openai backend's limits on one answer (a deadline and a byte cap) against hostile
servers on loopback: one that streams forever, one that trickles, one that sends a line with
no end, one whose body is too large."""

from __future__ import annotations

import json
import threading
import time
import tracemalloc
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import pytest
from typer.testing import CliRunner

from rag.cli import app
from rag.llm.base import BackendDeadline, BackendError, BackendTooLarge
from rag.llm.openai import OpenAIBackend
from tests.test_openai_backend import TASK  # the same small question

DEADLINE = 1.5
CAP = 100_000
SLACK = 1.0  # how late past the deadline an answer may end, on a loaded machine
BLOCK = b"x" * 16_384  # made once, so the server adds nothing to the memory measured

# How the server answers one request: (handler, request body, set when the test ends).
Play = Callable[[BaseHTTPRequestHandler, dict[str, Any], threading.Event], None]


def _event(text: str) -> bytes:
    return f"data: {json.dumps({'choices': [{'delta': {'content': text}}]})}\n\n".encode()


def _start_stream(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "text/event-stream")
    h.end_headers()


def sse_forever(h: BaseHTTPRequestHandler, body: dict[str, Any], ended: threading.Event) -> None:
    _start_stream(h)
    while not ended.wait(0.01):
        h.wfile.write(_event("more "))


def trickle(h: BaseHTTPRequestHandler, body: dict[str, Any], ended: threading.Event) -> None:
    """A token every 1.4 s: inside each read's timeout (60 s, cut to the deadline's 1.5 s),
    so only a deadline kept while a read blocks ends the answer at 1.5 s, not at 2.8 s."""
    _start_stream(h)
    h.wfile.write(_event("slow "))
    while not ended.wait(1.4):
        h.wfile.write(_event("slow "))


def endless_line(h: BaseHTTPRequestHandler, body: dict[str, Any], ended: threading.Event) -> None:
    _start_stream(h)
    h.wfile.write(b"data: ")
    while not ended.is_set():
        h.wfile.write(BLOCK)


def huge_json(h: BaseHTTPRequestHandler, body: dict[str, Any], ended: threading.Event) -> None:
    reply = {"choices": [{"message": {"role": "assistant", "content": "y" * 3 * CAP}}]}
    data = json.dumps(reply).encode()
    h.send_response(200)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    h.wfile.write(data)


def busy(h: BaseHTTPRequestHandler, body: dict[str, Any], ended: threading.Event) -> None:
    h.send_response(503)
    h.send_header("Retry-After", "10")
    h.send_header("Content-Length", "0")
    h.end_headers()


def normal(h: BaseHTTPRequestHandler, body: dict[str, Any], ended: threading.Event) -> None:
    reply = "Adults aged 18 to 75 years [1]."
    if body.get("stream"):
        _start_stream(h)
        for word in reply.split(" "):
            h.wfile.write(_event(word + " "))
        h.wfile.write(b"data: [DONE]\n\n")
        return
    data = json.dumps({"choices": [{"message": {"content": reply}}]}).encode()
    h.send_response(200)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    h.wfile.write(data)


@contextmanager
def serve(play: Play) -> Iterator[str]:
    """Answer every POST with `play` on a free loopback port; yield the base URL (…/v1)."""
    ended = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            return

        def do_POST(self) -> None:  # noqa: N802 - stdlib name
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            try:
                play(self, body, ended)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client hung up: what a limit is for

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # Polled every 0.05 s, so shutting it down takes no longer.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        ended.set()  # endless plays stop
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def backend(url: str, **options: Any) -> OpenAIBackend:
    return OpenAIBackend(base_url=url, model="m", api_key="k", backoff=0.01, **options)


def test_a_server_that_streams_forever_is_stopped_at_the_deadline() -> None:
    pieces: list[str] = []
    with serve(sse_forever) as url:
        limited = backend(url, deadline=DEADLINE)
        started = time.monotonic()
        with pytest.raises(BackendDeadline) as caught:
            for piece in limited.generate(TASK):
                pieces.append(piece)
        took = time.monotonic() - started
    assert pieces and set(pieces) == {"more "}  # it was answering, all along
    assert DEADLINE <= took < DEADLINE + SLACK
    assert str(caught.value) == (
        f"The server at {url} did not finish its answer within the deadline of 1.5 s; "
        "raise RAG_OPENAI_DEADLINE (seconds) if it is only slow"
    )


def test_a_server_that_trickles_inside_the_read_timeout_is_stopped_at_the_deadline() -> None:
    with serve(trickle) as url:
        limited = backend(url, deadline=DEADLINE, timeout=60.0)
        started = time.monotonic()
        with pytest.raises(BackendDeadline, match="RAG_OPENAI_DEADLINE"):
            list(limited.generate(TASK))
        assert time.monotonic() - started < DEADLINE + SLACK


def test_the_deadline_covers_the_retries() -> None:
    with serve(busy) as url:  # 503, "Retry-After: 10", every time
        limited = backend(url, deadline=DEADLINE, retries=3)
        started = time.monotonic()
        with pytest.raises(BackendDeadline, match="within the deadline of 1.5 s"):
            list(limited.generate(TASK))
        assert time.monotonic() - started < DEADLINE + SLACK


def test_an_answer_given_up_early_drops_the_upstream_request() -> None:
    hung_up = threading.Event()

    def play(h: BaseHTTPRequestHandler, body: dict[str, Any], ended: threading.Event) -> None:
        try:
            sse_forever(h, body, ended)
        except (BrokenPipeError, ConnectionResetError):
            hung_up.set()

    with serve(play) as url:
        pieces = cast(Generator[str, None, None], backend(url).generate(TASK))
        assert next(pieces) == "more "
        pieces.close()  # as the HTTP API does for a client that hangs up
        assert hung_up.wait(5), "the stream was read on after the answer was given up"


@pytest.mark.parametrize("stream", [True, False])
def test_an_endless_line_is_stopped_at_the_cap_in_bounded_memory(stream: bool) -> None:
    with serve(endless_line) as url:
        limited = backend(url, max_bytes=CAP, stream=stream)  # its client made before measuring
        tracemalloc.start()
        try:
            with pytest.raises(BackendTooLarge) as caught:
                list(limited.generate(TASK))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert str(caught.value) == (
        f"The server at {url} sent more than the cap of 100000 bytes for one answer; "
        "raise RAG_OPENAI_MAX_BYTES if its answers are that long"
    )
    assert peak < 10 * CAP, f"peak {peak} bytes"


def test_a_plain_answer_larger_than_the_cap_is_refused() -> None:
    with serve(huge_json) as url:
        with pytest.raises(BackendTooLarge, match="cap of 100000 bytes"):
            list(backend(url, max_bytes=CAP, stream=False).generate(TASK))


@pytest.mark.parametrize("stream", [True, False])
def test_an_answer_within_both_limits_is_given(stream: bool) -> None:
    with serve(normal) as url:
        limited = backend(url, deadline=DEADLINE, max_bytes=CAP, stream=stream)
        text = "".join(limited.generate(TASK))
    assert text.strip() == "Adults aged 18 to 75 years [1]."


def test_the_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (backend("http://x/v1").deadline, backend("http://x/v1").max_bytes) == (120, 2_000_000)
    monkeypatch.setenv("RAG_OPENAI_DEADLINE", "2.5")
    monkeypatch.setenv("RAG_OPENAI_MAX_BYTES", "1000")
    assert (backend("http://x/v1").deadline, backend("http://x/v1").max_bytes) == (2.5, 1000)
    options = backend("http://x/v1", deadline=9.0, max_bytes=99)  # options come first
    assert (options.deadline, options.max_bytes) == (9.0, 99)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("RAG_OPENAI_DEADLINE", "soon", "a number of seconds above 0, not 'soon'"),
        ("RAG_OPENAI_DEADLINE", "0", "a number of seconds above 0, not 0.0"),
        ("RAG_OPENAI_DEADLINE", "inf", "a number of seconds above 0, not inf"),
        ("RAG_OPENAI_MAX_BYTES", "2MB", "a whole number of bytes above 0, not '2MB'"),
        ("RAG_OPENAI_MAX_BYTES", "-1", "a whole number of bytes above 0, not -1"),
    ],
)
def test_a_bad_limit_in_the_environment_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(BackendError) as caught:
        backend("http://x/v1")
    assert str(caught.value) == f"{variable} must be {message}"


@pytest.mark.parametrize(
    ("play", "variable", "value", "said"),
    [
        (
            sse_forever,
            "RAG_OPENAI_DEADLINE",
            "1.5",
            "did not finish its answer within the deadline",
        ),
        (endless_line, "RAG_OPENAI_MAX_BYTES", "100000", "sent more than the cap of 100000 bytes"),
    ],
)
def test_ask_past_a_limit_gives_one_line_and_the_passages(
    play: Play,
    variable: str,
    value: str,
    said: str,
    seed_index_root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(seed_index_root)
    monkeypatch.setenv(variable, value)
    with serve(play) as url:
        monkeypatch.setenv("OPENAI_BASE_URL", url)
        result = CliRunner().invoke(
            app, ["ask", "what platelet count does the Fudan trial require?", "-b", "openai"]
        )
    assert result.exit_code == 1, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: The server at {url} {said}")
    assert f"; raise {variable} " in line
    assert result.stdout.startswith("Retrieved passages (no answer was written):\n 1. ")
    assert "T-fcd9d254a2/inclusion/8.2" in result.stdout
