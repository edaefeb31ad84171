"""Trial -> chunks: one per criterion, one per summary or description piece, one field card.

Chunk ids are stable and readable: a criterion chunk has its criterion's id
("NCT04984096/exclusion/3"), the others "<trial id>/card", "<trial id>/summary/1",
"<trial id>/description/2".
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from rag import render
from rag.types import Chunk, Criterion, Trial

# all-MiniLM-L6-v2 reads 256 word pieces; ~150 words stay under 200 of them with a header.
MAX_PIECE_WORDS = 150
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\"'])")


def chunk_trial(trial: Trial) -> list[Chunk]:
    """Every chunk of one trial, card first."""
    # The embedded header carries a short title; `title` is the name shown to people.
    title = short_title(trial), render.short_name(trial)
    chunks = [_card(trial, title)]
    by_id = {c.id: c for c in trial.criteria}
    for criterion in trial.criteria:
        chunks.append(_criterion(trial, criterion, by_id, title))
    for field in ("brief_summary", "description"):
        value = getattr(trial, field)
        if value:
            chunks.extend(_pieces(trial, field, value, title))
    return chunks


def chunk_trials(trials: Iterable[Trial]) -> list[Chunk]:
    return [chunk for trial in trials for chunk in chunk_trial(trial)]


def short_title(trial: Trial) -> str:
    """The trial's title cut to a header's length, else its summary's or description's start."""
    basis = trial.title or trial.official_title or trial.brief_summary or trial.description
    return render.shorten(basis or trial.id)


def _header(trial: Trial, title: tuple[str, str], section: str) -> str:
    """ "<short title> (<id>; <sponsor>) | <section>": enough for a chunk to stand alone."""
    about = "; ".join(v for v in (trial.nct_id or trial.id, trial.sponsor) if v)
    return f"{title[0]} ({about}) | {section}"


def _criterion(
    trial: Trial, criterion: Criterion, by_id: dict[str, Criterion], title: tuple[str, str]
) -> Chunk:
    context: list[str] = []
    parent = criterion.parent
    while parent is not None and parent in by_id:
        context.append(by_id[parent].plain)
        parent = by_id[parent].parent
    section = f"{criterion.section} criterion"
    lines = [_header(trial, title, section), *reversed(context), criterion.plain]
    return Chunk(
        id=criterion.id,
        trial_id=trial.id,
        kind="criterion",
        section=criterion.section,
        text=criterion.plain,
        embed_text="\n".join(lines),
        title=title[1],
        criterion_id=criterion.id,
        span=criterion.span,
        field=criterion.field,
    )


def card_text(trial: Trial) -> str:
    """The trial's fields as a person reads them, one "Label: value" line each; fields the
    record leaves empty are left out, and values read from its own words say where."""
    return "\n".join(line for _, line, _ in render.card_lines(trial))


def _card(trial: Trial, title: tuple[str, str]) -> Chunk:
    text = card_text(trial)
    return Chunk(
        id=f"{trial.id}/card",
        trial_id=trial.id,
        kind="card",
        section="card",
        text=text,
        embed_text=f"{_header(trial, title, 'trial fields')}\n{text}",
        title=title[1],
    )


def _pieces(trial: Trial, field: str, value: str, title: tuple[str, str]) -> list[Chunk]:
    section = "summary" if field == "brief_summary" else "description"
    chunks: list[Chunk] = []
    for start, end in split_passages(value):
        text = " ".join(value[start:end].split())
        chunks.append(
            Chunk(
                id=f"{trial.id}/{section}/{len(chunks) + 1}",
                trial_id=trial.id,
                kind="summary" if section == "summary" else "description",
                section=section,
                text=text,
                embed_text=f"{_header(trial, title, section)}\n{text}",
                title=title[1],
                span=(start, end),
                field=field,
            )
        )
    return chunks


def split_passages(text: str, max_words: int = MAX_PIECE_WORDS) -> list[tuple[int, int]]:
    """[start, end) pieces of text: paragraphs, long ones cut at sentence ends with one
    sentence of overlap, so a fact that straddles a cut is whole in one piece."""
    pieces: list[tuple[int, int]] = []
    for para in re.finditer(r"\S(?:.*?\S)?(?=\s*\n\s*\n|\s*$)", text, re.DOTALL):
        start, end = para.start(), para.end()
        if len(para.group().split()) <= max_words:
            pieces.append((start, end))
            continue
        bounds = [start] + [m.end() + start for m in _SENTENCE_END.finditer(para.group())]
        sentences = [
            (s, (bounds[i + 1] if i + 1 < len(bounds) else end)) for i, s in enumerate(bounds)
        ]
        i = 0
        while i < len(sentences):
            j, words = i, 0
            while j < len(sentences):
                count = len(text[sentences[j][0] : sentences[j][1]].split())
                if j > i and words + count > max_words:
                    break
                words += count
                j += 1
            piece_end = sentences[j - 1][1]
            pieces.append((sentences[i][0], _rstrip(text, piece_end)))
            if j >= len(sentences):
                break
            i = j - 1 if j - 1 > i else j  # one sentence of overlap
    return pieces


def _rstrip(text: str, end: int) -> int:
    while end > 0 and text[end - 1].isspace():
        end -= 1
    return end
