"""Any OpenAI-compatible /v1/chat/completions server over httpx.

OpenAI, vLLM, the llama.cpp server, Ollama's /v1 and LM Studio all speak it. Base URL, model
and key come from options or the environment (OPENAI_BASE_URL, RAG_OPENAI_MODEL or
OPENAI_MODEL, OPENAI_API_KEY). 429 and 5xx answers and dropped connections are retried with
exponential backoff (honouring Retry-After); anything else fails at once with one line that
says what to do.

It also plans: asked (Task kind "plan"), the model returns the typed question as JSON, which
rag.answer validates and uses instead of the rules' reading (RAG_OPENAI_PLAN=0 turns it off).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import httpx

from rag.llm.base import BackendError, BackendTimeout, Task

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"
TIMEOUT_SECONDS = 60.0  # a long answer streamed by a small local server takes this long
RETRIES = 3
BACKOFF_SECONDS = 0.5
_RETRY_STATUS = {429, 500, 502, 503, 504}


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
        self.retries = retries
        self.backoff = backoff
        self.stream = stream
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.plans = plan if plan is not None else os.environ.get("RAG_OPENAI_PLAN", "1") != "0"
        self.client = client or httpx.Client(timeout=httpx.Timeout(timeout, connect=5.0))

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
        if stream:
            yield from self._stream(body)
        else:
            # A plan is optional: when it fails the rules stand, so it is not retried.
            yield self._complete(body, retries=0 if task.kind == "plan" else self.retries)

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def _complete(self, body: dict[str, Any], retries: int) -> str:
        response = self._send(body, retries)
        try:
            data = response.json()
            content = data["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise self._garbage(response.text) from None
        if not isinstance(content, str):
            raise self._garbage(response.text)
        return content

    def _stream(self, body: dict[str, Any]) -> Iterator[str]:
        attempt = 0
        while True:
            try:
                with self.client.stream(
                    "POST", self.url, json=body, headers=self._headers()
                ) as response:
                    if response.status_code in _RETRY_STATUS and attempt < self.retries:
                        response.read()
                        self._wait(attempt, response)
                        attempt += 1
                        continue
                    if response.status_code >= 400:
                        response.read()
                        raise self._status(response)
                    yield from self._events(response)
                    return
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                if attempt >= self.retries or isinstance(exc, httpx.ReadTimeout):
                    raise self._unreachable(exc) from None
                self._wait(attempt, None)
                attempt += 1

    def _events(self, response: httpx.Response) -> Iterator[str]:
        seen = False
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            payload = line[5:].strip()
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

    def _send(self, body: dict[str, Any], retries: int) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = self.client.post(self.url, json=body, headers=self._headers())
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                if attempt >= retries or isinstance(exc, httpx.ReadTimeout):
                    raise self._unreachable(exc) from None
                self._wait(attempt, None)
                attempt += 1
                continue
            if response.status_code in _RETRY_STATUS and attempt < retries:
                self._wait(attempt, response)
                attempt += 1
                continue
            if response.status_code >= 400:
                raise self._status(response)
            return response

    def _wait(self, attempt: int, response: httpx.Response | None) -> None:
        delay = self.backoff * (2**attempt)
        if response is not None:
            try:
                delay = max(delay, float(response.headers.get("retry-after", 0)))
            except ValueError:
                pass
        time.sleep(min(delay, 30.0))

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

    def _status(self, response: httpx.Response) -> BackendError:
        detail = " ".join(response.text.split())[:200]
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
