"""Any OpenAI-compatible /v1/chat/completions server over httpx.

OpenAI, vLLM, the llama.cpp server, Ollama's /v1 and LM Studio all speak it. Base URL, model
and key come from options or the environment (OPENAI_BASE_URL, RAG_OPENAI_MODEL or
OPENAI_MODEL, OPENAI_API_KEY). 429 and 5xx answers and dropped connections are retried with
exponential backoff (honouring Retry-After); anything else fails at once with one line that
says what to do.

A server may never stop sending, and httpx's timeouts bound only each wait for the next
bytes, so each answer has two limits of its own: a wall-clock deadline covering the
connection, retries and the whole stream (RAG_OPENAI_DEADLINE, seconds), and a cap on the
bytes read from the server (RAG_OPENAI_MAX_BYTES). The body is read in chunks as it comes and
counted, so no line, event or body is held past the cap.

It also plans: asked (Task kind "plan"), the model returns the typed question as JSON, which
rag.answer validates and uses instead of the rules' reading (RAG_OPENAI_PLAN=0 turns it off).
"""

from __future__ import annotations

import json
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import closing
from typing import Any, TypeVar

import httpx

from rag.llm.base import BackendDeadline, BackendError, BackendTimeout, BackendTooLarge, Task

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"
TIMEOUT_SECONDS = 60.0  # the longest wait for the next bytes: a small local server's first token
CONNECT_SECONDS = 5.0
# The HTTP API's ask timeout too: 800 tokens (max_tokens) need only ~7 tokens/s, which hosted
# APIs and GPU servers pass many times over; a slow CPU-only model is given more by the
# variable the error names.
DEADLINE_SECONDS = 120.0
# A streamed event of one token is ~150-300 bytes, so 800 tokens take ~250 kB: ~8x headroom.
MAX_BYTES = 2_000_000
DETAIL_BYTES = 1024  # what is read of an error's body, to quote
RETRIES = 3
BACKOFF_SECONDS = 0.5
_RETRY_STATUS = {429, 500, 502, 503, 504}

_N = TypeVar("_N", int, float)


class OpenAIBackend:
    """Chat completions, plain or streamed, from an OpenAI-compatible server."""

    name = "openai"

    def __init__(
        self,
        *,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = TIMEOUT_SECONDS,
        deadline: float | None = None,
        max_bytes: int | None = None,
        retries: int = RETRIES,
        backoff: float = BACKOFF_SECONDS,
        stream: bool = True,
        temperature: float = 0.0,
        max_tokens: int = 800,
        plan: bool | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip(
            "/"
        )
        self.model = (
            model or os.environ.get("RAG_OPENAI_MODEL") or os.environ.get("OPENAI_MODEL") or ""
        ) or DEFAULT_MODEL
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.timeout = timeout
        self.deadline = _setting(
            deadline, "RAG_OPENAI_DEADLINE", DEADLINE_SECONDS, float, "a number of seconds"
        )
        self.max_bytes = _setting(
            max_bytes, "RAG_OPENAI_MAX_BYTES", MAX_BYTES, int, "a whole number of bytes"
        )
        self.retries = retries
        self.backoff = backoff
        self.stream = stream
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.plans = plan if plan is not None else os.environ.get("RAG_OPENAI_PLAN", "1") != "0"
        # Timeouts are given to each request, cut to what is left of the answer's deadline.
        self.client = client or httpx.Client()

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def generate(self, task: Task) -> Iterator[str]:
        stream = self.stream and task.kind != "plan"  # a plan is read whole, as JSON
        body: dict[str, Any] = {
            "model": self.model,
            "messages": list(task.messages),
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "stream": stream,
        }
        budget = _Budget(self.deadline, self.max_bytes)
        if stream:
            pieces = self._stream(body, budget)
        else:
            # A plan is optional: when it fails the rules stand, so it is not retried.
            pieces = self._complete(body, 0 if task.kind == "plan" else self.retries, budget)
        yield from self._by_deadline(pieces, budget)

    def _by_deadline(self, pieces: Generator[str, None, None], budget: _Budget) -> Iterator[str]:
        """The pieces, made in a worker thread, until the deadline: a read that blocks (on a
        server sending a byte just inside each read timeout) cannot hold the answer past it,
        and a slow caller is not counted against the server. Left behind, the worker stops at
        its next piece, its request's timeouts (cut to the deadline) or the byte cap."""
        handoff: queue.SimpleQueue[str | Exception | None] = queue.SimpleQueue()
        stop = threading.Event()

        def work() -> None:
            try:
                for piece in pieces:
                    if stop.is_set():
                        return
                    if not budget.seconds():  # a server that keeps sending
                        raise self._expired()
                    handoff.put(piece)
                handoff.put(None)
            except Exception as exc:  # raised again in the caller's thread
                handoff.put(exc)
            finally:
                pieces.close()  # closes the response, in the thread that reads it

        threading.Thread(target=work, name="openai-answer", daemon=True).start()
        try:
            while True:
                try:
                    item = handoff.get(timeout=budget.seconds())
                except queue.Empty:
                    raise self._expired() from None
                if isinstance(item, Exception):
                    raise item
                if item is None:
                    return
                yield item
        finally:
            stop.set()

    def _headers(self) -> dict[str, str]:
        # The cap counts the bytes as sent: a compressed body could expand far past it.
        headers = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def _complete(
        self, body: dict[str, Any], retries: int, budget: _Budget
    ) -> Generator[str, None, None]:
        with closing(self._open(body, retries, budget)) as response:
            raw = b"".join(self._chunks(response, budget))
        try:
            content = json.loads(raw)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise self._garbage(raw.decode("utf-8", "replace")) from None
        if not isinstance(content, str):
            raise self._garbage(raw.decode("utf-8", "replace"))
        yield content

    def _stream(self, body: dict[str, Any], budget: _Budget) -> Generator[str, None, None]:
        with closing(self._open(body, self.retries, budget)) as response:
            yield from self._events(_lines(self._chunks(response, budget)))

    def _events(self, lines: Iterable[bytes]) -> Iterator[str]:
        seen = False
        for line in lines:
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].decode("utf-8", "replace").strip()
            if payload == "[DONE]":
                return
            try:
                delta = json.loads(payload)["choices"][0].get("delta", {})
            except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                raise self._garbage(payload) from None
            piece = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(piece, str) and piece:
                seen = True
                yield piece
        if not seen:
            raise self._garbage("a stream with no content")

    def _open(self, body: dict[str, Any], retries: int, budget: _Budget) -> httpx.Response:
        """The response to `body` once its status says an answer follows, its body unread: the
        caller reads and closes it. 429, 5xx and dropped connections are retried."""
        attempt = 0
        while True:
            seconds = budget.seconds()
            if not seconds:
                raise self._expired()
            request = self.client.build_request(
                "POST",
                self.url,
                json=body,
                headers=self._headers(),
                timeout=httpx.Timeout(
                    min(self.timeout, seconds), connect=min(CONNECT_SECONDS, seconds)
                ),
            )
            try:
                response = self.client.send(request, stream=True)
            except httpx.TransportError as exc:
                if attempt >= retries or isinstance(exc, httpx.ReadTimeout):
                    raise self._failed(exc, budget) from None
                self._wait(attempt, None, budget)
                attempt += 1
                continue
            retry = response.status_code in _RETRY_STATUS and attempt < retries
            if not retry and response.status_code < 400:
                return response
            with closing(response):
                if not retry:
                    raise self._status(response, self._detail(response, budget))
            self._wait(attempt, response, budget)
            attempt += 1

    def _chunks(self, response: httpx.Response, budget: _Budget) -> Iterator[bytes]:
        """The body as it arrives (at most 64 kB a read), counted against the byte cap."""
        try:
            for chunk in response.iter_raw():
                budget.bytes -= len(chunk)
                if budget.bytes < 0:
                    raise self._too_large()
                yield chunk
        except httpx.TransportError as exc:
            raise self._failed(exc, budget) from None

    def _detail(self, response: httpx.Response, budget: _Budget) -> str:
        """The start of an error's body, to quote: an endless one is not read to its end."""
        head = b""
        for chunk in self._chunks(response, budget):
            head += chunk
            if len(head) >= DETAIL_BYTES:
                break
        return head.decode("utf-8", "replace")

    def _wait(self, attempt: int, response: httpx.Response | None, budget: _Budget) -> None:
        delay = self.backoff * (2**attempt)
        if response is not None:
            try:
                delay = max(delay, float(response.headers.get("retry-after", 0)))
            except ValueError:
                pass
        time.sleep(min(delay, 30.0, budget.seconds()))

    def _failed(self, exc: httpx.TransportError, budget: _Budget) -> BackendError:
        # A request's timeouts are cut to the deadline, so one that ran out there hit it.
        return self._unreachable(exc) if budget.seconds() else self._expired()

    def _unreachable(self, exc: Exception) -> BackendError:
        kind = exc.__class__.__name__
        if isinstance(exc, httpx.TimeoutException):
            return BackendTimeout(
                f"The server at {self.base_url} did not answer in time ({kind}); "
                "try again, or raise the timeout"
            )
        return BackendError(
            f"Cannot reach an OpenAI-compatible server at {self.base_url} ({kind}); start it, "
            "or set --base-url / OPENAI_BASE_URL"
        )

    def _expired(self) -> BackendDeadline:
        return BackendDeadline(
            f"The server at {self.base_url} did not finish its answer within the deadline of "
            f"{self.deadline:g} s; raise RAG_OPENAI_DEADLINE (seconds) if it is only slow"
        )

    def _too_large(self) -> BackendTooLarge:
        return BackendTooLarge(
            f"The server at {self.base_url} sent more than the cap of {self.max_bytes} bytes "
            "for one answer; raise RAG_OPENAI_MAX_BYTES if its answers are that long"
        )

    def _status(self, response: httpx.Response, text: str) -> BackendError:
        detail = " ".join(text.split())[:200]
        hint = {
            401: "check OPENAI_API_KEY",
            403: "check OPENAI_API_KEY",
            404: f"check the base URL and that model {self.model!r} exists",
        }.get(response.status_code, "see the server's log")
        retried = f" after {self.retries} retries" if response.status_code in _RETRY_STATUS else ""
        return BackendError(
            f"The server at {self.base_url} answered HTTP {response.status_code}{retried}: "
            f"{detail or 'no detail'}; {hint}"
        )

    def _garbage(self, text: str) -> BackendError:
        sample = " ".join(text.split())[:120]
        return BackendError(
            f"The server at {self.base_url} answered something that is not a chat completion "
            f"({sample!r}); check that it speaks the OpenAI API at this base URL"
        )


class _Budget:
    """What one answer has left: seconds until its deadline, and bytes it may still read."""

    def __init__(self, seconds: float, max_bytes: int) -> None:
        self.ends = time.monotonic() + seconds
        self.bytes = max_bytes

    def seconds(self) -> float:
        return max(0.0, self.ends - time.monotonic())


def _lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The lines of a body read in chunks; a line is held only until it ends, or until the
    byte cap stops the chunks."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        if b"\n" in chunk or b"\r" in chunk:
            lines = pending.splitlines()
            pending = b"" if pending.endswith((b"\n", b"\r")) else lines.pop()
            yield from lines
    if pending:
        yield pending


def _setting(
    value: _N | None, variable: str, default: _N, kind: Callable[[str], _N], what: str
) -> _N:
    """An option, else its environment variable, else the default: above 0 and finite."""
    refused = f"{variable} must be {what} above 0, not "
    if value is None:
        text = os.environ.get(variable, "").strip()
        if not text:
            return default
        try:
            value = kind(text)
        except ValueError:
            raise BackendError(refused + repr(text)) from None
    if not 0 < value < math.inf:
        raise BackendError(refused + repr(value))
    return value
