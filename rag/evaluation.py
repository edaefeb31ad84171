"""Run an eval set through the assistant and score what a user would see.

An eval set is a JSON Lines file. Its first line may be {"meta": {...}} with the set's
index name, k and thresholds; every other line is one question:

    {"id": "q01", "question": "What phase is NCT03913182?", "category": "field",
     "expected": {"contains": ["Phase 2"]}, "cite": ["NCT03913182/card"]}

`expected` is one of
- {"contains": [value, ...]}: every value must be in the answer (an entry that is a list
  is a set of alternatives); values are compared after `normalise`;
- {"verdicts": {trial id: verdict}}: corpus-wide questions, one verdict per trial (a trial
  not named is expected to be "not stated", unless the question says "judge": "listed":
  then only the trials listed are scored, and a verdict "ambiguous" is not scored at all);
- {"trials": [trial id, ...]}: the answer must name exactly these trials;
- {"yes_no": "yes" | "no" | "not_stated"}: the answer starts with "Yes", "No" or says the
  record does not say;
- {"count": n}: the first number in the answer is n;
- {"abstain": "not_stated" | "no_match"}: the fixed sentence for that kind of abstention.
`cite` lists the chunk ids that hold the answer (the gold passages); `support` optionally
lists text a cited passage may contain instead. Questions that share a `conversation` key
are asked in order within one Conversation. `kind` optionally names the kind of question
(rag.understand.KINDS) for the per-kind table, which also shows how often the question stage
read that kind.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rag.answer import Assistant, Conversation
from rag.citations import CANNOT_ANSWER, NO_TRIAL_MATCHES
from rag.errors import RagError
from rag.metrics import recall_at, reciprocal_rank
from rag.normalize import MONTHS
from rag.types import VERDICTS, Answer
from rag.understand import KINDS

SETS_DIR = Path("eval")
RESULTS_DIR = SETS_DIR / "results"
DEFAULT_K = 5
MAX_CONSECUTIVE_ERRORS = 3  # backend failures in a row before the rest are not asked
# Higher is better for every metric; thresholds are minimums.
METRICS = (
    "answer_accuracy",
    "verdict_accuracy",
    "abstention_accuracy",
    "answered_accuracy",
    "citation_precision",
    "citation_recall",
    "recall_at_k",
    "mrr",
)
_EXPECTED_KINDS = ("contains", "verdicts", "trials", "yes_no", "count", "abstain")
_VERDICTS = (*VERDICTS, "ambiguous")  # "ambiguous": labelled, but not scored
_YES_NO = ("yes", "no", "not_stated")


class EvalError(RagError):
    """An eval set that cannot be read, or a threshold that makes no sense."""


@dataclass(frozen=True, slots=True)
class EvalSet:
    name: str
    path: Path
    meta: dict[str, Any]
    questions: tuple[dict[str, Any], ...]


def set_path(name: str, root: Path = SETS_DIR) -> Path:
    """A set by name (eval/<name>.jsonl) or by path."""
    path = Path(name)
    if path.suffix == ".jsonl" or path.exists():
        return path
    return root / f"{name}.jsonl"


def load_set(name: str, root: Path = SETS_DIR) -> EvalSet:
    """Read and check an eval set; a bad line is named with what to fix."""
    path = set_path(name, root)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        known = ", ".join(sorted(p.stem for p in root.glob("*.jsonl"))) or "none"
        raise EvalError(
            f"{path}: cannot read the eval set ({exc.strerror or exc}); sets in {root}/: {known}"
        ) from None
    meta: dict[str, Any] = {}
    questions: list[dict[str, Any]] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalError(f"{where}: not JSON ({exc.msg}); one object per line") from None
        if not isinstance(item, dict):
            raise EvalError(f"{where}: expected a JSON object, got {type(item).__name__}")
        if "meta" in item:
            meta = dict(item["meta"])
            check_thresholds(meta.get("thresholds", {}), where)
            continue
        _check_question(item, where, seen)
        questions.append(item)
    if not questions:
        raise EvalError(f"{path}: no questions; add one JSON object per line")
    return EvalSet(path.stem, path, meta, tuple(questions))


def _check_question(item: dict[str, Any], where: str, seen: set[str]) -> None:
    for key in ("id", "question", "category", "expected"):
        if key not in item:
            raise EvalError(f"{where}: missing field {key!r}")
    if item["id"] in seen:
        raise EvalError(f"{where}: id {item['id']!r} is used twice; ids must be unique")
    seen.add(item["id"])
    expected = item["expected"]
    kinds = [k for k in _EXPECTED_KINDS if k in expected] if isinstance(expected, dict) else []
    if len(kinds) != 1:
        raise EvalError(
            f"{where}: 'expected' must hold exactly one of {', '.join(_EXPECTED_KINDS)}"
        )
    if kinds == ["abstain"] and expected["abstain"] not in ("not_stated", "no_match"):
        raise EvalError(f"{where}: 'abstain' must be 'not_stated' or 'no_match'")
    if kinds == ["verdicts"]:
        bad = [v for v in expected["verdicts"].values() if v not in _VERDICTS]
        if bad:
            raise EvalError(f"{where}: unknown verdict {bad[0]!r}; use {', '.join(_VERDICTS)}")
    if kinds == ["yes_no"] and expected["yes_no"] not in _YES_NO:
        raise EvalError(f"{where}: 'yes_no' must be one of {', '.join(_YES_NO)}")
    if kinds == ["count"] and not isinstance(expected["count"], int):
        raise EvalError(f"{where}: 'count' must be a whole number")
    if "kind" in item and item["kind"] not in KINDS:
        raise EvalError(f"{where}: unknown kind {item['kind']!r}; use {', '.join(KINDS)}")


def check_thresholds(thresholds: dict[str, Any], where: str) -> dict[str, float]:
    """{metric: minimum}; unknown metrics and values outside 0..1 are errors."""
    checked = {}
    for metric, value in thresholds.items():
        if metric not in METRICS:
            raise EvalError(f"{where}: unknown metric {metric!r}; use {', '.join(METRICS)}")
        if not isinstance(value, int | float) or not 0 <= value <= 1:
            raise EvalError(f"{where}: threshold {metric}={value!r} must be a number in 0..1")
        checked[metric] = float(value)
    return checked


def parse_thresholds(options: Iterable[str]) -> dict[str, float]:
    """--min METRIC=VALUE options -> {metric: minimum}."""
    found: dict[str, Any] = {}
    for option in options:
        metric, sep, value = option.partition("=")
        try:
            found[metric.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise EvalError(f"--min {option!r}: write METRIC=VALUE, e.g. answer_accuracy=0.9")
    return check_thresholds(found, "--min")


# --- normalisation --------------------------------------------------------------------------

_MONTH = "|".join(sorted(MONTHS, key=len, reverse=True))
_ROMAN = {"i": "1", "ii": "2", "iii": "3", "iv": "4"}
_STATUSES = (
    ("active, not recruiting", "active_not_recruiting"),
    ("active not recruiting", "active_not_recruiting"),
    ("not yet recruiting", "not_yet_recruiting"),
    ("enrolling by invitation", "enrolling_by_invitation"),
    ("temporarily not available", "temporarily_not_available"),
    ("no longer available", "no_longer_available"),
    ("approved for marketing", "approved_for_marketing"),
    ("unknown status", "unknown"),
)


def normalise(text: str) -> str:
    """One spelling for what registries and answers write many ways.

    Lower case; dates to ISO ('March 5, 2019', '5 March 2019' -> 2019-03-05, 'March 2019'
    -> 2019-03); phases to phase1..phase4 ('Phase II', 'PHASE2', 'Phase 1/2'); statuses to
    their enum ('Active, not recruiting' -> active_not_recruiting); thousands separators
    dropped; ages 'N to M years' -> 'N years to M years'; punctuation to spaces.
    """
    text = text.lower().replace("’", "'")
    text = re.sub(
        rf"\b({_MONTH})\.?\s+(\d{{1,2}}),?\s+(\d{{4}})\b",
        lambda m: f"{m[3]}-{MONTHS[m[1]]:02d}-{int(m[2]):02d}",
        text,
    )
    text = re.sub(
        rf"\b(\d{{1,2}})\s+({_MONTH})\.?,?\s+(\d{{4}})\b",
        lambda m: f"{m[3]}-{MONTHS[m[2]]:02d}-{int(m[1]):02d}",
        text,
    )
    text = re.sub(rf"\b({_MONTH})\.?,?\s+(\d{{4}})\b", lambda m: f"{m[2]}-{MONTHS[m[1]]:02d}", text)
    text = re.sub(
        r"\b(\d{4})-(\d{1,2})(?:-(\d{1,2}))?\b",
        lambda m: f"{m[1]}_{int(m[2]):02d}" + (f"_{int(m[3]):02d}" if m[3] else ""),
        text,
    )
    text = re.sub(r"\bearly[\s_]*phase[\s_]*(?:1|i)\b", "early_phase1", text)
    text = re.sub(
        r"\bphase[\s_]*(iv|iii|ii|i|[1-4])(?:\s*(?:/|-|and|,)\s*(?:phase[\s_]*)?(iv|iii|ii|i|[1-4]))?\b",
        lambda m: " ".join(f"phase{_ROMAN.get(p, p)}" for p in (m[1], m[2]) if p),
        text,
    )
    for spelling, enum in _STATUSES:
        text = text.replace(spelling, enum)
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    text = re.sub(
        r"\b(\d+(?:\.\d+)?)\s*(?:to|-|–)\s*(\d+(?:\.\d+)?)\s*years?\b",
        r"\1 years to \2 years",
        text,
    )
    text = re.sub(r"\b(\d+(?:\.\d+)?)\s*(?:years?|yrs?)(?:\s+old)?\b", r"\1 years", text)
    text = re.sub(r"(?<=\d)\.0\b", "", text)
    text = re.sub(r"[^\w.]+|(?<!\d)\.|\.(?!\d)", " ", text)
    return " ".join(text.split())


# How answers name a trial: its id, then its name in brackets ("NCT04984096 (APEC: ...)").
_TRIAL_NAME = re.compile(r"\b(NCT\d{8}|T-[0-9a-f]{10}) \((?:[^()]|\((?:[^()]|\([^()]*\))*\))*\)")


def stated(text: str) -> str:
    """The answer without the names of the trials it speaks of: a value must be stated, not
    only be part of a title."""
    return _TRIAL_NAME.sub(r"\1", text)


def contains(text: str, value: str) -> bool:
    """Is `value` in `text`, as whole words, after both are normalised? A number may carry
    its unit ("90" is in "HB ≥90g/L"), but not more digits ("90" is not in "900" or "90.5")."""
    wanted = normalise(value)
    if not wanted:
        return False
    after = r"(?![\d]|[.,]\d)" if wanted[-1].isdigit() else r"(?![\w]|\.\d)"
    return re.search(rf"(?<![\w.]){re.escape(wanted)}{after}", normalise(text)) is not None


# --- scoring ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Outcome:
    """One question scored. None means the measure does not apply to this question."""

    id: str
    category: str
    question: str
    answer: str
    expected: dict[str, Any]
    correct: bool
    abstained: bool
    verdict_accuracy: float | None = None
    citation_precision: float | None = None
    citation_recall: float | None = None
    recall_at_k: float | None = None
    reciprocal_rank: float | None = None
    ms: float = 0.0
    cited: list[str] = field(default_factory=list)
    error: str | None = None
    kind: str | None = None  # the kind of question, as labelled in the set
    understood: str | None = None  # the kind the question stage read
    # verdict questions: each judged trial's (expected, given) verdict
    pairs: list[tuple[str, str]] = field(default_factory=list)

    @property
    def unanswerable(self) -> bool:
        return "abstain" in self.expected


def score(case: dict[str, Any], answer: Answer, k: int, ms: float) -> Outcome:
    """Score one answer against its case."""
    expected = case["expected"]
    gold = list(case.get("cite", []))
    cited = [c.chunk_id for c in answer.citations]
    ranked = list(dict.fromkeys(h.chunk.id for h in answer.hits))
    outcome = Outcome(
        id=case["id"],
        category=case["category"],
        question=case["question"],
        answer=answer.text,
        expected=expected,
        correct=False,
        abstained=answer.abstained,
        ms=ms,
        cited=cited,
        kind=case.get("kind"),
        understood=answer.understood.kind if answer.understood else None,
    )
    if "abstain" in expected:
        if expected["abstain"] == "no_match":
            outcome.correct = answer.abstained and answer.text in {NO_TRIAL_MATCHES, CANNOT_ANSWER}
        else:
            outcome.correct = answer.abstained and (
                answer.text.endswith("does not state this.")
                or answer.text.startswith("The record does not say")
            )
    elif "contains" in expected:
        outcome.correct = not answer.abstained and all(
            any(contains(stated(answer.text), v) for v in _alternatives(value))
            for value in expected["contains"]
        )
    elif "verdicts" in expected:
        want: dict[str, str] = expected["verdicts"]
        got = {v.trial_id: v.verdict for v in answer.verdicts}
        if case.get("judge") == "listed":
            judged = {t for t, v in want.items() if v != "ambiguous"}
        else:
            judged = set(want) | {t for t, v in got.items() if v != "not stated"}
        agree = [
            got.get(t, "not stated") == want.get(t, "not stated")
            and _condition_agrees(t, want.get(t), answer, case.get("cite", []))
            for t in judged
        ]
        outcome.pairs = [
            (want.get(t, "not stated"), got.get(t, "not stated")) for t in sorted(judged)
        ]
        outcome.verdict_accuracy = sum(agree) / len(agree) if agree else 1.0
        outcome.correct = all(agree)
    elif "yes_no" in expected:
        outcome.correct = said_yes_no(answer.text) == expected["yes_no"]
    elif "count" in expected:
        first = re.search(r"\d+", answer.text)
        outcome.correct = first is not None and int(first.group()) == expected["count"]
    else:
        wanted = set(expected["trials"])
        named = named_trials(answer)
        union = wanted | named
        outcome.verdict_accuracy = len(wanted & named) / len(union) if union else 1.0
        outcome.correct = named == wanted and not answer.abstained
    if cited:
        support = _support(case)
        allowed = _supporting_trials(expected)
        good = [
            c.chunk_id in gold
            or (
                (allowed is None or c.trial_id in allowed)
                and any(contains(c.text, s) for s in support)
            )
            for c in answer.citations
        ]
        outcome.citation_precision = sum(good) / len(good)
    if gold and "abstain" not in expected:
        outcome.citation_recall = len(set(gold) & set(cited)) / len(set(gold))
        outcome.recall_at_k = recall_at(ranked, gold, k)
        outcome.reciprocal_rank = reciprocal_rank(ranked, gold)
    return outcome


def _condition_agrees(trial: str, want: str | None, answer: Answer, cite: list[str]) -> bool:
    """A conditional verdict is right only with the right condition: where the labels name
    the criteria that set a trial's conditions, the answer cites one of them for it."""
    if want != "allows with conditions":
        return True
    labelled = {c for c in cite if c.startswith(f"{trial}/")}
    if not labelled:
        return True
    return any(c.criterion_id in labelled for c in answer.citations if c.trial_id == trial)


def said_yes_no(text: str) -> str | None:
    """'yes', 'no' or 'not_stated' as the answer's first words say, else None."""
    start = text.strip().casefold()
    if re.match(r"yes\b", start):
        return "yes"
    if re.match(r"no\b(?!\s+trial in the corpus)", start):
        return "no"
    if re.match(r"the record (?:does not say|of .* does not state)", start):
        return "not_stated"
    return None


def named_trials(answer: Answer) -> set[str]:
    """The trials an answer puts forward: those given a verdict other than 'not stated', or
    when it gives no verdicts, those it cites."""
    if answer.abstained:
        return set()
    if answer.verdicts:
        return {v.trial_id for v in answer.verdicts if v.verdict != "not stated"}
    return {c.trial_id for c in answer.citations}


def _alternatives(value: str | list[str]) -> list[str]:
    return value if isinstance(value, list) else [value]


def _support(case: dict[str, Any]) -> list[str]:
    if "support" in case:
        return list(case["support"])
    values = case["expected"].get("contains", [])
    return [v for value in values for v in _alternatives(value)]


def _supporting_trials(expected: dict[str, Any]) -> set[str] | None:
    if "trials" in expected:
        return set(expected["trials"])
    if "verdicts" in expected:
        return {t for t, v in expected["verdicts"].items() if v not in ("not stated", "ambiguous")}
    return None


# --- the run and its report ------------------------------------------------------------------


@dataclass(slots=True)
class Report:
    set_name: str
    backend: str
    index: str
    k: int
    outcomes: list[Outcome]
    thresholds: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def rows(self) -> dict[str, dict[str, float | int | None]]:
        """Per category, then 'all': the counts and mean scores."""
        categories = sorted({o.category for o in self.outcomes})
        table = {c: summarise([o for o in self.outcomes if o.category == c]) for c in categories}
        table["all"] = summarise(self.outcomes)
        return table

    def kind_rows(self) -> dict[str, dict[str, float | int | None]]:
        """Per kind of question (where the set labels kinds): answers right, and how often
        the question stage read that kind."""
        labelled = [o for o in self.outcomes if o.kind]
        rows: dict[str, dict[str, float | int | None]] = {}
        for kind in [k for k in KINDS if any(o.kind == k for o in labelled)]:
            mine = [o for o in labelled if o.kind == kind]
            rows[kind] = {
                "n": len(mine),
                "answer_accuracy": _mean(o.correct for o in mine),
                "understood": _mean(o.understood == kind for o in mine),
            }
        if labelled:
            rows["all"] = {
                "n": len(labelled),
                "answer_accuracy": _mean(o.correct for o in labelled),
                "understood": _mean(o.understood == o.kind for o in labelled),
            }
        return rows

    def confusion(self) -> dict[str, dict[tuple[str, str], int]]:
        """Per category with verdict questions: how often each expected verdict was given as
        each verdict (a conditional verdict citing the wrong criterion counts where it was
        given, though it is scored wrong)."""
        table: dict[str, dict[tuple[str, str], int]] = {}
        for o in self.outcomes:
            for pair in o.pairs:
                counts = table.setdefault(o.category, {})
                counts[pair] = counts.get(pair, 0) + 1
        return dict(sorted(table.items()))

    def failures(self) -> list[str]:
        """One line per metric below its threshold."""
        overall = summarise(self.outcomes)
        lines = []
        for metric, minimum in self.thresholds.items():
            value = overall[metric]
            if value is not None and value < minimum - 1e-9:
                lines.append(f"{metric} {value:.3f} is below the threshold {minimum:.3f}")
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "set": self.set_name,
            "backend": self.backend,
            "index": self.index,
            "k": self.k,
            "seconds": round(self.seconds, 3),
            "thresholds": self.thresholds,
            "failures": self.failures(),
            "categories": self.rows(),
            "kinds": self.kind_rows(),
            "confusion": {
                category: [
                    {"expected": w, "given": g, "n": n} for (w, g), n in sorted(counts.items())
                ]
                for category, counts in self.confusion().items()
            },
            "questions": [asdict(o) for o in self.outcomes],
        }

    def to_markdown(self) -> str:
        """The table, the threshold verdict, and the wrong answers (the first 50)."""
        wrong = [o for o in self.outcomes if not o.correct]
        listing = "".join(
            f"\n- {o.id} [{o.category}] {o.question!r} -> {_short(o.error or o.answer)!r}"
            for o in wrong[:50]
        )
        if wrong:
            more = f" (first 50 of {len(wrong)})" if len(wrong) > 50 else ""
            listing = f"\n\n## Wrong answers{more}\n{listing}"
        return self.table() + self.confusion_tables() + "\n\n" + self.verdict() + listing + "\n"

    def confusion_tables(self) -> str:
        """Per category with verdict questions, expected verdicts (rows) against the verdicts
        given (columns), as Markdown."""
        out = []
        for category, counts in self.confusion().items():
            out += [
                "",
                f"### {category}: expected (rows) against given (columns)",
                "",
                "| expected | " + " | ".join(VERDICTS) + " |",
                "|---" * (len(VERDICTS) + 1) + "|",
            ]
            for want in VERDICTS:
                row = [str(counts.get((want, got), 0)) for got in VERDICTS]
                out.append(f"| {want} | " + " | ".join(row) + " |")
        return "\n".join(["", *out]) if out else ""

    def verdict(self) -> str:
        """'All thresholds met: ...', or one '- FAIL: ...' line per metric below its minimum."""
        failures = self.failures()
        if failures:
            return "\n".join(f"- FAIL: {f}" for f in failures)
        if not self.thresholds:
            return "No thresholds set."
        return "All thresholds met: " + ", ".join(
            f"{m} >= {v:g}" for m, v in self.thresholds.items()
        )

    def table(self) -> str:
        """A heading and the per-category table, as Markdown."""
        head = (
            f"# Eval: {self.set_name} ({len(self.outcomes)} questions, backend {self.backend}, "
            f"index {self.index}, k={self.k})\n\n"
        )
        columns = (
            ("n", "n"),
            ("answer", "answer_accuracy"),
            ("verdicts", "verdict_accuracy"),
            ("abstain ok", "abstention_accuracy"),
            ("answered ok", "answered_accuracy"),
            ("wrong on unanswerable", "wrong_on_unanswerable"),
            ("false abstain", "false_abstentions"),
            ("cite P", "citation_precision"),
            ("cite R", "citation_recall"),
            (f"R@{self.k}", "recall_at_k"),
            ("MRR", "mrr"),
            ("ms/q", "ms_mean"),
            ("p95 ms", "ms_p95"),
            ("errors", "errors"),
        )
        lines = [
            "| category | " + " | ".join(label for label, _ in columns) + " |",
            "|---" * (len(columns) + 1) + "|",
        ]
        for category, row in self.rows().items():
            cells = [
                _ms(row[key]) if key.startswith("ms_") else _cell(row[key]) for _, key in columns
            ]
            name = f"**{category}**" if category == "all" else category
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        kinds = self.kind_rows()
        if kinds:
            lines += ["", "| kind | n | answer | understood as this kind |", "|---|---|---|---|"]
            for kind, row in kinds.items():
                name = f"**{kind}**" if kind == "all" else kind
                cells = [_cell(row[key]) for key in ("n", "answer_accuracy", "understood")]
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
        return head + "\n".join(lines)

    def write(self, folder: Path = RESULTS_DIR) -> tuple[Path, Path]:
        """Write <set>-<backend>.md and .json under `folder`, each replaced in one step."""
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{self.set_name}-{self.backend}"
        written = []
        for suffix, text in (
            (".md", self.to_markdown()),
            (".json", json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n"),
        ):
            path = folder / f"{stem}{suffix}"
            partial = path.with_name(f".{path.name}.partial")
            partial.write_text(text, encoding="utf-8")
            partial.replace(path)
            written.append(path)
        return written[0], written[1]


def summarise(outcomes: list[Outcome]) -> dict[str, float | int | None]:
    """Counts and mean scores over some outcomes (None where nothing applies)."""
    unanswerable = [o for o in outcomes if o.unanswerable]
    answerable = [o for o in outcomes if not o.unanswerable]
    times = sorted(o.ms for o in outcomes)
    return {
        "n": len(outcomes),
        "answer_accuracy": _mean(o.correct for o in outcomes),
        "verdict_accuracy": _mean(o.verdict_accuracy for o in outcomes),
        "abstention_accuracy": _mean(o.correct for o in unanswerable),
        "answered_accuracy": _mean(o.correct for o in answerable),
        "wrong_on_unanswerable": sum(1 for o in unanswerable if not o.abstained),
        "false_abstentions": sum(1 for o in answerable if o.abstained),
        "citation_precision": _mean(o.citation_precision for o in outcomes),
        "citation_recall": _mean(o.citation_recall for o in outcomes),
        "recall_at_k": _mean(o.recall_at_k for o in outcomes),
        "mrr": _mean(o.reciprocal_rank for o in outcomes),
        "ms_mean": _mean(o.ms for o in outcomes),
        "ms_p95": times[min(len(times) - 1, math.ceil(0.95 * len(times)) - 1)] if times else None,
        "errors": sum(1 for o in outcomes if o.error),
    }


def _mean(values: Iterable[float | bool | None]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return sum(present) / len(present) if present else None


def _cell(value: float | int | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.3f}" if value <= 1 else f"{value:.0f}"


def _ms(value: float | int | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run(
    eval_set: EvalSet,
    assistant: Assistant,
    *,
    backend: str,
    index: str,
    k: int | None = None,
    thresholds: dict[str, float] | None = None,
    progress: Callable[[Outcome], None] | None = None,
) -> Report:
    """Ask every question of the set (follow-ups within their conversation) and score it.

    A backend error on one question is recorded as a wrong answer and the run goes on; after
    MAX_CONSECUTIVE_ERRORS in a row (a server down) the rest are recorded with the same error
    without asking.
    """
    from rag.llm.base import BackendError

    k = k or int(eval_set.meta.get("k", DEFAULT_K))
    limits = {**check_thresholds(eval_set.meta.get("thresholds", {}), str(eval_set.path))}
    limits.update(thresholds or {})
    conversations: dict[str, Conversation] = {}
    outcomes = []
    failing, last_error = 0, ""
    assistant.retriever.search(eval_set.questions[0]["question"], k=1)  # load the model first
    started = time.perf_counter()
    for case in eval_set.questions:
        conversation = conversations.setdefault(
            case.get("conversation", case["id"]), Conversation()
        )
        start = time.perf_counter()
        try:
            if failing >= MAX_CONSECUTIVE_ERRORS:
                raise BackendError(f"not asked after {failing} failures in a row: {last_error}")
            answer = assistant.ask(case["question"], conversation=conversation)
        except BackendError as exc:
            failing += 1
            last_error = last_error if failing > MAX_CONSECUTIVE_ERRORS else str(exc)
            outcome = Outcome(
                id=case["id"],
                category=case["category"],
                question=case["question"],
                answer="",
                expected=case["expected"],
                correct=False,
                abstained=False,
                ms=(time.perf_counter() - start) * 1000,
                error=str(exc),
            )
        else:
            failing = 0
            outcome = score(case, answer, k, (time.perf_counter() - start) * 1000)
        outcomes.append(outcome)
        if progress is not None:
            progress(outcome)
    return Report(
        eval_set.name,
        backend,
        index,
        k,
        outcomes,
        limits,
        time.perf_counter() - started,
    )


# --- typed criteria ---------------------------------------------------------------------------

# Integer scales, where "< 2" and "<= 1" are one limit.
_WHOLE_SCALES = frozenset({"ecog", "prior_lines"})


def _limit_key(what: str, op: str, value: float) -> tuple[str, str, float]:
    if what in _WHOLE_SCALES and op in ("<", ">"):
        return (what, "<=" if op == "<" else ">=", value - 1 if op == "<" else value + 1)
    return (what, op, float(value))


def typed_scores(path: Path) -> dict[str, dict[str, float | int]]:
    """Precision and recall of rag.facts against hand-labelled criteria (eval/typed_criteria):
    concepts, (concept, direction) pairs and numeric limits (what, op, value), each scored over
    the concepts and limit names the curated table types, and concepts also over every label."""
    from rag.facts import CONCEPTS, type_criterion

    typed_limits = {"age", "ecog", "washout", "life_expectancy", "karnofsky", "platelets",
                    "neutrophils", "hemoglobin", "wbc", "creatinine", "creatinine_clearance",
                    "bilirubin", "ast_alt", "albumin", "inr", "lvef", "qtc"}  # fmt: skip
    counts: dict[str, list[int]] = {k: [0, 0, 0] for k in ("concepts", "directions", "limits")}
    every = [0, 0]  # labelled concepts found, labelled concepts in all
    for line in path.read_text(encoding="utf-8").splitlines():
        case = json.loads(line)
        if "meta" in case:
            continue
        typed = type_criterion(case["criterion_id"], case["section"], case["text"])
        expected = case["expected"]
        want_c = {c["concept"] for c in expected["concepts"] if c["concept"] in CONCEPTS}
        got_c = {m.concept for m in typed.mentions}
        want_d = {(c["concept"], c["direction"]) for c in expected["concepts"]} & {
            (c, d) for c in CONCEPTS for d in ("required", "excluded", "allowed")
        }
        got_d = {(m.concept, m.direction) for m in typed.mentions}
        want_l = {
            _limit_key(x["what"], x["op"], float(x["value"]))
            for x in expected["limits"]
            if x["what"] in typed_limits
        }
        got_l = {_limit_key(x.what, x.op, x.value) for x in typed.limits}
        pairs: tuple[tuple[str, set[Any], set[Any]], ...] = (
            ("concepts", want_c, got_c),
            ("directions", want_d, got_d),
            ("limits", want_l, got_l),
        )
        for name, want, got in pairs:
            counts[name][0] += len(want & got)
            counts[name][1] += len(got)
            counts[name][2] += len(want)
        all_c = {c["concept"] for c in expected["concepts"]}
        every[0] += len(all_c & got_c)
        every[1] += len(all_c)
    scores: dict[str, dict[str, float | int]] = {}
    for name, (hits, typed_n, labelled_n) in counts.items():
        scores[name] = {
            "precision": hits / typed_n if typed_n else 1.0,
            "recall": hits / labelled_n if labelled_n else 1.0,
            "labelled": labelled_n,
        }
    scores["concepts_all_labels"] = {"recall": every[0] / every[1] if every[1] else 1.0}
    return scores
