"""A small OpenAI-compatible /v1/chat/completions server on 127.0.0.1, run in a thread.

Tests tell it how to behave next: answer plainly or stream, be slow, fail with a status a
number of times, answer garbage. It records every request body it receives, and when a
client hangs up on a streamed reply before its end.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Behaviour:
    reply: str = "Adults aged 18 to 75 years [1]."
    delay: float = 0.0  # seconds before answering
    word_delay: float = 0.0  # seconds between the words of a streamed reply
    fail_status: int = 0  # answer this status ...
    fail_times: int = 0  # ... this many times first
    garbage: bool = False
    plan_reply: str | None = None  # the reply to a request for a plan (JSON), if set
    requests: list[dict[str, Any]] = field(default_factory=list)
    # request number (its index in `requests`) -> time.monotonic() the client hung up on
    # its streamed reply before the end
    hangups: dict[int, float] = field(default_factory=dict)


class _Handler(BaseHTTPRequestHandler):
    behaviour: Behaviour

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        b = self.behaviour
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        number = len(b.requests)
        b.requests.append(body)
        if self.path != "/v1/chat/completions":
            self._send(404, b'{"error": "not found"}')
            return
        if b.delay:
            time.sleep(b.delay)
        if b.fail_times > 0:
            b.fail_times -= 1
            self._send(b.fail_status, b'{"error": {"message": "overloaded"}}')
            return
        if b.garbage:
            self._send(200, b"<html>this is not json</html>", "text/html")
            return
        asked = str(body.get("messages", [{}])[-1].get("content", ""))
        reply = b.plan_reply if b.plan_reply is not None and "as JSON only" in asked else b.reply
        if body.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            try:
                for word in reply.split(" "):
                    event = {"choices": [{"index": 0, "delta": {"content": word + " "}}]}
                    self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                    self.wfile.flush()
                    time.sleep(b.word_delay)
                self.wfile.write(b"data: [DONE]\n\n")
            except (BrokenPipeError, ConnectionResetError):
                b.hangups[number] = time.monotonic()
            return
        answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": reply}}]}
        self._send(200, json.dumps(answer).encode())

    def _send(self, status: int, data: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def serve(behaviour: Behaviour) -> Iterator[str]:
    """Run the server on a free loopback port; yield its base URL (…/v1)."""
    handler = type("Handler", (_Handler,), {"behaviour": behaviour})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
