"""The question generator: answers read from the records themselves, several phrasings, and
'which trials' sets that hold every matching record."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rag import evalgen, evaluation
from rag.cli import app

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

XML = """<clinical_study>
  <id_info><nct_id>{nct}</nct_id></id_info>
  <brief_title>{title}</brief_title>
  <sponsors><lead_sponsor><agency>{sponsor}</agency></lead_sponsor></sponsors>
  <overall_status>Active, not recruiting</overall_status>
  <start_date>April 1982</start_date>
  <phase>Phase 1/Phase 2</phase>
  <enrollment type="Actual">1200</enrollment>
  <condition>Lung Cancer</condition>
  <intervention><intervention_type>Drug</intervention_type>
    <intervention_name>Cisplatin</intervention_name></intervention>
  <eligibility><gender>Female</gender><minimum_age>40 Years</minimum_age>
    <maximum_age>N/A</maximum_age></eligibility>
</clinical_study>"""


def _study(nct: str, sponsor: str, condition: str) -> dict[str, object]:
    return {
        "protocolSection": {
            "identificationModule": {"nctId": nct, "briefTitle": f"Study {nct}"},
            "statusModule": {
                "overallStatus": "RECRUITING",
                "startDateStruct": {"date": "2023-07-13"},
            },
            "designModule": {"phases": ["PHASE3"], "enrollmentInfo": {"count": 50}},
            "sponsorCollaboratorsModule": {"leadSponsor": {"name": sponsor}},
            "eligibilityModule": {"sex": "ALL", "minimumAge": "18 Years"},
            "conditionsModule": {"conditions": [condition]},
            "armsInterventionsModule": {"interventions": [{"name": "Cisplatin"}]},
        }
    }


@pytest.fixture
def records(tmp_path: Path) -> Path:
    folder = tmp_path / "records"
    folder.mkdir()
    for i, sponsor in enumerate(["Acme", "Acme", "Beta"]):
        nct = f"NCT0000000{i}"
        (folder / f"{nct}.xml").write_text(XML.format(nct=nct, title=f"Trial {i}", sponsor=sponsor))
    studies = [_study("NCT10000001", "Acme", "Non-Small Cell Lung Cancer")]
    studies.append(_study("NCT10000002", "Gamma", "Asthma"))
    (folder / "export.json").write_text(json.dumps(studies))
    (folder / "notes.txt").write_text("not a record")
    return folder


def test_fields_are_read_from_the_records_as_written(records: Path) -> None:
    found = {r.nct_id: r for r in evalgen.read_records([records])}
    assert sorted(found) == [
        "NCT00000000",
        "NCT00000001",
        "NCT00000002",
        "NCT10000001",
        "NCT10000002",
    ]
    xml = found["NCT00000000"]
    assert xml.phases == ("Phase 1", "Phase 2")
    assert (xml.status, xml.enrollment, xml.sex) == ("Active, not recruiting", 1200, "Female")
    assert (xml.min_age, xml.max_age, xml.start_date) == ("40 Years", None, "April 1982")
    assert (xml.conditions, xml.interventions) == (("Lung Cancer",), ("Cisplatin",))
    api = found["NCT10000001"]
    assert api.phases == ("Phase 3",)
    assert (api.status, api.sponsor, api.sex) == ("Recruiting", "Acme", "All")


def test_questions_carry_the_records_values(records: Path) -> None:
    questions = evalgen.generate([records], n=60, seed=1, which_share=0.3)
    by_field: dict[str, list[dict[str, Any]]] = {}
    for q in questions:
        by_field.setdefault(q["category"], []).append(q)
    for q in by_field["phase"]:
        assert q["expected"] in (
            {"contains": ["Phase 1", "Phase 2"]},
            {"contains": ["Phase 3"]},
        )
    for q in by_field["enrollment"]:
        assert q["expected"]["contains"] in (["1200"], ["50"])
    # 'max_age' is N/A in every XML record and absent in the JSON ones: never asked.
    assert "max_age" not in by_field
    # Lung cancer is a phrase of both the XML condition and the JSON one.
    which = [q for q in questions if q["category"] == "which-condition"]
    lung = [q for q in which if "Lung Cancer" in q["question"]]
    assert lung and lung[0]["expected"]["trials"] == [
        "NCT00000000",
        "NCT00000001",
        "NCT00000002",
        "NCT10000001",
    ]
    sponsors = [q for q in questions if q["category"] == "which-sponsor"]
    assert sponsors and all(
        q["expected"]["trials"] == ["NCT00000000", "NCT00000001", "NCT10000001"]
        for q in sponsors
        if "Acme" in q["question"]
    )
    # The same seed gives the same set; another seed other phrasings.
    assert questions == evalgen.generate([records], n=60, seed=1, which_share=0.3)
    other = evalgen.generate([records], n=60, seed=2, which_share=0.3)
    assert [q["question"] for q in other] != [q["question"] for q in questions]


def test_a_trial_whose_records_disagree_is_left_out(records: Path) -> None:
    (records / "copy.json").write_text(json.dumps([_study("NCT10000002", "Delta", "Asthma")]))
    questions = evalgen.generate([records], n=80, seed=0, which_share=0.3)
    assert not any("NCT10000002" in q["question"] for q in questions)
    assert not any("Delta" in q["question"] or "Gamma" in q["question"] for q in questions)


def test_the_generator_does_not_use_the_parser() -> None:
    code = "import sys, rag.evalgen; print(sorted(m for m in sys.modules if m.startswith('rag')))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "rag.ingest" not in loaded and "rag.normalize" not in loaded, loaded


def test_generate_eval_writes_a_set_rag_eval_reads(records: Path, tmp_path: Path) -> None:
    out = tmp_path / "generated.jsonl"
    result = CliRunner().invoke(
        app, ["generate-eval", str(records), "--out", str(out), "--n", "40", "--index", "x"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Wrote 40 questions to {out}: ")
    loaded = evaluation.load_set(str(out))
    assert loaded.meta["index"] == "x" and loaded.meta["generated"] == {"n": 40, "seed": 0}
    assert len(loaded.questions) == 40


def test_no_records_is_one_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["generate-eval", str(tmp_path), "--out", str(tmp_path / "x.jsonl")]
    )
    assert result.exit_code == 1
    assert result.stderr == (
        "error: No JSON or XML trial records found; point the generator at them\n"
    )


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data is not beside the project")
def test_a_set_of_600_over_shared_data() -> None:
    questions = evalgen.generate([SHARED], n=600, seed=0)
    assert len(questions) == 600
    categories = Counter(q["category"] for q in questions)
    assert set(categories) >= set(evalgen._FIELDS) | {"unstated", "which-sponsor"}
    assert len({q["question"] for q in questions}) == 600
    # Values checked by hand against ctgov-xml/NCT00000152.xml.
    record = next(evalgen.read_records([SHARED / "ctgov-xml" / "NCT00000152.xml"]))
    assert (record.sex, record.min_age, record.max_age) == ("Male", "40 Years", "84 Years")
    assert (record.phases, record.start_date) == (("Phase 3",), "April 1982")
    assert record.status == "Unknown status"
