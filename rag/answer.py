"""Question -> Answer with checked citations.

Two kinds of question:
- about one trial (named by id, sponsor, drug or title words, or the trial under discussion):
  retrieve within that trial and let the backend answer from the passages;
- over the corpus ("which trials allow prior PD-1 inhibitors?"): check every trial that passes
  the filters and give each a verdict (allows, excludes, requires, not stated) with the
  deciding criterion cited, then a summary line.

Citations follow paper-qa: passages are numbered, the backend cites [n], and any marker that
maps to no retrieved passage is removed and reported. When nothing retrieved supports an
answer the answer is one fixed sentence, which tells apart "no trial matches" from "the
record does not state this".
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from typing import Any

from rag.chunk import short_title
from rag.embed import Embedder
from rag.lexical import expansion_terms, token_set, tokenize
from rag.llm.base import Backend, Passage, Task
from rag.llm.extractive import card_fields_asked, topic_terms
from rag.retrieve import Filters, Retriever, TrialHits
from rag.store import Index
from rag.types import Chunk, Hit, Trial

CANNOT_ANSWER = (
    "I cannot answer this from the trial records: no retrieved passage supports an answer."
)
NO_TRIAL_MATCHES = "No trial in the corpus matches this question."
NOT_STATED = "The record of {trial} does not state this."
MAX_TOPIC_CRITERIA = 6  # criteria naming the topic added per trial, beyond the best four

_CORPUS_WIDE = re.compile(
    r"^\s*(?:(?:which|what|list(?: the| all)?|are there any|do any|does any|how many|any)\s+"
    r"(?:of the\s+)?(?:[\w-]+\s+){0,2}?(?:trials|studies)\b|which\s+(?:trial|study)\b)",
    re.IGNORECASE,
)
_EXISTS = re.compile(
    r"^\s*(?:is|are)\s+there\s+(?:a|an|any)?\s*(?:trials?|studies|study)\s+"
    r"(?:of|for|on|with|testing|using|about|in)\b",
    re.IGNORECASE,
)
_TRIAL_ID = re.compile(r"\b(NCT\d{8}|T-[0-9a-f]{10})\b", re.IGNORECASE)
# Words that ask or frame rather than name what is asked about.
_FRAME = frozenset(
    """which what who whom whose when where how many much list any there allow allows allowed
    accept accepts accepted permit permits exclude excludes excluded include includes included
    require requires required need needs needed take takes let lets enrol enroll enrolls
    enrolled eligible eligibility criteria criterion trial trials study studies does do did is
    are was would could can should i me my someone person patient patients participant
    participants year-old year old years-old it its this that the a an of for in on to and or
    about tell give say says state states stated record phase status sponsor sponsors
    enrollment start end ends completion age ages sex gender type outcome outcomes endpoint
    conditions interventions collaborators requirement requirements people plan plans planned
    need needs principal investigator investigators currently""".split()
)


@dataclass(frozen=True, slots=True)
class Citation:
    marker: int
    trial_id: str
    chunk_id: str
    criterion_id: str | None
    section: str
    text: str
    span: tuple[int, int] | None
    title: str


@dataclass(frozen=True, slots=True)
class Verdict:
    trial_id: str
    verdict: str
    criterion_id: str | None
    marker: int | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class Answer:
    question: str
    text: str
    citations: tuple[Citation, ...] = ()
    verdicts: tuple[Verdict, ...] = ()
    abstained: bool = False
    hits: tuple[Hit, ...] = ()
    removed_markers: tuple[int, ...] = ()
    trial_id: str | None = None  # the trial the answer is about, for follow-ups

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.text,
            "citations": [
                {
                    "marker": c.marker,
                    "trial_id": c.trial_id,
                    "chunk_id": c.chunk_id,
                    "criterion_id": c.criterion_id,
                    "section": c.section,
                    "text": c.text,
                    "span": list(c.span) if c.span else None,
                }
                for c in self.citations
            ],
            "verdicts": [
                {"trial_id": v.trial_id, "verdict": v.verdict, "criterion_id": v.criterion_id}
                for v in self.verdicts
            ],
            "abstained": self.abstained,
        }


@dataclass
class Conversation:
    """What follow-up questions resolve against: the trial under discussion."""

    trial_id: str | None = None
    history: list[Answer] = field(default_factory=list)


def prompt(name: str) -> str:
    """A prompt template shipped with the package (prompts/<name>.md)."""
    return resources.files("rag.prompts").joinpath(f"{name}.md").read_text(encoding="utf-8")


class Assistant:
    """Retriever + backend: ask() returns an Answer whose citations are all checked."""

    def __init__(self, index: Index, embedder: Embedder, backend: Backend, k: int = 8) -> None:
        self.index = index
        self.retriever = Retriever(index, embedder)
        self.backend = backend
        self.k = k

    def ask(
        self,
        question: str,
        *,
        filters: Filters | None = None,
        k: int | None = None,
        conversation: Conversation | None = None,
    ) -> Answer:
        """The whole answer at once (see stream() for pieces as they come)."""
        pieces = self.stream(question, filters=filters, k=k, conversation=conversation)
        while True:
            try:
                next(pieces)
            except StopIteration as done:
                answer: Answer = done.value
                return answer

    def stream(
        self,
        question: str,
        *,
        filters: Filters | None = None,
        k: int | None = None,
        conversation: Conversation | None = None,
    ) -> Generator[str, None, Answer]:
        """Yield the raw answer text as the backend writes it; return the checked Answer."""
        if _EXISTS.search(question) and not _TRIAL_ID.search(question):
            answer = yield from self._exists(question, filters)
        elif _CORPUS_WIDE.search(question) and not _TRIAL_ID.search(question):
            answer = yield from self._verdicts(question, filters)
        else:
            answer = yield from self._single(question, filters, k or self.k, conversation)
        if conversation is not None:
            conversation.history.append(answer)
            if answer.trial_id:
                conversation.trial_id = answer.trial_id
        return answer

    # --- one trial, or the best passages of the corpus -------------------------------------

    def _single(
        self,
        question: str,
        filters: Filters | None,
        k: int,
        conversation: Conversation | None,
    ) -> Generator[str, None, Answer]:
        trial = self.resolve_trial(question)
        if trial is None and conversation is not None and conversation.trial_id:
            trial = self.index.trials.get(conversation.trial_id)
        scope = filters or Filters()
        if trial is not None:
            scope = Filters(**{**_fields(scope), "trial_ids": frozenset({trial.id})})
        hits = self.retriever.search(question, k=k, filters=scope, per_trial=k)
        if trial is not None:
            hits = _with_card(self.index, trial, hits)
        if not hits:
            text = NO_TRIAL_MATCHES
            yield text
            return Answer(question, text, abstained=True)
        asked = content_terms(question, trial)
        if trial is not None:
            hits = _with_naming_criteria(self.index, trial, hits, asked)
            if _asks_unstated_field(self.index, trial, question):
                text = NOT_STATED.format(trial=_name(trial))
                yield text
                return Answer(question, text, abstained=True, hits=tuple(hits), trial_id=trial.id)
        supported = [h for h in hits if _supports(asked, h.chunk)]
        if not supported:
            text = NOT_STATED.format(trial=_name(trial)) if trial else CANNOT_ANSWER
            yield text
            return Answer(question, text, abstained=True, hits=tuple(hits), trial_id=_id(trial))
        passages = tuple(Passage(n, h.chunk) for n, h in enumerate(supported, start=1))
        task = Task(
            kind="answer",
            question=question,
            passages=passages,
            messages=_messages("answer", question, passages),
            options={"asked": sorted(asked)},
        )
        raw = yield from _relay(self.backend.generate(task))
        text, citations, removed = check_citations(raw, passages)
        abstained = not citations
        if abstained and trial is not None:
            text = NOT_STATED.format(trial=_name(trial))
        elif abstained:
            text = CANNOT_ANSWER
        return Answer(
            question,
            text,
            citations=citations,
            abstained=abstained,
            hits=tuple(hits),
            removed_markers=removed,
            trial_id=_id(trial)
            or (
                supported[0].chunk.trial_id
                if len({h.chunk.trial_id for h in supported}) == 1
                else None
            ),
        )

    def resolve_trial(self, question: str) -> Trial | None:
        """The trial a question names: by id, else by words only its fields share."""
        found = _TRIAL_ID.search(question)
        if found:
            return self.index.find_trial(found.group(1))
        words = {w for w in tokenize(question) if len(w) > 2} - _FRAME
        if not words:
            return None
        scores: dict[str, float] = {}
        names, document_frequency = self._names
        for trial_id, tokens in names.items():
            for word in words & tokens:
                # A word that names one trial decides; one shared by many says little.
                if document_frequency[word] <= max(2, len(names) // 4):
                    scores[trial_id] = scores.get(trial_id, 0.0) + 1.0 / document_frequency[word]
        ranked = sorted(scores.items(), key=lambda kv: -kv[1])
        if not ranked or (len(ranked) > 1 and ranked[1][1] == ranked[0][1]):
            return None
        return self.index.trials[ranked[0][0]]

    @cached_property
    def _names(self) -> tuple[dict[str, frozenset[str]], Counter[str]]:
        """Each trial's naming tokens, and in how many trials each token is: the index does
        not change, so this is counted once, not for every question."""
        names = {tid: frozenset(_naming_tokens(t)) for tid, t in self.index.trials.items()}
        document_frequency: Counter[str] = Counter()
        for tokens in names.values():
            document_frequency.update(tokens)
        return names, document_frequency

    # --- "is there a trial of ..." ---------------------------------------------------------

    def _exists(self, question: str, filters: Filters | None) -> Generator[str, None, Answer]:
        """Trials whose title, sponsor, conditions, interventions or summary name the topic."""
        wanted = {w for w in tokenize(_EXISTS.sub("", question)) if len(w) > 2} - _FRAME
        matches = []
        for trial in self.index.trials.values():
            if filters is not None and not filters.check(trial)[0]:
                continue
            if wanted and wanted <= self._names[0][trial.id] | _naming_parts(trial):
                matches.append(trial)
        if not matches:
            yield NO_TRIAL_MATCHES
            return Answer(question, NO_TRIAL_MATCHES, abstained=True)
        passages = tuple(Passage(n, self.index.card(t.id)) for n, t in enumerate(matches, start=1))
        raw = "\n".join(f"- {p.chunk.trial_id}: {p.chunk.title} [{p.marker}]" for p in passages)
        raw = f"{len(matches)} trial{'s' if len(matches) != 1 else ''} match:\n{raw}"
        yield raw
        text, citations, removed = check_citations(raw, passages)
        return Answer(question, text, citations=citations, removed_markers=removed)

    # --- "which trials ..." -----------------------------------------------------------------

    def _verdicts(self, question: str, filters: Filters | None) -> Generator[str, None, Answer]:
        groups = self.retriever.search_trials(question, filters=filters, per_trial=4)
        if not groups:
            text = NO_TRIAL_MATCHES
            yield text
            return Answer(question, text, abstained=True)
        passages: list[Passage] = []
        trials: list[dict[str, Any]] = []
        terms = topic_terms(topic_of(question))
        for group in groups:
            markers = []
            for chunk in _verdict_chunks(self.index, group, terms):
                passages.append(Passage(len(passages) + 1, chunk))
                markers.append(len(passages))
            trials.append(
                {"id": group.trial.id, "title": short_title(group.trial), "markers": markers}
            )
        task = Task(
            kind="verdicts",
            question=question,
            passages=tuple(passages),
            messages=_messages("verdicts", question, tuple(passages)),
            topic=topic_of(question),
            options={"trials": trials, "terms": sorted(terms)},
        )
        raw = yield from _relay(self.backend.generate(task))
        verdicts = parse_verdicts(raw, trials, tuple(passages), terms)
        text, citations, removed = check_citations(raw, tuple(passages))
        lines = [ln for ln in text.splitlines() if not re.match(r"\d+ trials? checked:", ln)]
        text = "\n".join(lines + [summary_line(verdicts)])
        nothing = all(v.verdict == "not stated" for v in verdicts)
        if nothing:
            text, citations = NO_TRIAL_MATCHES, ()
        return Answer(
            question,
            text,
            citations=citations,
            verdicts=verdicts,
            abstained=nothing,
            hits=tuple(h for g in groups for h in g.hits),
            removed_markers=removed,
        )


def _relay(pieces: Iterator[str]) -> Generator[str, None, str]:
    """Pass the backend's pieces on and return them joined."""
    parts: list[str] = []
    for piece in pieces:
        parts.append(piece)
        yield piece
    return "".join(parts)


def _with_card(index: Index, trial: Trial, hits: list[Hit]) -> list[Hit]:
    """The trial's hits with its card among them: field questions are answered there."""
    if any(h.chunk.kind == "card" for h in hits):
        return hits
    return hits + [Hit(chunk=index.card(trial.id), score=0.0)]


def _with_naming_criteria(
    index: Index, trial: Trial, hits: list[Hit], asked: set[str]
) -> list[Hit]:
    """Add the trial's criteria that name what is asked, most asked words first: within one
    trial every criterion can be read, not just the retriever's top k."""
    seen = {h.chunk.id for h in hits}
    extra = []
    for i in index.trial_chunks[trial.id]:
        chunk = index.chunks[i]
        overlap = len(asked & token_set(chunk.text))
        if chunk.kind == "criterion" and overlap and chunk.id not in seen:
            extra.append((overlap, chunk))
    extra.sort(key=lambda pair: -pair[0])
    return hits + [Hit(chunk=c, score=0.0) for _, c in extra[:MAX_TOPIC_CRITERIA]]


def _asks_unstated_field(index: Index, trial: Trial, question: str) -> bool:
    """A question for card fields the record leaves empty (ages aside: criteria state them)."""
    labels = card_fields_asked(question)
    if not labels or labels == ["Ages"]:
        return False
    text = index.card(trial.id).text
    return not any(re.search(rf"^{re.escape(label)}: ", text, re.MULTILINE) for label in labels)


def _only_trial(hits: list[Hit]) -> str | None:
    trials = {h.chunk.trial_id for h in hits}
    return trials.pop() if len(trials) == 1 else None


def _fields(filters: Filters) -> dict[str, Any]:
    return {name: getattr(filters, name) for name in Filters.__slots__}


def _id(trial: Trial | None) -> str | None:
    return trial.id if trial else None


def _name(trial: Trial) -> str:
    return f"{trial.id} ({short_title(trial)})"


def _naming_tokens(trial: Trial) -> set[str]:
    texts = [trial.title, trial.official_title, trial.sponsor, trial.brief_summary]
    texts += list(trial.interventions or ()) + list(trial.conditions or ())
    return {t for text in texts if text for t in tokenize(text)} - _FRAME


def _naming_parts(trial: Trial) -> frozenset[str]:
    """Naming tokens of the description too: what the trial studies, in its own words."""
    return token_set(trial.description or "")


def content_terms(question: str, trial: Trial | None) -> set[str]:
    """The words of a question that say what is asked, with their curated expansions."""
    words = set(tokenize(question)) - _FRAME
    if trial is not None:
        words -= _naming_tokens(trial)
        words -= {trial.id.lower(), (trial.nct_id or "").lower()}
    expanded = set(words)
    for term in expansion_terms(question):
        expanded.update(tokenize(term))
    for label in card_fields_asked(question):
        expanded.update(tokenize(label))
    return expanded


def _supports(asked: set[str], chunk: Chunk) -> bool:
    """Does the chunk's own text share a word with what is asked?"""
    if not asked:
        return False
    return bool(asked & token_set(chunk.text))


def topic_of(question: str) -> str:
    """The thing a "which trials ..." question asks about: 'prior PD-1 inhibitors'."""
    text = re.sub(r"[?.!]+\s*$", "", question.strip())
    text = re.sub(
        r"^\s*(?:which|what|list|any|do any|are there any|how many)\s+(?:of the\s+)?"
        r"(?:trials?|studies|study)\s+(?:would\s+|will\s+|do\s+|does\s+)?"
        r"(?:allow|accept|permit|exclude|require|include|take|enrol+|let in|are open to)?s?\s*",
        "",
        text,
        flags=re.IGNORECASE,
    )
    return text.strip()


def _verdict_chunks(index: Index, group: TrialHits, terms: set[str]) -> list[Chunk]:
    """The passages a verdict on one trial may cite: its card, its best criteria, and every
    criterion that names the topic (so no deciding criterion is missed)."""
    own = [index.chunks[i] for i in index.trial_chunks[group.trial.id]]
    card = [index.card(group.trial.id)]
    best = [h.chunk for h in group.hits if h.chunk.kind == "criterion"]
    naming = [
        c for c in own if c.kind == "criterion" and c not in best and terms & token_set(c.text)
    ]
    return card + best + naming[:MAX_TOPIC_CRITERIA]


_MARKER = re.compile(r"\[(\d+)\]")


def check_citations(
    raw: str, passages: tuple[Passage, ...]
) -> tuple[str, tuple[Citation, ...], tuple[int, ...]]:
    """Strip markers that map to no passage; the citations the rest make, in marker order."""
    by_marker = {p.marker: p.chunk for p in passages}
    used: dict[int, Chunk] = {}
    removed: list[int] = []

    def keep(match: re.Match[str]) -> str:
        marker = int(match.group(1))
        if marker in by_marker:
            used[marker] = by_marker[marker]
            return match.group(0)
        removed.append(marker)
        return ""

    text = _MARKER.sub(keep, raw)
    text = re.sub(r"[ \t]+([.,;:])", r"\1", text)
    text = re.sub(r"[ \t]{2,}", " ", text).strip()
    citations = tuple(
        Citation(
            marker=m,
            trial_id=c.trial_id,
            chunk_id=c.id,
            criterion_id=c.criterion_id,
            section=c.section,
            text=c.text,
            span=c.span,
            title=c.title,
        )
        for m, c in sorted(used.items())
    )
    return text, citations, tuple(removed)


_VERDICT_LINE = re.compile(
    r"^\s*[-*]?\s*(?P<trial>NCT\d{8}|T-[0-9a-f]{10})\b[^:\n]*:\s*"
    r"(?P<verdict>allows|excludes|requires|not stated)\b(?P<rest>.*)$",
    re.IGNORECASE | re.MULTILINE,
)


def parse_verdicts(
    raw: str,
    trials: list[dict[str, Any]],
    passages: tuple[Passage, ...],
    terms: set[str] | None = None,
) -> tuple[Verdict, ...]:
    """One verdict per trial checked, from the backend's lines "<id>: <verdict> [n]".

    A verdict must cite a passage of its own trial that speaks to the topic (names one of
    `terms`, or is the trial's card), or it is "not stated"; a trial the backend skipped is
    "not stated" too.
    """
    by_marker = {p.marker: p.chunk for p in passages}
    found: dict[str, Verdict] = {}
    for line in _VERDICT_LINE.finditer(raw):
        trial_id = line.group("trial")
        verdict = line.group("verdict").lower()
        markers = [int(m) for m in _MARKER.findall(line.group("rest"))]
        own = [
            m
            for m in markers
            if m in by_marker
            and by_marker[m].trial_id == trial_id
            and (not terms or by_marker[m].kind == "card" or _supports(terms, by_marker[m]))
        ]
        if verdict != "not stated" and not own:
            verdict, marker, criterion = "not stated", None, None
        else:
            marker = own[0] if own else None
            criterion = by_marker[marker].criterion_id if marker else None
        found.setdefault(trial_id, Verdict(trial_id, verdict, criterion, marker))
    return tuple(found.get(t["id"], Verdict(t["id"], "not stated", None)) for t in trials)


def summary_line(verdicts: tuple[Verdict, ...] | list[Verdict]) -> str:
    """'5 trials checked: 1 requires, 1 excludes, 3 do not state it'."""
    counts = Counter(v.verdict for v in verdicts)
    parts = []
    for verdict in ("allows", "requires", "excludes", "not stated"):
        n = counts.get(verdict, 0)
        if not n:
            continue
        if verdict == "not stated":
            parts.append(f"{n} {'does' if n == 1 else 'do'} not state it")
        else:
            parts.append(f"{n} {verdict if n == 1 else verdict[:-1]}")
    total = len(verdicts)
    return f"{total} trial{'s' if total != 1 else ''} checked: " + ", ".join(parts)


def _messages(
    kind: str, question: str, passages: tuple[Passage, ...]
) -> tuple[dict[str, str], ...]:
    context = "\n\n".join(
        f"[{p.marker}] {p.chunk.title} ({p.chunk.trial_id}) | {p.chunk.section}"
        + (f" {p.chunk.criterion_id}" if p.chunk.criterion_id else "")
        + f"\n{p.chunk.text}"
        for p in passages
    )
    system = prompt("system").format(cannot_answer=CANNOT_ANSWER)
    user = prompt(kind).format(question=question, passages=context)
    return ({"role": "system", "content": system}, {"role": "user", "content": user})
