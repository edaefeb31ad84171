"""Question -> Answer with checked citations: understand, plan, retrieve, generate, check.

The question stage (rag.understand) says what was asked; the answer follows its kind:

- field: the trial's fields (stated, or read from its own words with where), citing the card
  or the passage they were read from;
- criterion: the criterion that speaks to the topic, with the threshold it sets;
- yes_no: "Yes", "No" or "The record does not say", then the field or criterion that decides;
- list, count, exists over fields: every trial whose structured fields fit, each citing its
  card; the count first;
- scan, count, exists over eligibility: a verdict for every trial that passes the filters
  (allows, allows with conditions, requires, excludes, not stated) with the deciding passage;
- compare: each named trial's value side by side;
- a name that fits several trials lists them and asks which; a name that fits none, or a
  question outside the records, gets a fixed sentence, never an answer about another trial.

What the records say is found here and in rag.verdicts; the backend writes the words (the
extractive default phrases the facts; a model backend writes from the passages) and every
marker it writes is checked against the passages it was given.
"""

from __future__ import annotations

import json
import re
from collections.abc import Generator, Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from functools import cached_property
from importlib import resources
from typing import Any

from rag import render
from rag.citations import (
    CANNOT_ANSWER,
    NAME_THE_TRIAL,
    NO_TRIAL_MATCHES,
    NO_TRIAL_NAMED,
    NOT_STATED,
    check_citations,
    checked_verdict,
    inert,
    mark_unsupported,
    parse_verdicts,
    summary_line,
)
from rag.embed import Embedder
from rag.facts import Typed
from rag.filters import DESIGNS, FILTER_KEYS, FilterError, Filters, from_mapping
from rag.lexical import EXPANSIONS, expansion_terms, stem, stem_set, token_set, tokenize
from rag.llm.base import Backend, BackendError, Fact, Passage, Task, TaskKind
from rag.naming import FRAME
from rag.retrieve import Retriever, TrialHits
from rag.store import Index
from rag.types import Answer, Chunk, Derived, Hit, Trial, Verdict, VerdictWord
from rag.understand import (
    KINDS,
    Patient,
    Question,
    Stance,
    Vocabulary,
    plan_schema,
    understand,
)
from rag.verdicts import (
    Decision,
    check_verdict,
    decide,
    passages_read,
    scope,
    threshold,
    topic_terms,
    yes_no,
)

MAX_TOPIC_CRITERIA = 6  # criteria naming the topic added per trial, beyond the best four
MAX_LISTED_TRIALS = 100  # trials a listing shows; the count says how many fit in all
MAX_LEFT_OUT = 10  # trials named as left out by status, sex or age; then "and N more"


@dataclass
class Conversation:
    """What follow-up questions resolve against: the trial under discussion, the last
    question."""

    trial_id: str | None = None
    question: Question | None = None


def prompt(name: str) -> str:
    """A prompt template shipped with the package (prompts/<name>.md)."""
    return resources.files("rag.prompts").joinpath(f"{name}.md").read_text(encoding="utf-8")


class _Numbering:
    """Passages numbered for citing, each chunk once."""

    def __init__(self) -> None:
        self.passages: list[Passage] = []
        self._markers: dict[str, int] = {}

    def add(self, chunk: Chunk) -> int:
        if chunk.id not in self._markers:
            self._markers[chunk.id] = len(self.passages) + 1
            self.passages.append(Passage(len(self.passages) + 1, chunk))
        return self._markers[chunk.id]

    def all(self) -> tuple[Passage, ...]:
        return tuple(self.passages)


class Assistant:
    """Understanding + retrieval + a backend: ask() returns an Answer whose citations are all
    checked."""

    def __init__(self, index: Index, embedder: Embedder, backend: Backend, k: int = 8) -> None:
        self.index = index
        self.retriever = Retriever(index, embedder)
        self.backend = backend
        self.k = k

    @cached_property
    def vocabulary(self) -> Vocabulary:
        """The index's names and values, counted once (the index does not change)."""
        trials = self.index.trials
        return Vocabulary(trials, trials.aliases, self.index.naming)

    def understand(self, question: str, conversation: Conversation | None = None) -> Question:
        """The typed question: the rules, or a model's plan when the backend plans and its
        plan is valid."""
        trial = conversation.trial_id if conversation else None
        previous = conversation.question if conversation else None
        rules = understand(question, self.vocabulary, trial=trial, previous=previous)
        if getattr(self.backend, "plans", False):
            return self._plan(question, rules, trial) or rules
        return rules

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
        understood = self.understand(question, conversation)
        if filters is not None and filters.active:
            understood = replace(understood, filters=understood.filters.merged(filters))
        answer = yield from self._answer(understood, k or self.k)
        answer = replace(answer, question=question, understood=understood)
        if conversation is not None:
            conversation.question = understood
            if answer.trial_id:
                conversation.trial_id = answer.trial_id
        return answer

    # --- by kind --------------------------------------------------------------------------

    def _answer(self, q: Question, k: int) -> Generator[str, None, Answer]:
        if q.kind == "out_of_scope":
            return (yield from _fixed(q, CANNOT_ANSWER))
        if q.unknown and not q.trials:
            return (yield from _fixed(q, NO_TRIAL_NAMED.format(name=q.unknown)))
        if q.candidates and not q.trials:
            return (yield from self._ambiguous(q))
        if q.kind in ("list", "count", "exists") and not q.eligibility:
            return (yield from self._listing(q))
        if q.kind in ("scan", "count", "exists"):
            return (yield from self._scan(q))
        if q.kind == "compare":
            return (yield from self._compare(q, k))
        trial = self.index.trials.get(q.trials[0]) if q.trials else None
        if trial is None and q.kind in ("field", "yes_no"):
            return (yield from _fixed(q, NAME_THE_TRIAL))
        if trial is not None and q.kind == "field":
            return (yield from self._fields(q, trial))
        if trial is not None and q.kind == "yes_no" and q.fields and not q.eligibility:
            return (yield from self._yes_no_fields(q, trial))
        if trial is not None and q.kind == "yes_no":
            return (yield from self._yes_no(q, trial, k))
        return (yield from self._lookup(q, trial, k))

    def _fields(self, q: Question, trial: Trial) -> Generator[str, None, Answer]:
        """A trial's fields, each citing the card or the words it was read from."""
        numbering = _Numbering()
        facts, missing = self._field_facts(q.fields, trial, numbering)
        if not facts:
            return (yield from _fixed(q, NOT_STATED.format(trial=render.trial_name(trial)), trial))
        answer = yield from self._generate(q, "answer", numbering, facts)
        if missing:
            labels = ", ".join(render.FIELD_LABELS[f].lower() for f in missing)
            answer = replace(answer, text=f"{answer.text} It does not state its {labels}.")
        return replace(answer, trial_id=trial.id)

    def _field_facts(
        self, names: tuple[str, ...], trial: Trial, numbering: _Numbering
    ) -> tuple[list[Fact], list[str]]:
        facts, missing = [], []
        for name in names:
            text, sources = render.field_text(trial, name)
            if text is None and name in _SAME_THING:
                # People say "official title" for the title, and the other way round.
                name = _SAME_THING[name]
                text, sources = render.field_text(trial, name)
            if text is None:
                missing.append(name)
                continue
            found = sources[0] if sources else None
            chunk = self._source(trial, found)
            facts.append(
                Fact(
                    kind="field",
                    trial_id=trial.id,
                    name=render.trial_name(trial),
                    label=render.FIELD_LABELS[name],
                    value=text,
                    marker=numbering.add(chunk),
                    quote=found.quote if found else "",
                    where=render.where(found) if found else "",
                )
            )
        return facts, missing

    def _source(self, trial: Trial, found: Derived | None) -> Chunk:
        """The chunk a value was read from: the card, a criterion, or a prose piece."""
        if found is None or found.source in ("title", "official_title"):
            return self.index.card(trial.id)
        for chunk in self._chunks(trial.id):
            if found.criterion_id and chunk.criterion_id == found.criterion_id:
                return chunk
            if chunk.field == found.source and chunk.span is not None:
                if chunk.span[0] <= found.span[0] and found.span[1] <= chunk.span[1]:
                    return chunk
        return self.index.card(trial.id)

    def _chunks(self, trial_id: str) -> list[Chunk]:
        return [self.index.chunks[i] for i in self.index.trial_chunks[trial_id]]

    def _yes_no_fields(self, q: Question, trial: Trial) -> Generator[str, None, Answer]:
        """'Is it recruiting?', 'Is it open-label?': the field, and whether it says yes."""
        numbering = _Numbering()
        facts, missing = self._field_facts(q.fields, trial, numbering)
        truths = [_field_truth(q, trial, name) for name in q.fields if name not in missing]
        if not facts:
            return (yield from _fixed(q, NOT_STATED.format(trial=render.trial_name(trial)), trial))
        known = [t for t in truths if t is not None]
        if False in known:
            lead = "No."
        elif known:
            lead = "Yes."  # every field the question names a value for says yes
        else:
            lead = ""
        answer = yield from self._generate(q, "answer", numbering, facts, lead)
        return replace(answer, trial_id=trial.id)

    def _yes_no(self, q: Question, trial: Trial, k: int) -> Generator[str, None, Answer]:
        """'Can someone with X join?': the verdict on the trial, then the deciding words."""
        hits = self._trial_hits(q, trial, k)
        chunks = _ordered(hits, self._chunks(trial.id))
        decision = decide(q, trial, chunks, self.index.card(trial.id), self.index.typed(trial.id))
        numbering = _Numbering()
        facts = self._verdict_facts(trial, decision, numbering)
        lead = yes_no(decision.verdict, q.stance) + "."
        if decision.verdict == "not stated":
            text = f"The record does not say: nothing in the criteria of {render.trial_name(trial)}"
            text += " speaks to this."
            return (yield from _fixed(q, text, trial, hits))
        answer = yield from self._generate(q, "answer", numbering, facts, lead, hits)
        verdict = _verdict(trial.id, decision, numbering)
        return replace(answer, trial_id=trial.id, verdicts=(verdict,))

    def _verdict_facts(self, trial: Trial, decision: Decision, numbering: _Numbering) -> list[Fact]:
        name = render.trial_name(trial)
        facts = []
        for chunk in decision.chunks:
            facts.append(
                Fact(
                    kind="verdict",
                    trial_id=trial.id,
                    name=name,
                    label=_where(chunk),
                    value=decision.verdict,
                    marker=numbering.add(chunk),
                    quote=chunk.text,
                    note=decision.note,
                )
            )
        return facts

    def _lookup(self, q: Question, trial: Trial | None, k: int) -> Generator[str, None, Answer]:
        """The criterion (or passage) that speaks to the topic, with its threshold."""
        hits = self._trial_hits(q, trial, k) if trial else self._corpus_hits(q, k)
        if not hits:
            return (yield from _fixed(q, NO_TRIAL_MATCHES))
        asked = _asked_terms(q, trial, self.vocabulary)
        # Prose names its own trial's drug and disease throughout: there, only the other
        # asked words count ("the dose of apatinib" is not in every sentence naming apatinib).
        naming = self.vocabulary.names(trial.id) if trial else frozenset()
        supported = [
            h
            for h in hits
            if (asked if h.chunk.kind == "criterion" else asked - naming) & token_set(h.chunk.text)
        ]
        ranked = _ranked(q, supported, asked)
        if not ranked:
            text = NOT_STATED.format(trial=render.trial_name(trial)) if trial else CANNOT_ANSWER
            return (yield from _fixed(q, text, trial, hits))
        best = ranked[0].chunk
        numbering = _Numbering()
        fact = _criterion_fact(self.index.trials[best.trial_id], best, asked, numbering)
        for hit in supported:
            numbering.add(hit.chunk)
        lead = "Yes." if re.match(r"^\s*(?:is|are)\s+there\b", q.text, re.IGNORECASE) else ""
        answer = yield from self._generate(q, "answer", numbering, [fact], lead, hits)
        return replace(answer, trial_id=trial.id if trial else None)

    def _trial_hits(self, q: Question, trial: Trial, k: int) -> list[Hit]:
        """Retrieved within the trial, its card added, and every criterion naming the topic."""
        scope = q.filters.merged(Filters(trial_ids=frozenset({trial.id})))
        scope = replace(scope, about=None, condition=None, intervention=None, sponsor=None)
        hits = self.retriever.search(q.text, k=k, filters=scope, per_trial=k)
        if not any(h.chunk.kind == "card" for h in hits):
            hits.append(Hit(chunk=self.index.card(trial.id), score=0.0))
        asked = _asked_terms(q, trial, self.vocabulary)
        seen = {h.chunk.id for h in hits}
        extra = [
            (len(asked & token_set(c.text)), c)
            for c in self._chunks(trial.id)
            if c.kind == "criterion" and c.id not in seen and asked & token_set(c.text)
        ]
        extra.sort(key=lambda pair: -pair[0])
        return hits + [Hit(chunk=c, score=0.0) for _, c in extra[:MAX_TOPIC_CRITERIA]]

    def _corpus_hits(self, q: Question, k: int) -> list[Hit]:
        return self.retriever.search(q.text, k=k, filters=q.filters)

    def _compare(self, q: Question, k: int) -> Generator[str, None, Answer]:
        """Each named trial's value side by side."""
        numbering = _Numbering()
        facts: list[Fact] = []
        verdicts = []
        for trial_id in q.trials:
            trial = self.index.trials[trial_id]
            if q.fields:
                found, missing = self._field_facts(q.fields, trial, numbering)
                facts += found
                if missing:
                    labels = ", ".join(render.FIELD_LABELS[f].lower() for f in missing)
                    facts.append(_unstated(trial, labels))
            elif not q.patient.empty:
                chunks = _ordered(self._trial_hits(q, trial, k), self._chunks(trial.id))
                decision = decide(
                    q, trial, chunks, self.index.card(trial.id), self.index.typed(trial.id)
                )
                facts += self._verdict_facts(trial, decision, numbering) or [
                    _unstated(trial, "what was asked")
                ]
                verdicts.append(_verdict(trial.id, decision, numbering))
            else:
                facts.append(self._best_criterion(q, trial, k, numbering))
        answer = yield from self._generate(q, "answer", numbering, facts)
        return replace(answer, verdicts=tuple(verdicts))

    def _best_criterion(self, q: Question, trial: Trial, k: int, numbering: _Numbering) -> Fact:
        hits = self._trial_hits(q, trial, k)
        asked = _asked_terms(q, trial, self.vocabulary)
        ranked = _ranked(q, [h for h in hits if asked & token_set(h.chunk.text)], asked)
        if not ranked:
            return _unstated(trial, "what was asked")
        return _criterion_fact(trial, ranked[0].chunk, asked, numbering)

    def _ambiguous(self, q: Question) -> Generator[str, None, Answer]:
        """Several trials fit the name: list them (with the asked fields) and ask which."""
        numbering = _Numbering()
        shown = q.fields[0] if q.fields else None
        facts = [self._trial_fact(self.index.trials[t], shown, numbering) for t in q.candidates]
        lead = f"{len(facts)} trials fit the name you gave; which one do you mean?"
        answer = yield from self._generate(q, "answer", numbering, facts, lead)
        return replace(answer, abstained=True)  # no answer yet: the trial is to be named

    def _listing(self, q: Question) -> Generator[str, None, Answer]:
        """Every trial whose fields fit the filters, each citing its card."""
        fitting = [t for _, t in sorted(self.index.trials.items()) if q.filters.check(t)[0]]
        if not fitting:
            return (yield from _fixed(q, NO_TRIAL_MATCHES))
        numbering = _Numbering()
        shown = _shown_field(q.filters)
        facts = [self._trial_fact(t, shown, numbering) for t in fitting[:MAX_LISTED_TRIALS]]
        n = len(fitting)
        trials = f"{n} trial{'s' if n != 1 else ''}"
        lead = {
            "count": f"{trials} match.",
            "exists": f"Yes: {trials} match:",
        }.get(q.kind, f"{trials} match:")
        if n > MAX_LISTED_TRIALS:
            lead += f" (the first {MAX_LISTED_TRIALS} are listed)"
        return (yield from self._generate(q, "answer", numbering, facts, lead))

    def _trial_fact(self, trial: Trial, field: str | None, numbering: _Numbering) -> Fact:
        """A trial in a list, with the field that puts it there, citing where that is read."""
        label, value, found = _listed_field(trial, field)
        return Fact(
            kind="trial",
            trial_id=trial.id,
            name=render.trial_name(trial),
            label=label,
            value=value,
            marker=numbering.add(self._source(trial, found)),
            where=render.where(found) if found else "",
        )

    def _scan(self, q: Question) -> Generator[str, None, Answer]:
        """Every trial that passes the filters, with its verdict and deciding passage.

        Only the trials whose records could decide the question are read (verdicts.scope);
        every other trial does not state it. Each decided trial's verdict is in the answer's
        verdicts; the text writes them all when few trials pass the filters, else the first
        MAX_LISTED_TRIALS stated ones, those the question asks for first, best match first."""
        index = self.index
        reads = scope(q, index)
        ranking = self.retriever.rank_trials(
            q.topic or q.text, filters=q.filters, per_trial=4, among=reads.trials
        )
        passing = ranking.passing
        if not passing:
            return (yield from _fixed(q, NO_TRIAL_MATCHES))
        passed = set(passing)
        among = reads.trials & passed
        typed = [index.typed_naming(t, reads.keys) for t in ranking.trial_ids]
        decisions = [
            self._decide(q, index.trials[t], ranking.best_rows(i), typed[i], reads.holding)
            for i, t in enumerate(ranking.trial_ids)
        ]
        unread = [t for t in passing if t not in among]
        everything = len(passing) <= MAX_LISTED_TRIALS
        picked: list[int] = list(range(len(ranking)))
        if not everything:
            wanted = _STANCE_VERDICTS[q.stance]
            stated = [i for i in picked if decisions[i].verdict != "not stated"]
            picked = sorted(stated, key=lambda i: decisions[i].verdict not in wanted)
        groups = [ranking.trial_hits(i) for i in picked[:MAX_LISTED_TRIALS]]
        written = [(group, decisions[i]) for group, i in zip(groups, picked, strict=False)]
        terms = _scan_terms(q)
        naming = set(index.rows_with(terms).tolist())
        numbering = _Numbering()
        facts: list[Fact] = []
        trials: list[dict[str, Any]] = []
        for group, decision in written:
            facts.append(self._verdict_fact(group, decision, terms, naming, numbering))
            trials.append({"id": group.trial.id, "name": facts[-1].name})
        if everything:
            for trial_id in unread:
                facts.append(_unread_fact(index.trials[trial_id]))
                trials.append({"id": trial_id, "name": facts[-1].name})
        passages = numbering.all()
        task = Task(
            kind="verdicts",
            question=q.text,
            passages=passages,
            messages=_messages(self.backend, "verdicts", q, passages),
            understood=q,
            facts=tuple(facts),
        )
        raw = yield from _relay(self.backend.generate(task))
        check = check_verdict(q, terms, {t.criterion_id: t for ts in typed for t in ts})
        said = parse_verdicts(raw, trials, passages, check)
        shown = {v.trial_id for v in said}
        verdicts = (
            *said,
            *(
                checked_verdict(
                    trial_id,
                    decision.verdict,
                    [(None, c) for c in decision.chunks],
                    decision.note,
                    check,
                )
                for trial_id, decision in zip(ranking.trial_ids, decisions, strict=True)
                if trial_id not in shown
            ),
            *(Verdict(t, "not stated", None) for t in unread if t not in shown),
        )
        text, citations, removed = check_citations(raw, passages)
        text, unsupported = self._unsupported(text)
        lines = [ln for ln in text.splitlines() if not re.match(r"\d+ trials? checked:", ln)]
        lead = _scan_lead(q, verdicts)
        more = _more_stated(verdicts, shown)
        left = _left_out(q, index.trials.values(), passed)
        text = "\n".join(
            ([lead] if lead else [])
            + lines
            + ([more] if more else [])
            + [summary_line(verdicts)]
            + ([left] if left else [])
        )
        nothing = all(v.verdict == "not stated" for v in verdicts)
        if nothing and q.kind != "count":
            text, citations = NO_TRIAL_MATCHES, ()
        return Answer(
            q.text,
            text,
            citations=citations,
            verdicts=verdicts,
            abstained=nothing and q.kind != "count",
            hits=tuple(h for g in groups for h in g.hits),
            removed_markers=removed,
            unsupported=() if nothing and q.kind != "count" else unsupported,
        )

    def _decide(
        self,
        q: Question,
        trial: Trial,
        best: list[int],
        typed: Sequence[Typed],
        holding: AbstractSet[str],
    ) -> Decision:
        """One trial's verdict, its best passages for the question (rows) read first, then
        the others in record order; `typed` are its typed criteria that speak to the
        question's concepts (Index.typed_naming)."""
        rows = best + [i for i in self.index.trial_chunks[trial.id] if i not in best]
        read, ids = passages_read(q, trial, typed), self.index.chunks.ids
        chunks = [self.index.chunks[i] for i in rows if ids[i] in holding or ids[i] in read]
        return decide(q, trial, chunks, self.index.card(trial.id), typed, holding)

    def _verdict_fact(
        self,
        group: TrialHits,
        decision: Decision,
        terms: set[str],
        naming: set[int],
        numbering: _Numbering,
    ) -> Fact:
        """A trial's verdict for the backend to write, its passages numbered: the card, what
        decides it, its best passages and the criteria naming the question's words."""
        trial = group.trial
        numbering.add(self.index.card(trial.id))
        best = [h.chunk for h in group.hits if h.chunk.kind == "criterion"]
        best_ids = {c.id for c in best}
        named = [
            chunk
            for i in self.index.trial_chunks[trial.id]
            if i in naming
            and (chunk := self.index.chunks[i]).kind == "criterion"
            and chunk.id not in best_ids
            and terms & token_set(chunk.text)
        ]
        for chunk in (*decision.chunks, *best, *named[:MAX_TOPIC_CRITERIA]):
            numbering.add(chunk)
        first = decision.chunks[0] if decision.chunks else None
        return Fact(
            kind="verdict",
            trial_id=trial.id,
            name=render.trial_name(trial),
            label=_where(first) if first else "",
            value=decision.verdict,
            marker=numbering.add(first) if first else None,
            quote=first.text if first else "",
            note=decision.note,
            also=tuple(dict.fromkeys(numbering.add(c) for c in decision.chunks[1:])),
        )

    # --- the backend ------------------------------------------------------------------------

    def _generate(
        self,
        q: Question,
        kind: TaskKind,
        numbering: _Numbering,
        facts: list[Fact],
        lead: str = "",
        hits: list[Hit] | None = None,
    ) -> Generator[str, None, Answer]:
        passages = numbering.all()
        task = Task(
            kind=kind,
            question=q.text,
            passages=passages,
            messages=_messages(self.backend, kind, q, passages, facts, lead),
            understood=q,
            facts=tuple(facts),
            lead=lead,
        )
        raw = yield from _relay(self.backend.generate(task))
        text, citations, removed = check_citations(raw, passages)
        text, unsupported = self._unsupported(text)
        abstained = not citations
        if abstained:
            trial = self.index.trials.get(q.trials[0]) if len(q.trials) == 1 else None
            text = NOT_STATED.format(trial=render.trial_name(trial)) if trial else CANNOT_ANSWER
            unsupported = ()
        cited = {c.trial_id for c in citations}
        return Answer(
            q.text,
            text,
            citations=citations,
            abstained=abstained,
            hits=tuple(hits or [Hit(p.chunk, 0.0) for p in passages]),
            removed_markers=removed,
            unsupported=unsupported,
            trial_id=cited.pop() if len(cited) == 1 else None,
        )

    def _unsupported(self, text: str) -> tuple[str, tuple[str, ...]]:
        """A model's sentences that cite no passage, marked; the extractive backend writes
        only sentences built from cited passages."""
        return (text, ()) if self.backend.name == "extractive" else mark_unsupported(text)

    def _plan(self, text: str, rules: Question, trial: str | None) -> Question | None:
        """Ask the backend for the typed question as JSON; None when it gives no valid plan."""
        names = [*rules.trials, *rules.candidates, *([trial] if trial else [])]
        listed = "\n".join(
            f"- {render.trial_name(self.index.trials[t])}" for t in dict.fromkeys(names)
        )
        user = prompt("plan").format(
            question=text,
            schema=json.dumps(plan_schema()),
            trials=listed or "(none recognised)",
            conversation=trial or "(none)",
            rules=json.dumps(rules.to_dict()),
            filter_keys=", ".join(FILTER_KEYS),
        )
        task = Task(
            kind="plan",
            question=text,
            passages=(),
            messages=({"role": "user", "content": user},),
            understood=rules,
        )
        try:
            raw = "".join(self.backend.generate(task))
        except BackendError:
            return None
        return validate_plan(raw, rules, self.index.trials)


def validate_plan(raw: str, rules: Question, trials: Any) -> Question | None:
    """A model's plan as a Question, when it is JSON of the plan schema naming only known
    trials, fields and filters; None otherwise (the rules stand)."""
    found = re.search(r"\{.*\}", raw, re.DOTALL)
    try:
        plan = json.loads(found.group() if found else raw)
    except json.JSONDecodeError:
        return None
    if not isinstance(plan, dict) or plan.get("kind") not in KINDS:
        return None
    allowed = set(plan_schema()["properties"])
    named = plan.get("trials", [])
    fields = plan.get("fields", [])
    field_names = set(plan_schema()["properties"]["fields"]["items"]["enum"])
    if (
        set(plan) - allowed
        or not isinstance(named, list)
        or not all(isinstance(t, str) and t in trials for t in named)
        or not isinstance(fields, list)
        or not all(f in field_names for f in fields)
        or not isinstance(plan.get("topic", ""), str)
    ):
        return None
    try:
        filters = from_mapping(plan.get("filters") or {}) if plan.get("filters") else rules.filters
        patient = _plan_patient(plan.get("patient") or {}, rules.patient)
    except (FilterError, TypeError, ValueError):
        return None
    return replace(
        rules,
        kind=plan["kind"],
        trials=tuple(named) or rules.trials,
        candidates=() if named else rules.candidates,
        fields=tuple(fields),
        topic=plan.get("topic", rules.topic),
        patient=patient,
        filters=filters,
    )


def _plan_patient(data: dict[str, Any], rules: Patient) -> Patient:
    if set(data) - {"age", "sex", "ecog", "conditions"}:
        raise ValueError("unknown patient key")
    sex = data.get("sex")
    if sex not in (None, "FEMALE", "MALE"):
        raise ValueError("sex")
    conditions = data.get("conditions", list(rules.conditions))
    if not isinstance(conditions, list) or not all(isinstance(c, str) for c in conditions):
        raise ValueError("conditions")
    age, ecog = data.get("age"), data.get("ecog")
    if age is not None and not isinstance(age, int | float):
        raise ValueError("age")
    if ecog is not None and (not isinstance(ecog, int) or not 0 <= ecog <= 5):
        raise ValueError("ecog")
    return Patient(
        age=float(age) if age is not None else None,
        sex=sex,
        ecog=ecog,
        labs=rules.labs,
        conditions=tuple(conditions),
    )


# --- helpers --------------------------------------------------------------------------------


def _fixed(
    q: Question, text: str, trial: Trial | None = None, hits: list[Hit] | None = None
) -> Generator[str, None, Answer]:
    """One of the fixed sentences: nothing is cited."""
    yield text
    return Answer(
        q.text, text, abstained=True, hits=tuple(hits or ()), trial_id=trial.id if trial else None
    )


def _relay(pieces: Iterator[str]) -> Generator[str, None, str]:
    """Pass the backend's pieces on and return them joined."""
    parts: list[str] = []
    for piece in pieces:
        parts.append(piece)
        yield piece
    return "".join(parts)


def _ordered(hits: list[Hit], chunks: list[Chunk]) -> list[Chunk]:
    """The retrieved chunks first, best first, then the trial's others in record order."""
    first = [h.chunk for h in hits]
    seen = {c.id for c in first}
    return first + [c for c in chunks if c.id not in seen]


_SAME_THING = {"official_title": "title", "title": "official_title"}


def _where(chunk: Chunk) -> str:
    """'inclusion criterion 8.2', 'the card', 'the summary'."""
    if chunk.criterion_id:
        return render.criterion_label(chunk.criterion_id)
    return {"card": "the trial's fields"}.get(chunk.kind, f"the {chunk.section}")


def _verdict(trial_id: str, decision: Decision, numbering: _Numbering) -> Verdict:
    first = decision.chunks[0] if decision.chunks else None
    return Verdict(
        trial_id,
        decision.verdict,
        first.criterion_id if first else None,
        numbering.add(first) if first else None,
        decision.note,
    )


def _criterion_fact(trial: Trial, chunk: Chunk, asked: set[str], numbering: _Numbering) -> Fact:
    """A criterion that answers, with the threshold it sets for the asked words."""
    return Fact(
        kind="criterion",
        trial_id=trial.id,
        name=render.trial_name(trial),
        label=_where(chunk),
        value=threshold(chunk.text.rstrip(" ;,."), asked) or "",
        marker=numbering.add(chunk),
        quote=chunk.text,
        section=chunk.section,
    )


def _unstated(trial: Trial, what: str) -> Fact:
    return Fact(
        kind="field",
        trial_id=trial.id,
        name=render.trial_name(trial),
        label=what,
        value="not stated in the record",
        marker=None,
    )


def _asked_terms(q: Question, trial: Trial | None, vocabulary: Vocabulary) -> set[str]:
    """The words a passage must hold to answer: the topic's (with curated expansions), else
    the question's own words that do not frame or name the trial."""
    text = q.topic or q.text
    words = set(tokenize(text)) - FRAME
    if trial is not None and not q.topic:
        # The whole question: the words that name the trial say nothing of what is asked.
        words -= vocabulary.names(trial.id)
        words -= {trial.id.lower(), (trial.nct_id or "").lower()}
    for term in expansion_terms(text):
        words.update(tokenize(term))
    for lab in q.patient.labs:
        words.update(tokenize(lab.name))
    return words


_QUANTITY = re.compile(
    r"\bhow\s+(?:many|much|high|low|long|old|big|large|small)\b|\b(?:minimum|maximum|min|max|"
    r"limit|limits|cut-?off|threshold|level|count|number|value|range|at\s+least|at\s+most)\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"\d")


def _ranked(q: Question, hits: list[Hit], asked: set[str]) -> list[Hit]:
    """The passages that answer a criterion question, best first: for a question of quantity
    ("how many", "minimum", "cut-off") those that state a number beside an asked word ("no
    more than 5 lesions", not "lesions ... RECIST 1.1"), then any number; then the section the
    question names ("their exclusion criteria"); then most concepts asked (a word with its
    forms and its curated expansions counts once); then criteria before prose and inclusion
    (what it requires) before exclusion; then the retriever's order."""
    quantity = bool(_QUANTITY.search(q.text))
    section = _SECTION.search(q.text)
    wanted = section.group(1).lower() if section else None
    concepts = _concepts(q.topic or q.text, asked)

    stems = {stem(w) for w in asked}

    def key(hit: Hit) -> tuple[bool, bool, bool, int, bool, bool]:
        chunk = hit.chunk
        text = " ".join(tokenize(chunk.text))
        words = stem_set(chunk.text) - stem_set(chunk.title)
        met = sum(1 for c in concepts if any(_holds(text, words, term) for term in c))
        return (
            quantity and not _number_near(chunk.text, stems),
            quantity and not _NUMBER.search(chunk.text),
            wanted is not None and chunk.section != wanted,
            -met,
            chunk.kind != "criterion",
            chunk.section != "inclusion",
        )

    return sorted((h for h in hits if h.chunk.kind != "card"), key=key)


_SECTION = re.compile(r"\b(inclusion|exclusion)s?\b", re.IGNORECASE)
NUMBER_REACH = 2  # content words (stop words aside) from a number to the asked word it quantifies


def _number_near(text: str, stems: set[str]) -> bool:
    """Does a number stand within NUMBER_REACH words of an asked word, in one sentence?"""
    for sentence in re.split(r"(?<=[.;])\s+", text):
        tokens = tokenize(sentence)
        numbers = [i for i, t in enumerate(tokens) if _NUMBER.search(t)]
        asked = [i for i, t in enumerate(tokens) if stem(t) in stems]
        if any(abs(i - j) <= NUMBER_REACH for i in numbers for j in asked):
            return True
    return False


def _concepts(text: str, asked: set[str]) -> list[set[str]]:
    """The concepts a question asks: each curated key phrase it holds with its expansions (as
    phrases), and each other asked word alone."""
    concepts: list[set[str]] = []
    covered: set[str] = set()
    low = " ".join(tokenize(text))
    for key, terms in EXPANSIONS.items():
        folded = " ".join(tokenize(key))
        if folded and re.search(rf"(?<![\w-]){re.escape(folded)}(?![\w-])", low):
            concepts.append({folded, *(" ".join(tokenize(t)) for t in terms)})
            covered.update(tokenize(key))
    concepts += [{word} for word in asked - covered if word in set(tokenize(text))]
    merged: list[set[str]] = []
    for concept in concepts:
        joined = [m for m in merged if m & concept]
        for m in joined:
            merged.remove(m)
        merged.append(concept.union(*joined))
    return merged


def _holds(text: str, stems: frozenset[str], term: str) -> bool:
    """Does a passage hold the term: a phrase as words in order, a word in any of its forms?"""
    if " " in term:
        return re.search(rf"(?<![\w-]){re.escape(term)}(?![\w-])", text) is not None
    return stem(term) in stems


def _unread_fact(trial: Trial) -> Fact:
    """A trial none of whose passages name what was asked."""
    return Fact("verdict", trial.id, render.trial_name(trial), "", "not stated", None)


def _more_stated(verdicts: tuple[Verdict, ...], shown: set[str]) -> str:
    """How many trials with a verdict the text leaves out, and where they are."""
    n = sum(1 for v in verdicts if v.verdict != "not stated" and v.trial_id not in shown)
    if not n:
        return ""
    return (
        f"{n} more trial{'s' if n != 1 else ''} with a verdict {'is' if n == 1 else 'are'} "
        "not listed here (every verdict is in the answer's JSON: rag ask --json)."
    )


# The verdicts that answer a question with each stance (counted first, listed first).
_STANCE_VERDICTS: dict[Stance, frozenset[VerdictWord]] = {
    "excludes": frozenset({"excludes", "allows with conditions"}),
    "requires": frozenset({"requires"}),
    "allows": frozenset({"allows", "allows with conditions", "requires"}),
}


def _scan_terms(q: Question) -> set[str]:
    """Words a passage deciding a verdict on this question must hold (cards always count)."""
    terms = set(topic_terms(q.topic)) if q.topic else set()
    for condition in q.patient.conditions:
        terms |= topic_terms(condition)
    if q.patient.age is not None:
        terms |= {"age", "aged", "years", "old"}
    if q.patient.ecog is not None:
        terms |= {"ecog", "performance"}
    for lab in q.patient.labs:
        terms |= topic_terms(lab.name) | set(tokenize(lab.name))
    return terms


def _scan_lead(q: Question, verdicts: tuple[Verdict, ...]) -> str:
    """The count or the yes/no that counting and existence questions ask for. A trial that
    excludes the trait only under conditions ("symptomatic or uncontrolled" brain metastases)
    is counted among those excluding it, and said to be."""
    if q.kind not in ("count", "exists"):
        return ""
    stance = q.stance
    wanted = _STANCE_VERDICTS[stance]
    n = sum(1 for v in verdicts if v.verdict in wanted)
    one = {"excludes": "excludes it", "requires": "requires it", "allows": "takes such patients"}
    many = {"excludes": "exclude it", "requires": "require it", "allows": "take such patients"}
    said = f"{n} trial {one[stance]}" if n == 1 else f"{n} trials {many[stance]}"
    conditional = sum(1 for v in verdicts if v.verdict == "allows with conditions")
    if stance == "excludes" and conditional:
        said += f" ({conditional} only under conditions)"
    if q.kind == "count":
        return f"{said}."
    return f"Yes: {said}." if n else "No: no trial states that it does."


def _left_out(q: Question, trials: Iterable[Trial], checked: set[str]) -> str:
    """The trials a patient's status, sex or age leaves out, said rather than dropped."""
    f = q.filters
    if f.status is None and f.sex is None and f.age is None:
        return ""
    out = [(t.id, why) for t in trials if t.id not in checked and (why := f.left_out(t))]
    if not out:
        return ""
    shown = "; ".join(f"{tid} ({why})" for tid, why in out[:MAX_LEFT_OUT])
    more = len(out) - MAX_LEFT_OUT
    n = f"{len(out)} trial{'s' if len(out) != 1 else ''}"
    return f"Left out by their record's fields: {n}: {shown}" + (
        f"; and {more} more" if more > 0 else ""
    )


def _shown_field(filters: Filters) -> str | None:
    """The field a listing shows for each trial: the one its filters select on."""
    for key, name in (
        ("sponsor", "sponsor"),
        ("intervention", "interventions"),
        ("condition", "conditions"),
        ("about", "conditions"),
        ("country", "countries"),
        ("status", "status"),
        ("phase", "phase"),
        ("study_type", "study_type"),
    ):
        if getattr(filters, key) is not None:
            return name
    if filters.design:
        return DESIGNS[sorted(filters.design)[0]][0]
    return None


def _listed_field(trial: Trial, name: str | None) -> tuple[str, str, Derived | None]:
    """(label, value, derived source) of the field a listing shows for the trial."""
    if name is None:
        return "", "", None
    text, sources = render.field_text(trial, name)
    if text is None:
        return render.FIELD_LABELS[name], "not stated", None
    return render.FIELD_LABELS[name], text, sources[0] if sources else None


def _field_truth(q: Question, trial: Trial, name: str) -> bool | None:
    """Does the trial's field say yes to what a yes/no question asks of it? None when the
    question names no value to compare with."""
    if name == "ages":
        return None
    value, _ = trial.value(name)
    if value is None:
        return None
    filters = q.filters
    if name == "status" and filters.status is not None:
        return value in filters.status
    if name == "phase" and filters.phase is not None:
        return bool(set(str(value).split("/")) & filters.phase)
    if name == "study_type" and filters.study_type is not None:
        return value in filters.study_type
    if name == "healthy_volunteers":
        return bool(value)
    if filters.design:
        relevant = [DESIGNS[d] for d in filters.design if DESIGNS[d][0] == name]
        if relevant:
            return all(value in codes for _, codes in relevant)
    if name == "sex":
        wanted = _asked_sex(q.text)
        return None if wanted is None else value in ("ALL", wanted)
    if isinstance(value, tuple) or name == "sponsor":
        asked = set(tokenize(q.value)) - FRAME if q.value else set()
        values = value if isinstance(value, tuple) else (value,)
        return any(asked <= token_set(v) for v in values) if asked else None
    return None


def _asked_sex(text: str) -> str | None:
    female = re.search(r"\b(?:women|woman|females?|girls?|ladies)\b", text, re.IGNORECASE)
    male = re.search(r"\b(?:men|man|males?|boys?)\b", text, re.IGNORECASE)
    if female and male:
        return "ALL"
    return "FEMALE" if female else "MALE" if male else None


def _messages(
    backend: Backend,
    kind: TaskKind,
    q: Question,
    passages: tuple[Passage, ...],
    facts: list[Fact] | None = None,
    lead: str = "",
) -> tuple[dict[str, str], ...]:
    """The chat prompt, for a backend that reads one (see Backend.reads_messages)."""
    if not getattr(backend, "reads_messages", True):
        return ()
    context = "\n\n".join(
        f"[{p.marker}] {inert(p.chunk.title)} ({p.chunk.trial_id}) | {p.chunk.section}"
        + (f" {p.chunk.criterion_id}" if p.chunk.criterion_id else "")
        + f"\n{inert(p.chunk.text)}"
        for p in passages
    )
    system = prompt("system").format(cannot_answer=CANNOT_ANSWER)
    found = "\n".join(
        f"- {inert(f.name)}: {inert(f.label)} {inert(f.value)}".rstrip()
        + (f" [{f.marker}]" if f.marker else "")
        for f in facts or ()
    )
    user = prompt(kind).format(
        question=q.text,
        passages=context,
        kind=q.kind,
        found=found or "(nothing)",
        lead=lead or "(none)",
    )
    return ({"role": "system", "content": system}, {"role": "user", "content": user})
