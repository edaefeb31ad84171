"""The `rag` command line. The only place a RagError becomes a stderr line and exit code 1."""

from __future__ import annotations

import os

# numpy's BLAS on one thread, set before numpy is first imported: a question's matrices are
# small, and its threads spin-wait for a core when another is busy (another request, a
# build). With one of the 2 cores busy, a warm question took 92 ms at the median and 282 ms at
# worst with the default threads, 28 ms and 33 ms with one. Builds embed through torch, and
# FAISS uses OpenMP; neither reads this.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rag.citations import UNSUPPORTED
from rag.errors import RagError
from rag.facts import type_trial
from rag.filters import FILTER_KEYS
from rag.types import Hit, Trial

if TYPE_CHECKING:
    from rag.answer import Assistant, Conversation
    from rag.filters import Filters as RetrievalFilters
    from rag.ingest import FileReport
    from rag.store import Index
    from rag.types import Answer

app = typer.Typer(
    help="Ask questions of clinical-trial records and get answers that cite the record.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)

# Fields counted in "fields found": what a record can state, not bookkeeping.
_STATED_FIELDS = tuple(
    f.name
    for f in fields(Trial)
    if f.name
    not in {"id", "source", "criteria", "warnings", "eligibility_text", "enrollment_raw", "derived"}
)


@app.callback()
def main() -> None:
    """Ask questions of clinical-trial records and get answers that cite the record."""


@app.command()
def ingest(
    paths: Annotated[
        list[Path], typer.Argument(help="Record files or folders (walked recursively).")
    ],
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print one Trial per line (JSON Lines), with its typed criteria under "
            '"typed": concepts and directions, qualifiers, numeric limits, exceptions.',
        ),
    ] = False,
) -> None:
    """Parse trial records into the Trial model and show what each file gave.

    Formats are recognised by content: registry pages saved as text (four site layouts, else
    generic text), ClinicalTrials.gov API v2 JSON (a study, an export array or an API page)
    and legacy registry XML. A file that cannot be read is reported and the rest go on; the
    exit code is 1 only when nothing could be read.
    """
    from rag.ingest import ingest_paths  # the record formats: only ingest and index read files

    reports = ingest_paths(paths)
    for report in reports:
        if report.error:
            typer.echo(f"error: {report.error}", err=True)
        if as_json:
            for warning in report.warnings:
                typer.echo(f"warning: {report.path}: {warning}", err=True)
            for trial in report.trials:
                typed = [t.to_dict() for t in type_trial(trial)]
                typer.echo(json.dumps(trial.to_dict() | {"typed": typed}, ensure_ascii=False))
        elif report.trials:
            _print_table(report)
    trials = [t for r in reports for t in r.trials]
    summary = _summary(reports)
    typer.echo(summary, err=as_json)
    if not trials:
        raise typer.Exit(1)


def _print_table(report: FileReport) -> None:
    typer.echo(f"{report.path}  [{report.format}]")
    header = f"  {'id':<14} {'fields':>6} {'derived':>7} {'incl':>5} {'excl':>5}  warnings"
    typer.echo(header)
    for trial in report.trials:
        found = sum(1 for name in _STATED_FIELDS if getattr(trial, name) is not None)
        incl = len(trial.criteria_in("inclusion"))
        excl = len(trial.criteria_in("exclusion"))
        notes = "; ".join(trial.warnings) or "-"
        derived = len({d.field for d in trial.derived})
        typer.echo(
            f"  {trial.id:<14} {found:>3}/{len(_STATED_FIELDS):<2} {derived:>7} {incl:>5} "
            f"{excl:>5}  {notes}"
        )
    for warning in report.warnings:
        if not any(warning in t.warnings for t in report.trials):
            typer.echo(f"  warning: {warning}")


def _summary(reports: list[FileReport]) -> str:
    trials = [t for r in reports for t in r.trials]
    formats = Counter(t.source.format for t in trials)
    by_format = ", ".join(f"{name} {count}" for name, count in formats.most_common())
    errors = sum(1 for r in reports if r.error)
    warnings = sum(len(r.warnings) for r in reports)
    duplicates = sum(n - 1 for n in Counter(t.id for t in trials).values() if n > 1)
    parts = [
        f"{len(reports)} files",
        f"{len(trials)} trials" + (f" ({by_format})" if by_format else ""),
        f"{sum(len(t.criteria) for t in trials)} criteria",
        f"{errors} errors",
        f"{warnings} warnings",
    ]
    if duplicates:
        parts.append(f"{duplicates} duplicate trial ids")
    return ", ".join(parts)


DEFAULT_CORPUS = Path("corpus")
IndexName = Annotated[
    str, typer.Option("--name", "-n", envvar="RAG_INDEX", help="Index under index/.")
]
Model = Annotated[
    str,
    typer.Option(
        "--model",
        envvar="RAG_MODEL",
        help="Embedding model: all-MiniLM-L6-v2 (bundled) or a sentence-transformers folder.",
    ),
]
Filters = Annotated[
    list[str] | None,
    typer.Option(
        "--filter",
        "-f",
        help=f"KEY=VALUE, repeatable: {', '.join(FILTER_KEYS)}. Commas give alternatives "
        "(status=recruiting,not_yet_recruiting; design=randomized,open-label).",
    ),
]


@contextmanager
def _errors() -> Iterator[None]:
    """A RagError becomes one stderr line and exit code 1; anything else is a bug."""
    try:
        yield
    except RagError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command("index")
def index_command(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Record files or folders. [default: corpus/]", show_default=False),
    ] = None,
    name: IndexName = "default",
    model: Model = "all-MiniLM-L6-v2",
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Embed every chunk again, reusing nothing.")
    ] = False,
    device: Annotated[
        str,
        typer.Option(
            "--device",
            help="Where to embed: auto (a GPU if torch sees one, else the CPU), cpu, cuda, "
            "cuda:N or mps.",
        ),
    ] = "auto",
) -> None:
    """Build or update the search index of PATHS (default corpus/) under index/NAME.

    Only chunks whose text changed are embedded again; trials whose files are gone are
    dropped. The new index replaces the old one in a single step at the end, so an
    interrupted build leaves the previous index usable.
    """
    from rag import store
    from rag.embed import SentenceEmbedder

    with _errors():
        report = store.build(
            paths or [DEFAULT_CORPUS],
            SentenceEmbedder(model, device=device),
            name=name,
            rebuild=rebuild,
            progress=True,
        )
        for error in report.errors:
            typer.echo(f"error: {error}", err=True)
        for warning in report.warnings:
            typer.echo(f"warning: {warning}", err=True)
        typer.echo(store.describe(report))


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for, in plain words.")],
    filters: Filters = None,
    k: Annotated[int, typer.Option("--k", "-k", min=1, help="Hits to show.")] = 10,
    per_trial: Annotated[
        int, typer.Option("--per-trial", min=1, help="At most this many hits from one trial.")
    ] = 3,
    all_trials: Annotated[
        bool,
        typer.Option(
            "--all-trials", help="Every trial that passes the filters, with its best chunks."
        ),
    ] = False,
    method: Annotated[str, typer.Option("--method", help="hybrid, dense or lexical.")] = "hybrid",
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per hit and line.")
    ] = False,
    name: IndexName = "default",
) -> None:
    """Search the index: dense and BM25 retrieval fused by reciprocal rank."""
    from rag import store
    from rag.embed import SentenceEmbedder
    from rag.filters import parse_filters
    from rag.retrieve import Retriever

    with _errors():
        if method not in ("hybrid", "dense", "lexical"):
            raise RagError(f"Unknown method {method!r}; use hybrid, dense or lexical")
        parsed = parse_filters(filters or [])
        index = store.load(name)
        retriever = Retriever(index, SentenceEmbedder(index.model))
        if all_trials:
            groups = retriever.search_trials(
                query,
                filters=parsed,
                per_trial=per_trial,
                method=method,  # type: ignore[arg-type]
            )
            hits = [hit for group in groups for hit in group.hits]
            if not as_json:
                typer.echo(f"{len(groups)} trials pass the filters", err=True)
        else:
            hits = retriever.search(
                query,
                k=k,
                filters=parsed,
                per_trial=per_trial,
                method=method,  # type: ignore[arg-type]
            )
        for rank, hit in enumerate(hits, start=1):
            if as_json:
                typer.echo(json.dumps(_hit_json(hit), ensure_ascii=False))
            else:
                typer.echo(_hit_line(rank, hit))
        if not hits and not as_json:
            typer.echo("No chunk matches.", err=True)


def _hit_json(hit: Hit) -> dict[str, object]:
    chunk = hit.chunk
    return {
        "trial_id": chunk.trial_id,
        "chunk_id": chunk.id,
        "section": chunk.section,
        "criterion_id": chunk.criterion_id,
        "score": round(hit.score, 6),
        "text": chunk.text,
        "span": list(chunk.span) if chunk.span else None,
        "field": chunk.field,
        "title": chunk.title,
        "notes": list(hit.notes),
    }


def _hit_line(rank: int, hit: Hit) -> str:
    chunk = hit.chunk
    notes = f"  ({'; '.join(hit.notes)})" if hit.notes else ""
    text = chunk.text if len(chunk.text) <= 300 else chunk.text[:299] + "…"
    return (
        f"{rank:>2}. {chunk.id}  [{chunk.section}]  {hit.score:.4f}{notes}\n"
        f"    {chunk.title}\n    {text}"
    )


Backend = Annotated[
    str, typer.Option("--backend", "-b", envvar="RAG_BACKEND", help="Answer backend.")
]


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="A question about the indexed trials.")],
    backend: Backend = "extractive",
    filters: Filters = None,
    k: Annotated[int, typer.Option("--k", "-k", min=1, help="Passages to retrieve.")] = 8,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the Answer as one JSON object.")
    ] = False,
    name: IndexName = "default",
) -> None:
    """Answer QUESTION from the index; every sentence cites the passage it came from."""
    from rag.filters import parse_filters
    from rag.llm.base import BackendError

    with _errors():
        parsed = parse_filters(filters or [])
        assistant = _assistant(name, backend, k)
        try:
            answer = assistant.ask(question, filters=parsed)
        except BackendError as exc:
            _show_passages(exc, assistant.retriever.search(question, k=k, filters=parsed))
            raise typer.Exit(1) from None
        if as_json:
            typer.echo(json.dumps(answer.to_dict(), ensure_ascii=False))
            return
        typer.echo(answer.text)
        if answer.citations:
            typer.echo("")
        for citation in answer.citations:
            where = citation.criterion_id or citation.chunk_id
            text = "; ".join(citation.text.splitlines())
            typer.echo(f"[{citation.marker}] {where} ({citation.section}): {text}")
        for marker in answer.removed_markers:
            typer.echo(f"warning: removed citation [{marker}]: no such passage", err=True)
        for sentence in answer.unsupported:
            typer.echo(f"warning: cites no passage, marked {UNSUPPORTED}: {sentence}", err=True)


CHAT_HELP = """Commands:
  /help           this help
  /sources        the passages the last answer cites, with their spans
  /trial ID       show a trial and make it the one follow-ups are about
  /backend NAME   answer with another backend (extractive, openai, ...)
  /exit           leave (also: exit, quit, Ctrl-D)"""


@app.command()
def chat(
    backend: Backend = "extractive",
    filters: Filters = None,
    k: Annotated[int, typer.Option("--k", "-k", min=1, help="Passages to retrieve.")] = 8,
    name: IndexName = "default",
) -> None:
    """Ask questions in a conversation; follow-ups resolve to the trial under discussion."""
    from rag.answer import Conversation  # noqa: F811 - names typed above
    from rag.filters import parse_filters
    from rag.llm.base import BackendError, get_backend

    with _errors():
        parsed = parse_filters(filters or [])
        assistant = _assistant(name, backend, k)
    index = assistant.index
    conversation = Conversation()
    typer.echo(f"Chatting with {backend} over {len(index.trials)} trials")
    typer.echo("Type 'exit' or 'quit' to exit, '/help' for commands")
    last: Answer | None = None
    for line in _lines_in():
        text = line.strip()
        if not text:
            continue
        if text in {"exit", "quit", "/exit", "/quit"}:
            break
        if text.startswith("/"):
            command, _, argument = text.partition(" ")
            with _errors_kept():
                if command == "/help":
                    typer.echo(CHAT_HELP)
                elif command == "/sources":
                    _echo_sources(last)
                elif command == "/trial":
                    conversation.trial_id = _echo_trial(index, argument.strip())
                elif command == "/backend":
                    assistant.backend = get_backend(argument.strip())
                    typer.echo(f"Answering with {argument.strip()}")
                else:
                    typer.echo(f"Unknown command {command}; /help lists them")
            continue
        with _errors_kept():
            try:
                last = _chat_turn(assistant, text, parsed, conversation, backend != "extractive")
            except BackendError as exc:
                _show_passages(exc, assistant.retriever.search(text, k=k, filters=parsed))


def _assistant(
    name: str, backend: str, k: int = 8, options: dict[str, str | None] | None = None
) -> Assistant:
    """The index `name` loaded with its model, answering through `backend`, made with
    `options`."""
    from rag import store
    from rag.answer import Assistant  # noqa: F811 - names typed above
    from rag.embed import SentenceEmbedder
    from rag.llm.base import get_backend

    index = store.load(name)
    older = [
        what
        for what, stored in (("typed criteria", index.read_facts), ("naming words", index.naming))
        if stored is None
    ]
    if older and index.trials:
        typer.echo(
            f"note: index {name!r} holds no {' or '.join(older)} of this rag's rules; questions "
            f"make them as they go, more slowly (run `rag index` on its records to store them)",
            err=True,
        )
    return Assistant(
        index, SentenceEmbedder(index.model), get_backend(backend, **(options or {})), k=k
    )


def _chat_turn(
    assistant: Assistant,
    text: str,
    filters: RetrievalFilters,
    conversation: Conversation,
    streamed: bool,
) -> Answer:
    """One question in the REPL: an LLM's words as they come, then the checked citations."""
    pieces = assistant.stream(text, filters=filters, conversation=conversation)
    while True:
        try:
            piece = next(pieces)
        except StopIteration as done:
            answer: Answer = done.value
            break
        if streamed:
            typer.echo(piece, nl=False)
    if streamed:
        typer.echo("")
        if answer.removed_markers or answer.unsupported or answer.abstained:
            typer.echo(f"(checked) {answer.text}")
    else:
        typer.echo(answer.text)
    for citation in answer.citations:
        typer.echo(f"  [{citation.marker}] {citation.criterion_id or citation.chunk_id}")
    return answer


def _show_passages(error: Exception, hits: list[Hit]) -> None:
    """The backend failed: say so in one line, and still show what was retrieved."""
    typer.echo(f"error: {error}", err=True)
    typer.echo("Retrieved passages (no answer was written):")
    for rank, hit in enumerate(hits, start=1):
        typer.echo(_hit_line(rank, hit))


def _lines_in() -> Iterator[str]:
    """Lines typed at a prompt: prompt_toolkit with history on a terminal, plain stdin else."""
    import sys

    if sys.stdin.isatty() and sys.stdout.isatty():
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import FileHistory

        history = Path.home() / ".rag_history"
        session: PromptSession[str] = PromptSession(history=FileHistory(str(history)))
        while True:
            try:
                yield session.prompt("> ")
            except (EOFError, KeyboardInterrupt):
                return
    else:
        while True:
            typer.echo("> ", nl=False)
            line = sys.stdin.readline()
            if not line:
                typer.echo("")
                return
            yield line


@contextmanager
def _errors_kept() -> Iterator[None]:
    """In the REPL an error is one line and the conversation goes on."""
    try:
        yield
    except RagError as exc:
        typer.echo(f"error: {exc}", err=True)


def _echo_sources(answer: Answer | None) -> None:
    if answer is None or not answer.citations:
        typer.echo("No sources yet: ask a question first.")
        return
    for c in answer.citations:
        span = f" chars {c.span[0]}-{c.span[1]}" if c.span else ""
        text = "; ".join(c.text.splitlines())
        typer.echo(
            f"[{c.marker}] {c.trial_id} {c.title}\n    {c.criterion_id or c.chunk_id}"
            f" ({c.section}){span}\n    {text}"
        )


def _echo_trial(index: Index, trial_id: str) -> str | None:
    from rag.chunk import card_text

    trial = index.find_trial(trial_id)
    if trial is None:
        typer.echo(f"No trial {trial_id!r} in the index; /sources shows the ids of cited trials")
        return None
    typer.echo(card_text(trial))
    incl, excl = len(trial.criteria_in("inclusion")), len(trial.criteria_in("exclusion"))
    typer.echo(
        f"Criteria: {incl} inclusion, {excl} exclusion. Follow-up questions are about {trial.id}."
    )
    return trial.id


@app.command("eval")
def eval_command(
    set_name: Annotated[
        str, typer.Option("--set", "-s", help="Eval set: a name under eval/ or a .jsonl path.")
    ] = "seed",
    backend: Backend = "extractive",
    name: Annotated[
        str | None,
        typer.Option(
            "--index", "-n", help="Index under index/. [default: the set's, else default]"
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            envvar="OPENAI_BASE_URL",
            help="OpenAI-compatible server for --backend openai, e.g. http://127.0.0.1:8080/v1.",
        ),
    ] = None,
    llm_model: Annotated[
        str | None, typer.Option("--llm-model", help="Model name sent to the openai backend.")
    ] = None,
    k: Annotated[
        int | None, typer.Option("--k", "-k", min=1, help="Recall@k cut-off. [default: 5]")
    ] = None,
    minimums: Annotated[
        list[str] | None,
        typer.Option(
            "--min",
            help="METRIC=VALUE, repeatable: fail below it (overrides the set's thresholds).",
        ),
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the Markdown and JSON results.")
    ] = Path("eval/results"),
) -> None:
    """Run an eval set and score retrieval, answers, verdicts, abstention and citations.

    Prints a table per question category and one per kind of question, writes them as
    Markdown and JSON under --out, and exits with code 1 when a metric is below its
    threshold (from --min or the set's file).
    Metrics: answer_accuracy, verdict_accuracy, abstention_accuracy, answered_accuracy,
    citation_precision, citation_recall, recall_at_k, mrr.
    """
    from rag import evaluation

    with _errors():
        eval_set = evaluation.load_set(set_name)
        thresholds = evaluation.parse_thresholds(minimums or [])
        index_name = name or str(eval_set.meta.get("index", "default"))
        options = {"base_url": base_url, "model": llm_model} if backend == "openai" else {}
        assistant = _assistant(index_name, backend, options=options)
        index = assistant.index
        typer.echo(
            f"{len(eval_set.questions)} questions from {eval_set.path}, "
            f"{backend} over index {index_name} ({len(index.trials)} trials)",
            err=True,
        )
        report = evaluation.run(
            eval_set, assistant, backend=backend, index=index_name, k=k, thresholds=thresholds
        )
        markdown, data = report.write(out)
        typer.echo(report.table())
        errors = [o for o in report.outcomes if o.error]
        if errors:
            typer.echo(f"error: {len(errors)} questions failed; first: {errors[0].error}", err=True)
        typer.echo(f"Wrote {markdown} and {data}", err=True)
        failures = report.failures()
        for failure in failures:
            typer.echo(f"FAIL: {failure}", err=True)
        if failures:
            raise typer.Exit(1)
        typer.echo("\n" + report.verdict())


@app.command("generate-eval")
def generate_eval(
    paths: Annotated[
        list[Path], typer.Argument(help="Folders or files of JSON and XML trial records.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="The eval set file to write.")],
    n: Annotated[int, typer.Option("--n", min=1, help="About this many questions.")] = 600,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: same seed, same set.")] = 0,
    index_name: Annotated[
        str, typer.Option("--index", help="The index the set is meant for (in its meta line).")
    ] = "default",
) -> None:
    """Write field questions with answers read from the records themselves (not our parser).

    Asks for phase, status, enrollment, sponsor, ages, sex, dates, conditions and
    interventions several ways, questions about fields a record leaves out, and "which
    trials" questions over sponsor, condition, intervention, phase and status.
    """
    from rag import evalgen

    with _errors():
        questions = evalgen.generate(paths, n=n, seed=seed)
        meta = {
            "index": index_name,
            "corpus": [str(p) for p in paths],
            "generated": {"n": n, "seed": seed},
        }
        evalgen.write_set(questions, out, meta)
        counts = Counter(q["category"] for q in questions)
        typer.echo(
            f"Wrote {len(questions)} questions to {out}: "
            + ", ".join(f"{c} {k}" for c, k in sorted(counts.items()))
        )


@app.command()
def serve(
    host: Annotated[
        str, typer.Option("--host", help="Address to bind; loopback unless you say otherwise.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port.")] = 8000,
    name: Annotated[
        str, typer.Option("--index", "-n", envvar="RAG_INDEX", help="Index under index/.")
    ] = "default",
    backend: Backend = "extractive",
    allow_backend: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-backend",
            help="Let a request choose this backend too (repeatable); only --backend otherwise.",
        ),
    ] = None,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option("--cors-origin", help="Allow browsers from this origin (repeatable); off."),
    ] = None,
    timeout_keep_alive: Annotated[
        int,
        typer.Option("--timeout-keep-alive", min=1, help="Seconds an idle connection stays open."),
    ] = 5,
    limit_concurrency: Annotated[
        int,
        typer.Option(
            "--limit-concurrency", min=1, help="Connections and requests at once; 503 beyond."
        ),
    ] = 128,
    h11_max_incomplete_event_size: Annotated[
        int,
        typer.Option(
            "--h11-max-incomplete-event-size",
            min=1024,
            help="Bytes of an unfinished request line and headers to buffer; 400 beyond.",
        ),
    ] = 16 * 1024,
    body_timeout: Annotated[
        float,
        typer.Option("--body-timeout", min=0.1, help="Seconds a request body may take; 408 after."),
    ] = 10.0,
) -> None:
    """Serve the HTTP answer API (POST /v1/ask, GET /v1/search, /v1/trials, /docs).

    The index and model load once at start-up (GET /readyz says when). Set RAG_API_TOKEN to
    require "Authorization: Bearer <token>" on /v1/. The limits keep slow or numerous clients
    from holding the server: uvicorn has no body timeout of its own, so the app enforces one.
    """
    import uvicorn

    from rag.api import configure_logging, create_app
    from rag.llm.base import available

    known = available()
    unknown = sorted(set(allow_backend or []) - set(known))
    if unknown:
        raise typer.BadParameter(
            f"no backend {unknown[0]!r}; the backends are {', '.join(sorted(known))}",
            param_hint="--allow-backend",
        )
    configure_logging()
    api = create_app(
        name,
        backend=backend,
        cors_origins=cors_origin,
        allow_backends=allow_backend,
        body_timeout=body_timeout,
    )
    uvicorn.run(
        api,
        host=host,
        port=port,
        access_log=False,
        log_level="warning",
        http="h11",  # the protocol --h11-max-incomplete-event-size applies to
        timeout_keep_alive=timeout_keep_alive,
        limit_concurrency=limit_concurrency,
        h11_max_incomplete_event_size=h11_max_incomplete_event_size,
    )
