"""Eligibility text -> single inclusion and exclusion criteria, nested, with exact spans.

The text is read in three passes:

1. Lines become items. A line that starts with a list marker (1. 1) (1) a. (a) i. * - • ①)
   starts an item; an unmarked line starts one unless it continues the line before (a wrapped
   line, or a lowercase continuation), and an unmarked paragraph inside a marked list belongs
   to the item before it (seed 003's "Note:"). Section headings ("Inclusion Criteria:") switch
   the section and are never criteria.
2. Inline enumerations "(1) ... (2) ..." are split into items of their own.
3. Nesting is decided per section by a small dynamic programme over the stack of open lists:
   numbering that continues a list, restarts under a colon, indentation where the source keeps
   it, and short value lines under a colon line ("(1) Blood routine examination:" / "HB≥90g/L;")
   each cost a little or nothing, and the cheapest reading wins. Pages lose their indentation
   when saved as text, so numbering has to carry the structure there.

Every criterion's span is [start, end) into the text given, so text[start:end] == criterion.text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from rag.types import FILE_TEXT, Criterion, Section

_CIRCLED = "①②③④⑤⑥⑦⑧⑨⑩⑪⑫⑬⑭⑮⑯⑰⑱⑲⑳"
_ROMAN_VALUES = {
    "i": 1, "ii": 2, "iii": 3, "iv": 4, "v": 5, "vi": 6, "vii": 7, "viii": 8, "ix": 9, "x": 10,
}  # fmt: skip

_MARKER = re.compile(
    r"""(?:
        (?P<bullet>\\?[-*•·▪◦○●‣⁃–—■□►➢✓✔o])(?=\s)
      | \(\s?(?P<pnum>\d{1,2})\s?\)
      | (?P<num>\d{1,2})\\?(?P<numd>[.)、．]|\s*-)(?![\d.])
      | (?P<circ>[①-⑳])
      | \((?P<palpha>[a-zA-Z])\)
      | \((?P<proman>(?:i{1,3}|iv|vi{0,3}|ix|x))\)
      | (?P<roman>(?:i{2,3}|iv|vi{1,3}|ix))\\?(?P<romand>[.)])
      | (?P<alpha>[a-zA-Z])\\?(?P<alphad>[.)])(?=\s)
    )[ \t]*""",
    re.VERBOSE,
)

_HEADING = re.compile(
    r"""[ \t]*(?:\*\*|\#+\s*)?
        (?:(?:key|main|general|major|specific|patient|participant|subject)s?\s+)?
        (?P<sec>inclusion|exclusion|non[- ]?inclusion)
        (?:\s+criteri(?:a|on))?(?:\s*\([^)\n]*\))?
        [ \t]*(?:\*\*)?[ \t]*(?P<colon>[:：])?[ \t]*(?:\*\*)?[ \t]*""",
    re.IGNORECASE | re.VERBOSE,
)
# "PATIENT CHARACTERISTICS:", "Concurrent Medication:": a group heading, never a sub-item.
_GROUP_HEADING = re.compile(r"^(?:[A-Z][A-Z0-9 ,/&()'-]{3,}|[A-Z][\w'-]*(?: [A-Z][\w'-]*){1,4}):$")
# A line that stops inside a sentence: an open "(2)", a comma, "and", "or", "including".
_OPEN_END = re.compile(r"(?:\(\s?\d{1,2}\s?\)|[,(/-]|\b(?:and|or|with|including|of|the|to))$")
# "Adequate renal function: creatinine clearance ≥ 45 mL/min": a label with its value.
_LABELLED = re.compile(r"^[A-Z][^:;.]{2,50}:\s+\S")
_LAB_VALUE = re.compile(r"[≥≤<>]|\bULN\b|/[μu]?L\b|g/dL|mmol|\bx\s?10")
_NOTE = re.compile(r"^(notes?|remarks?|n\.b\.)\s*:", re.IGNORECASE)
_TERMINAL = tuple(".;:!?。；：")
_INLINE_PAREN = re.compile(r"(?<![^\s;:,.])\(\s?(\d{1,2})\s?\)\s*(?=\S)")
_TRAILING_JUNK = re.compile(r"(?:\s+-)+$")

# A value line under a colon line is short or reads as a fragment ("HB≥90g/L;", "4 weeks before
# of enrollment; ..."); a full criterion after a colon line means the list was cut off.
CHILD_LINE_MAX_CHARS = 60
# Hard-wrapped registry text stops lines at 70-100 characters; many lines end within a few
# characters of the widest. Unwrapped text (one criterion a line) has no such cluster.
MIN_WRAP_WIDTH, MAX_WRAP_WIDTH, WRAP_SLACK_CHARS = 60, 140, 15

# Costs of the nesting programme (see module docstring); only their order matters.
_MISMATCH = 5.0  # a number that does not continue the list it is put in
_PUSH_UNDER_COLON = 0.2
_PUSH_PLAIN = 1.0
_CHILDLESS_COLON = 1.0  # leaving "the following:" with no items
_STYLE_SWITCH = 4.0
_POP_PLAIN = 0.3
_FORBIDDEN = 100.0
_INDENT_MISMATCH = 3.0  # a sibling whose indentation differs from its list's
_BEAM = 24
_PRUNE_MARGIN = 8.0  # readings this much costlier than the best never win back


@dataclass(slots=True)
class _Item:
    start: int  # content start (after the marker)
    end: int  # content end (trailing space removed)
    indent: int
    styles: tuple[tuple[str, int | None], ...]  # (style, value) readings; () for unmarked
    line_start: int  # start of the line: where an inline split begins a new line
    heading: bool = False  # an ALL-CAPS "PATIENT CHARACTERISTICS:" line

    @property
    def plain(self) -> bool:
        return not self.styles


@dataclass(slots=True)
class _Block:
    section: Section
    items: list[_Item] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Line:
    start: int  # offset of the first character of the line
    end: int  # offset after the last non-space character
    indent: int
    content: int  # offset of the first non-space character


def parse_criteria(
    text: str,
    id_prefix: str,
    *,
    start: int = 0,
    end: int | None = None,
    field_name: str = FILE_TEXT,
    default_section: Section = "inclusion",
) -> list[Criterion]:
    """Criteria of text[start:end], with ids f"{id_prefix}/{section}/{path}"."""
    blocks = _blocks(text, start, len(text) if end is None else end, default_section)
    criteria: list[Criterion] = []
    top_counts: dict[str, int] = {}
    for block in blocks:
        items = _split_inline(text, block.items)
        if not items:
            continue
        depths = _nest(text, items)
        criteria.extend(
            _emit(text, items, depths, block.section, id_prefix, field_name, top_counts)
        )
    return criteria


def _lines(text: str, start: int, end: int) -> Iterator[_Line]:
    pos = start
    while pos < end:
        nl = text.find("\n", pos, end)
        stop = end if nl == -1 else nl
        raw = text[pos:stop]
        stripped = raw.rstrip()
        lead = len(raw) - len(raw.lstrip())
        indent = len(raw[:lead].expandtabs(4))
        yield _Line(pos, pos + len(stripped), indent, pos + lead)
        pos = stop + 1


def _marker(text: str, line: _Line) -> tuple[tuple[tuple[str, int | None], ...], int] | None:
    m = _MARKER.match(text, line.content, line.end)
    if not m or m.end() >= line.end:
        return None
    g = m.groupdict()
    if g["bullet"]:
        bullet = g["bullet"].lstrip("\\")
        # "o" is a bullet only when a space follows and the line goes on; "-" also.
        styles: tuple[tuple[str, int | None], ...] = ((f"bullet{bullet}", None),)
    elif g["pnum"]:
        styles = (("(n)", int(g["pnum"])),)
    elif g["num"]:
        delim = g["numd"].strip()
        if delim == "-" and not text[m.end() : m.end() + 1].strip():
            return None
        styles = ((f"n{delim or '-'}", int(g["num"])),)
    elif g["circ"]:
        styles = (("circ", _CIRCLED.index(g["circ"]) + 1),)
    elif g["palpha"]:
        letter = g["palpha"]
        styles = ((f"(a){letter.isupper()}", ord(letter.lower()) - 96),)
        if letter.lower() in _ROMAN_VALUES:
            styles += (("(i)", _ROMAN_VALUES[letter.lower()]),)
    elif g["proman"]:
        styles = (("(i)", _ROMAN_VALUES[g["proman"].lower()]),)
    elif g["roman"]:
        styles = ((f"i{g['romand']}", _ROMAN_VALUES[g["roman"].lower()]),)
    else:
        letter, delim = g["alpha"], g["alphad"]
        styles = ((f"a{delim}{letter.isupper()}", ord(letter.lower()) - 96),)
        if letter.lower() in _ROMAN_VALUES:
            styles += ((f"i{delim}", _ROMAN_VALUES[letter.lower()]),)
    return styles, m.end()


def _blocks(text: str, start: int, end: int, default: Section) -> list[_Block]:
    wrapped = _is_wrapped(text, start, end)
    blocks = [_Block(default)]
    item: _Item | None = None
    blank_before = False
    prev: _Line | None = None
    for line in _lines(text, start, end):
        if line.end <= line.content:
            blank_before = True
            continue
        heading = _HEADING.match(text, line.content, line.end)
        if heading and (heading.end() >= line.end or heading.group("colon")):
            section: Section = (
                "inclusion" if heading.group("sec").lower() == "inclusion" else "exclusion"
            )
            blocks.append(_Block(section))
            item, prev, blank_before = None, None, False
            if heading.end() >= line.end:
                continue
            line = _Line(line.start, line.end, line.indent, heading.end())
        block = blocks[-1]
        marked = _marker(text, line)
        content = text[line.content : line.end]
        if marked:
            styles, body = marked
            item = _Item(body, line.end, line.indent, styles, line.start)
            block.items.append(item)
        elif item is not None and _continues(text, item, prev, blank_before, content, wrapped):
            item.end = line.end
        else:
            item = _Item(line.content, line.end, line.indent, (), line.start)
            item.heading = bool(_GROUP_HEADING.match(content))
            block.items.append(item)
        prev, blank_before = line, False
    return [b for b in blocks if b.items]


def _continues(
    text: str,
    item: _Item,
    prev: _Line | None,
    blank_before: bool,
    content: str,
    wrapped: bool,
) -> bool:
    """Does an unmarked line continue the item before it?"""
    if _GROUP_HEADING.match(content):
        return False
    if blank_before:
        # A paragraph inside a marked list belongs to its item, unless it heads a sub-list.
        if item.plain:
            return False
        heads_a_list = content.endswith((":", "："))
        return _NOTE.match(content) is not None or not heads_a_list
    if prev is None:
        return False
    last = text[prev.content : prev.end]
    if content[:1].islower() and not last.endswith(_TERMINAL):
        return True
    if _OPEN_END.search(last):
        return True
    # Hard-wrapped text: a line that ends mid-sentence goes on below.
    return wrapped and not last.endswith(_TERMINAL)


def _is_wrapped(text: str, start: int, end: int) -> bool:
    """Is the region hard-wrapped, many lines stopping near one width (seeds 003/004, XML)?"""
    lengths = [ln.end - ln.start for ln in _lines(text, start, end) if ln.end > ln.content]
    widest = max(lengths, default=0)
    near = sum(1 for n in lengths if n >= widest - WRAP_SLACK_CHARS)
    return MIN_WRAP_WIDTH <= widest <= MAX_WRAP_WIDTH and near >= max(3, len(lengths) // 5)


def _split_inline(text: str, items: list[_Item]) -> list[_Item]:
    """Split "(1) ... (2) ..." enumerations inside an item into items of their own."""
    out: list[_Item] = []
    expected: int | None = None  # the next number of an open "(n)" list
    for item in items:
        if item.styles and item.styles[0][0] == "(n)":
            value = item.styles[0][1]
            expected = (value or 0) + 1
        found = [
            (m.start(), m.end(), int(m.group(1)))
            for m in _INLINE_PAREN.finditer(text, item.start, item.end)
            if m.start() > item.start
        ]
        cuts: list[tuple[int, int, int]] = []
        for i, (s, e, value) in enumerate(found):
            starts_list = value == 1 and any(v == 2 for _, _, v in found[i + 1 :])
            if starts_list or value == expected:
                cuts.append((s, e, value))
                expected = value + 1
        if not cuts:
            out.append(item)
            continue
        pieces = [item.start] + [s for s, _, _ in cuts]
        head_end = _rstrip(text, item.start, cuts[0][0])
        if head_end > item.start:
            out.append(_Item(item.start, head_end, item.indent, item.styles, item.line_start))
        for n, (_, body, value) in enumerate(cuts):
            stop = cuts[n + 1][0] if n + 1 < len(cuts) else item.end
            out.append(
                _Item(
                    body, _rstrip(text, body, stop), item.indent, (("(n)", value),), pieces[n + 1]
                )
            )
    return out


def _rstrip(text: str, start: int, end: int) -> int:
    while end > start and text[end - 1].isspace():
        end -= 1
    return end


# --- nesting -------------------------------------------------------------------------------

# A level of the stack: (style, indent, last value, top item ends with a colon).
_Level = tuple[str, int, int | None, bool]
_State = tuple[_Level, ...]

_FIRST = {None, 1}


def _child_line(content: str) -> bool:
    head = content[:1]
    return len(content) <= CHILD_LINE_MAX_CHARS or head.islower() or head.isdigit()


def _flat_bullet_cost(state: _State, depth: int, content: str) -> float:
    """Bullets of one style and indent nested under a colon item ("* Adequate liver function:"
    then "* ALT < 2.5 x ULN"): value lines stay in the sub-list, a new "Label:" line or a full
    criterion ends it."""
    sub_list = len(state) > 1 and state[-1][0] == state[-2][0]
    if not sub_list or depth < len(state) - 2:
        return 0.0
    group = content.endswith((":", "：")) or _LABELLED.match(content) is not None
    value_line = not group and (_child_line(content) or _LAB_VALUE.search(content) is not None)
    stays = depth == len(state) - 1
    return (0.0 if value_line else 1.5) if stays else (1.0 if value_line else 0.0)


def _nest(text: str, items: list[_Item]) -> list[int]:
    """The depth of each item (0 = top level) by the cheapest reading of the whole list."""
    indent_aware = len({item.indent for item in items}) > 1
    beam: dict[_State, float] = {(): 0.0}
    # For each item: state reached -> (state before, depth given to the item).
    back: list[dict[_State, tuple[_State, int]]] = []
    for item in items:
        content = text[item.start : item.end]
        colon = content.endswith((":", "："))
        nxt: dict[_State, float] = {}
        step_back: dict[_State, tuple[_State, int]] = {}
        for state, cost in beam.items():
            for depth, style, value, step in _moves(state, item, content, indent_aware):
                new_state = state[:depth] + ((style, item.indent, value, colon),)
                total = cost + step
                if total < nxt.get(new_state, _FORBIDDEN * len(items) + 1):
                    nxt[new_state] = total
                    step_back[new_state] = (state, depth)
        ranked = sorted(nxt.items(), key=lambda kv: kv[1])[:_BEAM]
        worst = ranked[0][1] + _PRUNE_MARGIN
        beam = {state: cost for state, cost in ranked if cost <= worst}
        back.append(step_back)
    state = min(beam, key=beam.__getitem__)
    depths: list[int] = []
    for step_back in reversed(back):
        state, depth = step_back[state]
        depths.append(depth)
    return depths[::-1]


def _moves(
    state: _State, item: _Item, content: str, indent_aware: bool
) -> Iterator[tuple[int, str, int | None, float]]:
    """Each place the item may go: (depth, style, value, cost)."""
    if not state:
        style, value = item.styles[0] if item.styles else ("plain", None)
        yield 0, style, value, 0.0
        return
    top = state[-1]
    top_colon = top[3]
    childless = _CHILDLESS_COLON if top_colon else 0.0
    readings = item.styles or (("plain", None),)
    for style, value in readings:
        # Siblings at an open level.
        for depth, (lstyle, lindent, lvalue, _) in enumerate(state):
            deepest = depth == len(state) - 1
            cost = childless
            if indent_aware and abs(item.indent - lindent) > 1:
                cost += _INDENT_MISMATCH
            if style == "plain":
                if lstyle != "plain":
                    cost += 2.0
                elif deepest and depth > 0 and not _child_line(content) and not item.heading:
                    cost += 3.0
                elif not deepest:
                    cost += _POP_PLAIN + 0.001 * (len(state) - depth)  # the nearest list
                if item.heading and depth > 0:
                    cost += 3.0
            elif lstyle != style:
                cost += _STYLE_SWITCH
            elif value is not None and lvalue is not None and value != lvalue + 1:
                cost += _MISMATCH
            elif value is None and not indent_aware:
                cost += _flat_bullet_cost(state, depth, content)
            if value is not None:
                cost += 0.001 * depth  # equal numbering: the outer list goes on
            yield depth, style, value, cost
        # A child of the item before.
        shallower = _INDENT_MISMATCH if indent_aware and item.indent < top[1] else 0.0
        if style == "plain":
            if item.heading:
                cost = _FORBIDDEN
            elif _child_line(content):
                cost = _PUSH_UNDER_COLON if top_colon else 2.0
            else:
                cost = 6.0
        else:
            cost = _PUSH_UNDER_COLON if top_colon else _PUSH_PLAIN
            if value not in _FIRST:
                cost += _MISMATCH
            if indent_aware and item.indent > top[1] + 1:
                cost -= _PUSH_PLAIN * 0.9
        yield len(state), style, value, cost + shallower


def _emit(
    text: str,
    items: list[_Item],
    depths: list[int],
    section: Section,
    prefix: str,
    field_name: str,
    top_counts: dict[str, int],
) -> list[Criterion]:
    parents: list[int | None] = [
        _last_index(depths, i, depth - 1) if depth else None for i, depth in enumerate(depths)
    ]
    child_counts = [0] * len(items)
    paths: list[str] = []
    for parent in parents:
        if parent is None:
            top_counts[section] = top_counts.get(section, 0) + 1
            paths.append(str(top_counts[section]))
        else:
            child_counts[parent] += 1
            paths.append(f"{paths[parent]}.{child_counts[parent]}")
    out: list[Criterion] = []
    for i, item in enumerate(items):
        start, end = item.start, item.end
        junk = _TRAILING_JUNK.search(text, start, end)
        if junk and junk.start() > start:
            end = junk.start()
        body = text[start:end]
        parent = parents[i]
        out.append(
            Criterion(
                id=f"{prefix}/{section}/{paths[i]}",
                section=section,
                text=body,
                span=(start, end),
                field=field_name,
                parent=None if parent is None else f"{prefix}/{section}/{paths[parent]}",
                truncated=body.endswith((":", "：")) and child_counts[i] == 0,
            )
        )
    return out


def _last_index(depths: list[int], before: int, depth: int) -> int:
    """Index of the latest item before `before` at `depth` (the parent of a deeper item)."""
    for j in range(before - 1, -1, -1):
        if depths[j] == depth:
            return j
    raise ValueError("an item deeper than the top level has no parent")
