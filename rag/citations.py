"""Passages numbered for citing, citations checked, and the fixed sentences of abstention.

Follows paper-qa: every passage a backend may cite has a marker [n]; a marker that maps to no
retrieved passage is removed and reported; an answer nothing supports is one fixed sentence,
shared by the prompts, the answers and the eval.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from rag.llm.base import Passage
from rag.types import VERDICTS, Chunk, Citation, Verdict, VerdictWord

CANNOT_ANSWER = (
    "I cannot answer this from the trial records: no retrieved passage supports an answer."
)
NO_TRIAL_MATCHES = "No trial in the corpus matches this question."
NO_TRIAL_NAMED = 'No trial in the corpus matches "{name}".'
NOT_STATED = "The record of {trial} does not state this."
NAME_THE_TRIAL = "Which trial do you mean? Name it by its NCT number, title, sponsor or drug."

_MARKER = re.compile(r"\[(\d+)\]")


def inert(text: str) -> str:
    """Record text made data wherever it is written into a backend's prompt or answer: its
    own "[7]" becomes "［7］", no marker of ours, and its line breaks become spaces, so it
    cannot open a verdict line of its own."""
    return _MARKER.sub(r"［\1］", " ".join(text.split()))


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
    text = re.sub(r"[ \t]{2,}", " ", text)
    text = re.sub(r"[ \t]+$", "", text, flags=re.MULTILINE).strip()
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


UNSUPPORTED = "[unsupported]"
# Where a sentence ends: its stop and the markers after it ("It is recruiting. [2]"), then a
# capital or the line's end; not after "Dr.", "e.g.", "vs." or an initial ("J. Smith").
_STOP = re.compile(r"[.!?]+((?:\s*\[\d+\])*)(?=\s+[A-Z\"'(\[]|\s*$)")
_ABBREVIATION = re.compile(
    r"(?:\b(?i:dr|mr|mrs|ms|prof|vs|etc|approx|no|fig|st)|(?i:e\.g|i\.e)|\b[A-Z])$"
)


def mark_unsupported(text: str) -> tuple[str, tuple[str, ...]]:
    """Mark each sentence of a model's answer that cites no passage, so it is not shown as
    fact; the sentences marked. A heading line ending in ":" claims nothing."""
    unsupported: list[str] = []
    lines = []
    for line in text.split("\n"):
        start, parts = 0, []
        ends = [m for m in _STOP.finditer(line) if not _ABBREVIATION.search(line[: m.start()])]
        for end in [*(m.end() for m in ends), len(line)]:
            sentence = line[start:end]
            start = end
            said = sentence.strip()
            if not re.search(r"\w", said) or _MARKER.search(said) or said.endswith(":"):
                parts.append(sentence)
                continue
            unsupported.append(said)
            stop = re.search(r"[.!?]+$", sentence.rstrip())
            at = stop.start() if stop else len(sentence.rstrip())
            parts.append(f"{sentence[:at].rstrip()} {UNSUPPORTED}{sentence[at:]}")
        lines.append("".join(parts))
    return "\n".join(lines), tuple(unsupported)


_VERDICT_WORDS = "|".join(sorted(VERDICTS, key=len, reverse=True))
_VERDICT_LINE = re.compile(
    r"^\s*[-*]?\s*(?P<trial>NCT\d{8}|T-[0-9a-f]{10})\b[^\n]*?:\s*"
    rf"(?P<verdict>{_VERDICT_WORDS})\b(?P<rest>.*)$",
    re.IGNORECASE | re.MULTILINE,
)


def parse_verdicts(
    raw: str,
    trials: list[dict[str, Any]],
    passages: tuple[Passage, ...],
    check: Callable[[Chunk, VerdictWord], str] | None = None,
) -> tuple[Verdict, ...]:
    """One verdict per trial checked, from the backend's lines "<id>: <verdict> [n]".

    A verdict must cite a passage of its own trial that bears it out (`check` gives the
    reason a passage does not: it does not speak to the topic, or its typed facts say
    otherwise), or it is "not stated" with that reason; a trial the backend skipped is
    "not stated" too.
    """
    by_marker = {p.marker: p.chunk for p in passages}
    found: dict[str, Verdict] = {}
    for line in _VERDICT_LINE.finditer(raw):
        trial_id = line.group("trial")
        verdict: VerdictWord = line.group("verdict").lower()  # type: ignore[assignment]
        markers = [int(m) for m in _MARKER.findall(line.group("rest"))]
        cited = [
            (m, by_marker[m])
            for m in markers
            if m in by_marker and by_marker[m].trial_id == trial_id
        ]
        note = re.sub(r"^\s*(?:\[\d+\]\s*)*(?:-\s*)?", "", line.group("rest")).strip()
        said = checked_verdict(trial_id, verdict, cited, note, check)
        if trial_id not in found or (found[trial_id].marker is None and said.marker is not None):
            # a cited verdict stands over an earlier line for the trial that cites nothing
            found[trial_id] = said
    return tuple(found.get(t["id"], Verdict(t["id"], "not stated", None)) for t in trials)


def checked_verdict(
    trial_id: str,
    verdict: VerdictWord,
    cited: Sequence[tuple[int | None, Chunk]],
    note: str,
    check: Callable[[Chunk, VerdictWord], str] | None = None,
) -> Verdict:
    """The verdict, when a passage it cites (with its marker, None where the text does not
    write it) bears it out; else "not stated", saying why it was set aside."""
    reasons = [(marker, chunk, check(chunk, verdict) if check else "") for marker, chunk in cited]
    own = [(marker, chunk) for marker, chunk, reason in reasons if not reason]
    if verdict != "not stated" and not own:
        why = next((r for _, _, r in reasons if r), "it cites no passage of this trial")
        note = f"a {verdict!r} verdict was set aside: {why}"
        return Verdict(trial_id, "not stated", None, None, note)
    marker, chunk = own[0] if own else (None, None)
    return Verdict(trial_id, verdict, chunk.criterion_id if chunk else None, marker, note)


def summary_line(verdicts: tuple[Verdict, ...] | list[Verdict]) -> str:
    """'5 trials checked: 1 requires, 1 excludes, 3 do not state it'."""
    counts = {v: sum(1 for x in verdicts if x.verdict == v) for v in VERDICTS}
    parts = []
    for verdict in ("allows", "allows with conditions", "requires", "excludes", "not stated"):
        n = counts[verdict]
        if not n:
            continue
        if verdict == "not stated":
            parts.append(f"{n} {'does' if n == 1 else 'do'} not state it")
        elif verdict == "allows with conditions":
            parts.append(f"{n} {'allows' if n == 1 else 'allow'} it with conditions")
        else:
            parts.append(f"{n} {verdict if n == 1 else verdict[:-1]}")
    total = len(verdicts)
    return f"{total} trial{'s' if total != 1 else ''} checked: " + ", ".join(parts)
