"""The `rag` command line. The only place a RagError becomes a stderr line and exit code 1."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import fields
from pathlib import Path
from typing import Annotated

import typer

from rag.ingest import FileReport, ingest_paths
from rag.types import Trial

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
    if f.name not in {"id", "source", "criteria", "warnings", "eligibility_text", "enrollment_raw"}
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
        bool, typer.Option("--json", help="Print one Trial per line (JSON Lines).")
    ] = False,
) -> None:
    """Parse trial records into the Trial model and show what each file gave.

    Formats are recognised by content: registry pages saved as text (four site layouts, else
    generic text), ClinicalTrials.gov API v2 JSON (a study, an export array or an API page)
    and legacy registry XML. A file that cannot be read is reported and the rest go on; the
    exit code is 1 only when nothing could be read.
    """
    reports = ingest_paths(paths)
    for report in reports:
        if report.error:
            typer.echo(f"error: {report.error}", err=True)
        if as_json:
            for warning in report.warnings:
                typer.echo(f"warning: {report.path}: {warning}", err=True)
            for trial in report.trials:
                typer.echo(json.dumps(trial.to_dict(), ensure_ascii=False))
        elif report.trials:
            _print_table(report)
    trials = [t for r in reports for t in r.trials]
    summary = _summary(reports)
    typer.echo(summary, err=as_json)
    if not trials:
        raise typer.Exit(1)


def _print_table(report: FileReport) -> None:
    typer.echo(f"{report.path}  [{report.format}]")
    header = f"  {'id':<14} {'fields':>6} {'incl':>5} {'excl':>5}  warnings"
    typer.echo(header)
    for trial in report.trials:
        found = sum(1 for name in _STATED_FIELDS if getattr(trial, name) is not None)
        incl = len(trial.criteria_in("inclusion"))
        excl = len(trial.criteria_in("exclusion"))
        notes = "; ".join(trial.warnings) or "-"
        typer.echo(
            f"  {trial.id:<14} {found:>3}/{len(_STATED_FIELDS):<2} {incl:>5} {excl:>5}  {notes}"
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
