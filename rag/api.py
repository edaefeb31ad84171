"""The HTTP answer API: one index and model, loaded once, shared by every request.

    POST /v1/ask              question -> answer with citations and verdicts (or SSE)
    GET  /v1/search           hybrid search hits
    GET  /v1/trials           trials passing filters, paged
    GET  /v1/trials/{id}      a trial's fields and criteria with ids and spans
    GET  /healthz, /readyz    alive; index and model loaded
    GET  /docs                OpenAPI

Model and search work runs in worker threads, off the event loop. Bodies are capped and
must arrive within a deadline, bad input is a 422 that says what to fix, an optional bearer
token (RAG_API_TOKEN) guards /v1, a request may choose only the backends the operator
enabled, every response and log line carries a request id, and a failing or slow LLM backend
gives a 502 or 504 that still returns the retrieved passages; a client hanging up or the
deadline passing closes the answer's generator, so its upstream request stops too.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any, Literal

import anyio
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag import render
from rag.chunk import card_text
from rag.errors import RagError
from rag.filters import DESIGNS, FILTER_KEYS
from rag.store import INDEX_ROOT
from rag.types import VerdictWord
from rag.understand import Kind, Stance

MAX_QUESTION_CHARS = 2000
MAX_BODY_BYTES = 64 * 1024
MAX_K = 50
MAX_PAGE = 100
MAX_CONVERSATIONS = 1000
ASK_TIMEOUT_SECONDS = 120.0
BODY_TIMEOUT_SECONDS = 10.0
MAX_LISTED_PROBLEMS = 5
TOKEN_ENV = "RAG_API_TOKEN"

log = logging.getLogger("rag.api")
_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_REQUEST_ID = re.compile(r"^[\w.-]{1,64}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _printable(text: str) -> str:
    """`text` with control characters and lone surrogates escaped as repr() writes them
    (\\n, \\x1b), so that no client-given value can start a line of its own."""
    return _CONTROL.sub(lambda found: repr(found.group())[1:-1], text)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        return True


class _OneLineFormatter(logging.Formatter):
    """One entry, one line: control characters in a message are escaped and a traceback's
    lines indented, so that no logged value (a path, an upstream's reply) forges an entry."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - stdlib name
        record.message = _printable(record.message)
        return super().formatMessage(record)

    def formatException(  # noqa: N802 - stdlib name
        self,
        ei: tuple[type[BaseException], BaseException, TracebackType | None]
        | tuple[None, None, None],
    ) -> str:
        lines = super().formatException(ei).splitlines()
        return "\n".join("    " + _printable(line) for line in lines)


def configure_logging(level: int = logging.INFO) -> None:
    """Log lines as 'time level [request id] message' on stderr."""
    handler = logging.StreamHandler()
    handler.addFilter(_RequestIdFilter())
    handler.setFormatter(
        _OneLineFormatter("%(asctime)s %(levelname)s [%(request_id)s] %(message)s")
    )
    log.handlers = [handler]
    log.setLevel(level)
    log.propagate = False


# --- shapes ----------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


FilterText = Annotated[str | None, Field(None, min_length=1, max_length=200)]


class FiltersIn(_Strict):
    """The filters of --filter; commas give alternatives (status: "recruiting,completed")."""

    status: FilterText = None
    phase: FilterText = None
    type: FilterText = None
    sex: Literal["female", "male", "all"] | None = None
    age: float | None = Field(None, ge=0, le=150)
    condition: FilterText = None
    intervention: FilterText = None
    sponsor: FilterText = None
    organisation: FilterText = None
    country: FilterText = None
    design: FilterText = Field(None, description="comma-separated: " + ", ".join(DESIGNS))
    about: FilterText = None
    trial: FilterText = None


class AskIn(_Strict):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    filters: FiltersIn | None = None
    k: int = Field(8, ge=1, le=MAX_K)
    backend: str | None = Field(
        None, max_length=64, description="one the server enables (rag serve --allow-backend)"
    )
    conversation_id: str | None = Field(None, pattern=r"^[\w.-]{1,64}$")
    stream: bool = False


class CitationOut(BaseModel):
    marker: int
    trial_id: str
    chunk_id: str
    criterion_id: str | None
    section: str
    text: str
    span: list[int] | None


class VerdictOut(BaseModel):
    trial_id: str
    verdict: VerdictWord
    criterion_id: str | None
    note: str


class LabOut(BaseModel):
    name: str
    value: float


class PatientOut(BaseModel):
    age: float | None
    sex: Literal["FEMALE", "MALE"] | None
    ecog: int | None
    labs: list[LabOut]
    conditions: list[str]


class QuestionOut(BaseModel):
    """How the question was read: its kind, the trials it names, the fields, the topic, the
    patient's facts and the filters in its words."""

    kind: Kind
    trials: list[str]
    candidates: list[str]
    unknown: str | None
    fields: list[str]
    topic: str
    patient: PatientOut
    filters: dict[str, Any]
    value: str
    stance: Stance
    from_conversation: bool


class AskOut(BaseModel):
    answer: str
    citations: list[CitationOut]
    verdicts: list[VerdictOut]
    abstained: bool
    unsupported: list[str]
    question: QuestionOut | None
    trial_id: str | None
    conversation_id: str | None
    timings: dict[str, float]


class HitOut(BaseModel):
    trial_id: str
    chunk_id: str
    section: str
    criterion_id: str | None
    score: float
    text: str
    span: list[int] | None
    title: str


class SearchOut(BaseModel):
    hits: list[HitOut]


class ErrorOut(BaseModel):
    error: str
    request_id: str
    passages: list[HitOut] | None = None


class TrialSummary(BaseModel):
    id: str
    name: str = Field(description="what identifies the trial to a person (acronym and title)")
    nct_id: str | None
    title: str | None
    status: str | None
    phase: str | None
    study_type: str | None
    enrollment: int | None
    sponsor: str | None
    conditions: list[str] | None


class TrialsPage(BaseModel):
    total: int
    offset: int
    limit: int
    trials: list[TrialSummary]


class CriterionOut(BaseModel):
    id: str
    section: str
    text: str
    span: list[int]
    field: str
    parent: str | None
    truncated: bool


class DerivedOut(BaseModel):
    field: str
    value: float | str | list[str]
    source: str = Field(description="criterion, title, official_title, brief_summary, ...")
    span: list[int] = Field(description="[start, end) into the source's text")
    quote: str
    criterion_id: str | None


class TrialOut(TrialSummary):
    official_title: str | None
    start_date: str | None
    completion_date: str | None
    min_age_years: float | None
    max_age_years: float | None
    sex: str | None
    healthy_volunteers: bool | None
    collaborators: list[str] | None
    investigators: list[str] | None
    interventions: list[str] | None
    primary_outcomes: list[str] | None
    contacts: list[str] | None
    acronym: str | None
    study_ids: list[str] | None = Field(description="the sponsor's own and secondary ids")
    keywords: list[str] | None
    allocation: str | None
    intervention_model: str | None
    masking: str | None
    primary_purpose: str | None
    observational_model: str | None
    time_perspective: str | None
    arms: list[str] | None
    secondary_outcomes: list[str] | None
    countries: list[str] | None
    locations: list[str] | None
    last_update: str | None
    brief_summary: str | None
    description: str | None
    source: dict[str, str]
    derived: list[DerivedOut] = Field(
        description="values the record leaves empty, read from its own words, with where"
    )
    card: str = Field(description="its fields as a person reads them, one per line")
    criteria: list[CriterionOut]


# One Server-Sent Event of a streamed answer: "token" (data {"text"}), then "answer" (data an
# AskOut) or "error" (data an ErrorOut).
_SSE_EVENT = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["token", "answer", "error"]},
        "data": {"type": "string", "description": "JSON"},
    },
    "required": ["event", "data"],
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorOut} for code in (401, 422, 503, *codes)}


# --- state -----------------------------------------------------------------------------------


@dataclass
class _Conversations:
    """Conversations by id, the least recently used dropped past MAX_CONVERSATIONS; one lock
    per conversation so that its turns run one at a time."""

    items: OrderedDict[str, tuple[Any, threading.Lock]] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: str) -> tuple[Any, threading.Lock]:
        from rag.answer import Conversation

        with self.lock:
            if key not in self.items:
                self.items[key] = (Conversation(), threading.Lock())
                while len(self.items) > MAX_CONVERSATIONS:
                    self.items.popitem(last=False)
            self.items.move_to_end(key)
            return self.items[key]


@dataclass
class Service:
    """What the app shares: the index, the embedder, one Assistant per backend."""

    index_name: str
    root: Path
    default_backend: str
    ask_timeout: float
    backends: frozenset[str]  # the ones a request may choose
    index: Any = None
    embedder: Any = None
    assistants: dict[str, Any] = field(default_factory=dict)
    conversations: _Conversations = field(default_factory=_Conversations)
    ready: threading.Event = field(default_factory=threading.Event)
    failure: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Model and search work in at most this many threads (one per core): more threads only
    # contend for the cores and each holds its own buffers.
    limiter: Any = None

    def load(self) -> None:
        from rag import store
        from rag.embed import SentenceEmbedder

        try:
            index = store.load(self.index_name, self.root)
            embedder = SentenceEmbedder(index.model)
            embedder.encode(["warm up"])
        except RagError as exc:
            self.failure = str(exc)
            log.error("index %s not loaded: %s", self.index_name, exc)
            return
        self.index, self.embedder = index, embedder
        self.assistant(self.default_backend)
        self.ready.set()
        log.info(
            "index %s loaded: %d trials, %d chunks",
            self.index_name,
            len(index.trials),
            len(index.chunks),
        )

    def assistant(self, backend: str | None) -> Any:
        from rag.answer import Assistant
        from rag.llm.base import get_backend

        name = backend or self.default_backend
        with self.lock:
            if name not in self.assistants:
                self.assistants[name] = Assistant(self.index, self.embedder, get_backend(name))
            return self.assistants[name]


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    if not service.ready.is_set():
        detail = service.failure or "the index and model are still loading; retry shortly"
        raise HTTPException(503, detail)
    return service


# --- the app ---------------------------------------------------------------------------------


def create_app(
    index: str = "default",
    *,
    root: Path = INDEX_ROOT,
    backend: str = "extractive",
    token: str | None = None,
    cors_origins: list[str] | None = None,
    ask_timeout: float = ASK_TIMEOUT_SECONDS,
    allow_backends: list[str] | None = None,
    body_timeout: float = BODY_TIMEOUT_SECONDS,
) -> FastAPI:
    """The API over index/<index>; the index loads in the background at start-up.

    A request may choose `backend` or one of `allow_backends`, no other: a backend may call
    an outside service with the server's key."""
    backends = frozenset([backend, *(allow_backends or [])])
    service = Service(index, root, backend, ask_timeout, backends)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.limiter = anyio.CapacityLimiter(os.cpu_count() or 2)
        thread = threading.Thread(target=service.load, name="rag-load", daemon=True)
        thread.start()
        yield

    app = FastAPI(
        title="rag: cited answers from clinical-trial records",
        version="0.1.0",
        lifespan=lifespan,
        description=__doc__,
    )
    app.state.service = service
    # The last added runs first: the request id and log line, then CORS (so a preflight
    # needs no token and a refusal still carries the CORS headers), then the gate.
    app.add_middleware(
        _Gate,
        token=token if token is not None else os.environ.get(TOKEN_ENV),
        body_timeout=body_timeout,
    )
    if cors_origins:
        app.add_middleware(
            _Cors,
            allow_origins=cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
        )
    app.add_middleware(_Trace)
    _handlers(app)
    _routes(app)
    return app


def _error(status: int, message: str, passages: list[HitOut] | None = None) -> JSONResponse:
    body = ErrorOut(error=message, request_id=_request_id.get(), passages=passages)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status)


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _explain(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        cause = exc.__cause__
        if exc.status_code == 400 and isinstance(cause, Exception):  # FastAPI's body parse
            return _error(422, _unreadable(cause))
        response = _error(exc.status_code, _problem(request, exc))
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(RagError)
    async def rag_error(request: Request, exc: RagError) -> JSONResponse:
        return _error(422, str(exc))

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return _error(500, "internal error; the server log has the details under this request id")


def _unreadable(cause: Exception) -> str:
    """Why a body that FastAPI could not parse is refused, and what to send instead."""
    if isinstance(cause, UnicodeDecodeError):
        return (
            f"body: not valid UTF-8 (byte {cause.object[cause.start]:#04x} at offset "
            f"{cause.start}); send JSON encoded as UTF-8"
        )
    if isinstance(cause, RecursionError):
        return 'body: JSON nested too deeply; send one flat object such as {"question": "..."}'
    return "body: not readable as JSON; send a JSON object encoded as UTF-8"


def _problem(request: Request, exc: StarletteHTTPException) -> str:
    """An HTTP error as one line; Starlette's bare 404 and 405 say what to do instead."""
    if exc.detail != HTTPStatus(exc.status_code).phrase:
        return _printable(str(exc.detail))
    where = _printable(f"{request.method} {request.scope['path']}")  # url.path drops \n
    if exc.status_code == 404:
        return f"no endpoint at {where}; GET /docs lists them"
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "another method")
        return f"method not allowed: {where}; use {allowed}"
    return f"{exc.detail} ({where})"


def _explain(errors: Any) -> str:
    """Pydantic's errors as one line: where, what is wrong, and what is allowed."""
    parts = []
    for error in errors:
        loc = [str(p) for p in error.get("loc", ()) if p != "body"]
        where = _printable(".".join(loc)) or "body"
        if error.get("type") == "extra_forbidden":
            model = FiltersIn if loc[:1] == ["filters"] else AskIn
            allowed = ", ".join(model.model_fields)
            parts.append(f"{where}: unknown field; the fields are {allowed}")
        elif error.get("type") == "json_invalid":
            parts.append("body: not valid JSON; send a JSON object")
        else:
            parts.append(f"{where}: {_printable(str(error.get('msg', 'invalid')))}")
    if len(parts) > MAX_LISTED_PROBLEMS:
        more = len(parts) - MAX_LISTED_PROBLEMS
        parts = [*parts[:MAX_LISTED_PROBLEMS], f"and {more} more problems"]
    return "; ".join(parts) or "invalid request"


def _filters(values: dict[str, Any]) -> Any:
    from rag.filters import from_mapping

    return from_mapping(values)


def _hit(hit: Any) -> HitOut:
    chunk = hit.chunk
    return HitOut(
        trial_id=chunk.trial_id,
        chunk_id=chunk.id,
        section=chunk.section,
        criterion_id=chunk.criterion_id,
        score=round(float(hit.score), 6),
        text=chunk.text,
        span=list(chunk.span) if chunk.span else None,
        title=chunk.title,
    )


def _only(request: Request, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(request.query_params) - set(allowed))
    if unknown:
        raise HTTPException(
            422, f"unknown query parameter {unknown[0]!r}; the parameters are {', '.join(allowed)}"
        )


def _summary(trial: Any) -> dict[str, Any]:
    return {
        "id": trial.id,
        "name": render.short_name(trial),
        "nct_id": trial.nct_id,
        "title": trial.title,
        "status": trial.status,
        "phase": trial.phase,
        "study_type": trial.study_type,
        "enrollment": trial.enrollment,
        "sponsor": trial.sponsor,
        "conditions": list(trial.conditions) if trial.conditions else None,
    }


FilterParam = Annotated[
    str | None, Query(max_length=200, description="as --filter: e.g. status=recruiting")
]


def _query_filters(
    status: FilterParam = None,
    phase: FilterParam = None,
    type: FilterParam = None,  # noqa: A002 - the filter's name
    sex: Annotated[Literal["female", "male", "all"] | None, Query()] = None,
    age: Annotated[float | None, Query(ge=0, le=150)] = None,
    condition: FilterParam = None,
    intervention: FilterParam = None,
    sponsor: FilterParam = None,
    organisation: FilterParam = None,
    country: FilterParam = None,
    design: FilterParam = None,
    about: FilterParam = None,
    trial: FilterParam = None,
) -> Any:
    """The filters of GET endpoints, as query parameters, parsed like --filter."""
    values = locals()
    return _filters({key: values[key] for key in FILTER_KEYS})


def _routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["service"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["service"], responses={503: {"model": ErrorOut}})
    async def readyz(request: Request) -> dict[str, Any]:
        """The index and the model are loaded."""
        service = _service(request)
        return {
            "status": "ready",
            "index": service.index_name,
            "trials": len(service.index.trials),
            "chunks": len(service.index.chunks),
            "model": service.index.model,
        }

    @app.post(
        "/v1/ask",
        tags=["answers"],
        response_model=AskOut,
        responses={
            200: {"content": {"text/event-stream": {"schema": _SSE_EVENT}}},
            **_errors(400, 408, 413, 502, 504),
        },
    )
    async def ask(body: AskIn, request: Request) -> Any:
        """Answer a question; every claim cites a retrieved passage.

        With "stream": true the answer comes as Server-Sent Events: "token" events with the
        text as it is written, then one "answer" event with the checked answer, citations and
        verdicts (or one "error" event with the retrieved passages).
        """
        enabled: frozenset[str] = request.app.state.service.backends
        if body.backend is not None and body.backend not in enabled:
            raise HTTPException(
                400,
                f"backend {body.backend!r} is not enabled on this server; choose one of "
                f"{', '.join(sorted(enabled))}, or leave it out",
            )
        service = _service(request)
        filters = _filters(body.filters.model_dump() if body.filters else {})
        assistant = await anyio.to_thread.run_sync(service.assistant, body.backend)
        conversation, turn = (
            service.conversations.get(body.conversation_id)
            if body.conversation_id
            else (None, None)
        )
        pull = _Pull(
            assistant.stream(body.question, filters=filters, k=body.k, conversation=conversation),
            turn,
        )
        if body.stream:
            return _Events(_events(service, body, filters, pull))
        return await _answer(service, body, filters, pull, request)

    @app.get("/v1/search", tags=["search"], response_model=SearchOut, responses=_errors())
    async def search(
        request: Request,
        q: Annotated[str, Query(min_length=1, max_length=MAX_QUESTION_CHARS)],
        filters: Annotated[Any, Depends(_query_filters)],
        k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
        per_trial: Annotated[int, Query(ge=1, le=MAX_K)] = 3,
    ) -> SearchOut:
        """Hybrid (dense + BM25) search over criteria, cards, summaries and descriptions."""
        _only(request, ("q", "k", "per_trial", *FILTER_KEYS))
        service = _service(request)
        retriever = service.assistant(None).retriever
        hits = await anyio.to_thread.run_sync(
            lambda: retriever.search(q, k=k, filters=filters, per_trial=per_trial),
            limiter=service.limiter,
        )
        return SearchOut(hits=[_hit(h) for h in hits])

    @app.get("/v1/trials", tags=["trials"], response_model=TrialsPage, responses=_errors())
    async def trials(
        request: Request,
        filters: Annotated[Any, Depends(_query_filters)],
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    ) -> TrialsPage:
        """The trials that pass the filters, in id order, a page at a time."""
        _only(request, ("offset", "limit", *FILTER_KEYS))
        service = _service(request)
        passing = [t for _, t in sorted(service.index.trials.items()) if filters.check(t)[0]]
        page = passing[offset : offset + limit]
        return TrialsPage(
            total=len(passing),
            offset=offset,
            limit=limit,
            trials=[TrialSummary(**_summary(t)) for t in page],
        )

    @app.get(
        "/v1/trials/{trial_id}", tags=["trials"], response_model=TrialOut, responses=_errors(404)
    )
    async def trial_detail(
        request: Request, trial_id: Annotated[str, PathParam(max_length=64)]
    ) -> TrialOut:
        """A trial's fields and its criteria, each with its id and character span."""
        _only(request, ())
        service = _service(request)
        found = service.index.find_trial(trial_id)
        if found is None:
            raise HTTPException(
                404,
                f"no trial {trial_id!r} in index {service.index_name}; GET /v1/trials lists them",
            )
        data = {
            name: value for name, value in found.to_dict().items() if name in TrialOut.model_fields
        }
        card = card_text(found)
        return TrialOut.model_validate(data | _summary(found) | {"card": card})


def _out(answer: Any, conversation_id: str | None, timings: dict[str, float]) -> AskOut:
    data = answer.to_dict()
    return AskOut(
        answer=data["answer"],
        citations=[CitationOut(**c) for c in data["citations"]],
        verdicts=[VerdictOut(**v) for v in data["verdicts"]],
        abstained=data["abstained"],
        unsupported=data["unsupported"],
        question=QuestionOut.model_validate(data["question"]) if data["question"] else None,
        trial_id=answer.trial_id,
        conversation_id=conversation_id,
        timings={k: round(v, 1) for k, v in timings.items()},
    )


async def _passages(service: Service, body: AskIn, filters: Any) -> list[HitOut]:
    retriever = service.assistant(None).retriever
    hits = await anyio.to_thread.run_sync(
        lambda: retriever.search(body.question, k=body.k, filters=filters),
        limiter=service.limiter,
    )
    return [_hit(h) for h in hits]


class _Pull:
    """The answer's generator, pulled a piece at a time from worker threads, holding the
    conversation's turn while it runs.

    stop() closes the generator as soon as no pull is running: the backend's generator gets
    GeneratorExit, which makes an OpenAI-compatible backend drop its upstream request instead
    of reading it to the end for a client that is gone or a deadline that has passed."""

    def __init__(self, pieces: Generator[str, None, Any], turn: threading.Lock | None) -> None:
        self.pieces = pieces
        self.turn = turn
        self.lock = threading.Lock()  # one pull, or the close, at a time
        self.holding = False  # the turn
        self.stopped = False
        self.done = False

    def next(self) -> tuple[str | None, Any]:
        """(piece, None); (None, answer) at the end; (None, None) once stopped."""
        with self.lock:
            if self.turn is not None and not self.holding:
                self.turn.acquire()
                self.holding = True
            if self.stopped:
                return None, None
            try:
                return next(self.pieces), None
            except StopIteration as end:
                self._finish()
                return None, end.value
            except BaseException:
                self._finish()
                raise

    def run(self) -> Any:
        """Pull to the end in this thread: the answer, or None once stopped."""
        while True:
            piece, answer = self.next()
            if piece is None:
                return answer

    def stop(self) -> None:
        """Make the generator close; a thread waits out the pull that may be running."""
        if self.done:
            return
        self.stopped = True
        threading.Thread(target=self._close, name="rag-stop", daemon=True).start()

    def _close(self) -> None:
        with self.lock:
            self.pieces.close()
            self._finish()

    def _finish(self) -> None:
        self.done = True
        if self.holding and self.turn is not None:
            self.holding = False
            self.turn.release()


async def _answer(
    service: Service, body: AskIn, filters: Any, pull: _Pull, request: Request
) -> Any:
    from rag.llm.base import BackendError, BackendTimeout

    started = time.perf_counter()
    try:
        try:
            with anyio.fail_after(service.ask_timeout):
                answer = await _while_connected(request, pull.run, service.limiter)
        finally:
            pull.stop()  # past the deadline or the client gone: the upstream request stops too
        if answer is None:
            return Response(status_code=499)  # nginx's "client closed request", for the log
    except TimeoutError:
        return _error(504, _too_slow(service), await _passages(service, body, filters))
    except BackendTimeout as exc:
        return _error(504, str(exc), await _passages(service, body, filters))
    except BackendError as exc:
        log.warning("backend failed: %s", exc)
        return _error(502, str(exc), await _passages(service, body, filters))
    total = (time.perf_counter() - started) * 1000
    return _out(answer, body.conversation_id, {"total_ms": total})


async def _while_connected(request: Request, work: Callable[[], Any], limiter: Any) -> Any:
    """`work`'s result, from a worker thread; None once the client hangs up, which uvicorn
    does not cancel a request for."""

    def attempt() -> tuple[Any, Exception | None]:
        try:
            return work(), None
        except Exception as exc:  # raised below, not wrapped in the task group's ExceptionGroup
            return None, exc

    outcome: tuple[Any, Exception | None] = (None, None)
    async with anyio.create_task_group() as group:

        async def watch() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            group.cancel_scope.cancel()

        group.start_soon(watch)
        outcome = await anyio.to_thread.run_sync(attempt, abandon_on_cancel=True, limiter=limiter)
        group.cancel_scope.cancel()
    result, failure = outcome
    if failure is not None:
        raise failure
    return result


def _too_slow(service: Service) -> str:
    log.warning("ask timed out after %.0f s", service.ask_timeout)
    return f"no answer within {service.ask_timeout:g} s; the passages retrieved are given"


def _event(kind: str, data: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _events(
    service: Service, body: AskIn, filters: Any, pull: _Pull
) -> AsyncGenerator[str, None]:
    """SSE: 'token' events as the backend writes, then one 'answer' (or 'error') event.

    Each piece is pulled in a worker thread, off the event loop, within the ask deadline; a
    client that hangs up cancels the pull at once and stops the generator (see _Pull)."""
    from rag.llm.base import BackendError

    started = time.perf_counter()
    deadline = anyio.current_time() + service.ask_timeout
    first: float | None = None
    try:
        while True:
            try:
                with anyio.fail_after(deadline - anyio.current_time()):
                    piece, answer = await anyio.to_thread.run_sync(
                        pull.next, abandon_on_cancel=True, limiter=service.limiter
                    )
            except (TimeoutError, BackendError) as exc:
                pull.stop()
                message = _too_slow(service) if isinstance(exc, TimeoutError) else str(exc)
                passages = await _passages(service, body, filters)
                failure = ErrorOut(error=message, request_id=_request_id.get(), passages=passages)
                yield _event("error", failure.model_dump())
                return
            if piece is None:
                break
            if first is None:
                first = (time.perf_counter() - started) * 1000
            yield _event("token", {"text": piece})
    finally:
        pull.stop()
    timings = {"total_ms": (time.perf_counter() - started) * 1000}
    if first is not None:
        timings["first_token_ms"] = first
    yield _event("answer", _out(answer, body.conversation_id, timings).model_dump())


class _Events(StreamingResponse):
    """A Server-Sent Events answer whose events are closed when the response ends however
    it ends (a client hanging up included), not when the garbage collector gets to them."""

    def __init__(self, events: AsyncGenerator[str, None]) -> None:
        super().__init__(
            events, media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )
        self.events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self.events.aclose()


# --- request id, CORS, bearer token, body cap and deadline (pure ASGI: streams pass through)


def _header(scope: Scope, name: bytes) -> str:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k.lower() == name), "")


class _Trace:
    """A request id on every response and log line, and one log line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex[:16]
        _request_id.set(request_id)
        started = time.perf_counter()
        status = [500]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message = dict(message)
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log.info(
                "%s %s %d %.1f ms",
                scope["method"],
                scope["path"],
                status[0],
                (time.perf_counter() - started) * 1000,
            )


class _Cors(CORSMiddleware):
    """Starlette's CORS, with a refused preflight answered in the API's error shape."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code == 200:
            return response
        refused = bytes(response.body).decode().removeprefix("Disallowed CORS ")
        origins = ", ".join(self.allow_origins)
        message = (
            f"CORS preflight refused ({refused} not allowed); the server allows origins "
            f"{origins} (rag serve --cors-origin), methods {', '.join(self.allow_methods)} "
            f"and headers {', '.join(sorted(self.allow_headers))}"
        )
        refusal = _error(response.status_code, _printable(message))
        refusal.headers["Vary"] = "Origin"
        return refusal


_Refusal = tuple[int, str, dict[str, str]]


class _Gate:
    """The bearer token, the body cap and the body deadline, before any route runs."""

    def __init__(
        self,
        app: ASGIApp,
        token: str | None,
        body_timeout: float,
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        self.app = app
        self.token = token or None
        self.body_timeout = body_timeout
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refuse(scope)
        if refusal is None:
            body, refusal = await self._read(receive)
        if refusal is not None:
            await _send_json(send, *refusal, _request_id.get())
            return
        await self.app(scope, _replay(body, receive), send)

    def _refuse(self, scope: Scope) -> _Refusal | None:
        if self.token and scope["path"].startswith("/v1/"):
            scheme, _, given = _header(scope, b"authorization").partition(" ")
            if scheme.lower() != "bearer" or not secrets.compare_digest(
                given.strip().encode(), self.token.encode()
            ):
                return (
                    401,
                    "missing or wrong bearer token; send Authorization: Bearer <RAG_API_TOKEN>",
                    {"www-authenticate": "Bearer"},
                )
        length = _header(scope, b"content-length")
        if length.isdigit() and int(length) > self.max_body:
            return self._too_big()
        return None

    def _too_big(self) -> _Refusal:
        return 413, f"body over {self.max_body} bytes; send a shorter question", {}

    async def _read(self, receive: Receive) -> tuple[bytes, _Refusal | None]:
        """The whole body, unless it is over the cap or slower than the deadline: uvicorn
        has no body timeout, and a client sending a byte a minute would hold a connection."""
        chunks: list[bytes] = []
        size = 0
        with anyio.move_on_after(self.body_timeout):
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    break
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                if size > self.max_body:
                    return b"", self._too_big()
                if not message.get("more_body", False):
                    break
            return b"".join(chunks), None
        late = f"body not complete within {self.body_timeout:g} s; send the whole body at once"
        return b"", (408, late, {"connection": "close"})


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_json(
    send: Callable[[Message], Awaitable[None]],
    status: int,
    message: str,
    extra: dict[str, str],
    request_id: str,
) -> None:
    data = json.dumps({"error": message, "request_id": request_id}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in extra.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
