"""Formats by content, bad input, and the `rag ingest` command as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rag.cli import app
from rag.errors import IngestError
from rag.ingest import MAX_FILE_BYTES, ingest_file, ingest_paths

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
ELIGIBILITY = (
    "Inclusion Criteria:\n\n* Age ≥ 18 years\n* ECOG 0-1\n\n"
    "Exclusion Criteria:\n\n* Prior anti-PD-1 therapy\n  * including nivolumab\n"
)
SAMPLE_STUDY: dict[str, Any] = {
    "protocolSection": {
        "identificationModule": {
            "nctId": "NCT01234567",
            "briefTitle": "Camrelizumab in ESCC",
            "officialTitle": "A Phase II Study of Camrelizumab in ESCC",
        },
        "statusModule": {
            "overallStatus": "NOT_YET_RECRUITING",
            "startDateStruct": {"date": "2024-03", "type": "ESTIMATED"},
            "completionDateStruct": {"date": "2026-12-31", "type": "ESTIMATED"},
        },
        "sponsorCollaboratorsModule": {
            "leadSponsor": {"name": "Fudan University"},
            "collaborators": [{"name": "Shanghai Chest Hospital"}],
        },
        "descriptionModule": {"briefSummary": "A short summary."},
        "conditionsModule": {"conditions": ["Esophageal Squamous Cell Carcinoma"]},
        "designModule": {
            "studyType": "INTERVENTIONAL",
            "phases": ["PHASE1", "PHASE2"],
            "enrollmentInfo": {"count": 40, "type": "ESTIMATED"},
        },
        "armsInterventionsModule": {"interventions": [{"type": "DRUG", "name": "Camrelizumab"}]},
        "outcomesModule": {"primaryOutcomes": [{"measure": "Progression-free survival"}]},
        "eligibilityModule": {
            "eligibilityCriteria": ELIGIBILITY,
            "sex": "ALL",
            "minimumAge": "18 Years",
            "maximumAge": "75 Years",
            "healthyVolunteers": False,
        },
    }
}
SAMPLE_XML = """<?xml version="1.0" encoding="UTF-8"?>
<clinical_study>
  <id_info><nct_id>NCT00000999</nct_id></id_info>
  <brief_title>Radiotherapy for Oligometastases</brief_title>
  <sponsors><lead_sponsor><agency>Zhejiang Cancer Hospital</agency></lead_sponsor></sponsors>
  <overall_status>Active, not recruiting</overall_status>
  <start_date>January 2003</start_date>
  <phase>Phase 2/Phase 3</phase>
  <study_type>Interventional</study_type>
  <enrollment type="Anticipated">0</enrollment>
  <condition>Esophageal Cancer</condition>
  <eligibility>
    <criteria>
      <textblock>
        Inclusion Criteria:&#xD;
&#xD;
          -  Age 18 to 75&#xD;
&#xD;
        Exclusion Criteria:&#xD;
&#xD;
          -  Brain metastases&#xD;
      </textblock>
    </criteria>
    <gender>Female</gender>
    <minimum_age>6 Months</minimum_age>
    <maximum_age>N/A</maximum_age>
    <healthy_volunteers>No</healthy_volunteers>
  </eligibility>
</clinical_study>
"""


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def check_spans(trial_text: str | None, criteria: Any) -> None:
    assert trial_text is not None
    for c in criteria:
        assert trial_text[c.span[0] : c.span[1]] == c.text


@pytest.mark.parametrize(
    ("wrap", "fmt"),
    [
        (lambda s: s, "ctgov-v2-study"),
        (lambda s: [s, {"hasResults": False}], "ctgov-v2-export"),
        (lambda s: {"studies": [s], "nextPageToken": "abc"}, "ctgov-v2-page"),
    ],
)
def test_api_v2_json_shapes(tmp_path: Path, wrap: Any, fmt: str) -> None:
    path = write(tmp_path, "download.txt", json.dumps(wrap(SAMPLE_STUDY)))
    (report,) = ingest_paths([path])
    assert report.format == fmt
    (trial,) = report.trials
    assert trial.id == "NCT01234567"
    assert trial.title == "Camrelizumab in ESCC"
    assert trial.official_title == "A Phase II Study of Camrelizumab in ESCC"
    assert (trial.status, trial.phase, trial.study_type) == (
        "NOT_YET_RECRUITING",
        "PHASE1/PHASE2",
        "INTERVENTIONAL",
    )
    assert (trial.enrollment, trial.start_date, trial.completion_date) == (
        40,
        "2024-03",
        "2026-12-31",
    )
    assert (trial.min_age_years, trial.max_age_years, trial.sex) == (18, 75, "ALL")
    assert trial.healthy_volunteers is False
    assert trial.sponsor == "Fudan University"
    assert trial.collaborators == ("Shanghai Chest Hospital",)
    assert trial.interventions == ("Camrelizumab",)
    assert trial.primary_outcomes == ("Progression-free survival",)
    assert trial.description is None
    assert [(c.id, c.text, c.parent) for c in trial.criteria] == [
        ("NCT01234567/inclusion/1", "Age ≥ 18 years", None),
        ("NCT01234567/inclusion/2", "ECOG 0-1", None),
        ("NCT01234567/exclusion/1", "Prior anti-PD-1 therapy", None),
        ("NCT01234567/exclusion/1.1", "including nivolumab", "NCT01234567/exclusion/1"),
    ]
    assert {c.field for c in trial.criteria} == {
        "protocolSection.eligibilityModule.eligibilityCriteria"
    }
    check_spans(trial.eligibility_text, trial.criteria)
    if fmt == "ctgov-v2-export":
        assert report.warnings == ("record 1 skipped: no protocolSection",)


def test_legacy_xml(tmp_path: Path) -> None:
    (trial,) = ingest_file(write(tmp_path, "record", SAMPLE_XML))
    assert trial.source.format == "ctgov-xml"
    assert (trial.id, trial.title, trial.sponsor) == (
        "NCT00000999",
        "Radiotherapy for Oligometastases",
        "Zhejiang Cancer Hospital",
    )
    assert (trial.status, trial.phase, trial.study_type) == (
        "ACTIVE_NOT_RECRUITING",
        "PHASE2/PHASE3",
        "INTERVENTIONAL",
    )
    assert (trial.enrollment, trial.enrollment_raw) == (None, "0 (Anticipated)")
    assert (trial.start_date, trial.sex, trial.max_age_years) == ("2003-01", "FEMALE", None)
    assert trial.min_age_years == pytest.approx(0.5)
    assert trial.healthy_volunteers is False
    assert [(c.id, c.text) for c in trial.criteria] == [
        ("NCT00000999/inclusion/1", "Age 18 to 75"),
        ("NCT00000999/exclusion/1", "Brain metastases"),
    ]
    assert {c.field for c in trial.criteria} == {"eligibility/criteria/textblock"}
    check_spans(trial.eligibility_text, trial.criteria)


def test_unrecognised_text_becomes_a_generic_record(tmp_path: Path) -> None:
    text = (
        "Pembrolizumab After Chemoradiotherapy\n\nSome registry page we have never seen.\n\n"
        "Inclusion Criteria:\n1. Age 18 or over\n\nExclusion Criteria:\n1. Prior PD-1 inhibitor\n"
    )
    path = write(tmp_path, "page.txt", text)
    (report,) = ingest_paths([path])
    (trial,) = report.trials
    assert trial.source.format == "text"
    assert trial.title == "Pembrolizumab After Chemoradiotherapy"
    assert trial.description == text.strip()
    assert [c.text for c in trial.criteria] == ["Age 18 or over", "Prior PD-1 inhibitor"]
    assert any("layout not recognised" in w for w in report.warnings)
    assert trial.id.startswith("T-") and trial.id == ingest_file(path)[0].id


def test_title_derived_id_ignores_case_and_spacing(tmp_path: Path) -> None:
    a = ingest_file(write(tmp_path, "a.txt", "Trial  of X\nbody one\n"))[0]
    b = ingest_file(write(tmp_path, "b.txt", "trial of x\nbody two\n"))[0]
    c = ingest_file(write(tmp_path, "c.txt", "Trial of Y\nbody one\n"))[0]
    assert a.id == b.id != c.id


# --- bad input -------------------------------------------------------------------------------

BAD_INPUT = [
    ("empty.txt", b"", "empty file"),
    ("blank.txt", b"  \n\n ", "empty file"),
    ("image.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "binary file"),
    ("cut.json", json.dumps([SAMPLE_STUDY])[:300].encode(), "invalid JSON at line 1"),
    ("other.json", b'{"hello": "world"}', "not a ClinicalTrials.gov API v2 study"),
    ("feed.xml", b"<rss><channel/></rss>", "XML root is <rss>, not <clinical_study>"),
    ("cut.xml", SAMPLE_XML[:200].encode(), "invalid XML at line"),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD_INPUT)
def test_bad_file_gives_one_clear_line(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = write(tmp_path, name, content)
    with pytest.raises(IngestError) as caught:
        ingest_file(path)
    line = str(caught.value)
    assert "\n" not in line
    assert line.startswith(f"{path}: ")
    assert message in line


def test_oversized_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    with path.open("wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(IngestError, match=r"huge\.json: file is 10\.0 MB, over the 10 MB limit"):
        ingest_file(path)


def test_unreadable_path(tmp_path: Path) -> None:
    link = tmp_path / "gone.txt"
    link.symlink_to(tmp_path / "deleted.txt")
    with pytest.raises(IngestError, match=r"gone\.txt: cannot read \(No such file or directory\)"):
        ingest_file(link)


def test_encodings(tmp_path: Path) -> None:
    page = "Overview\n\nEssai de phase II à Lyon\n\nStatus:\nRecruiting\nParticipant gender:\nAll\n"
    bom = write(tmp_path, "bom.txt", b"\xef\xbb\xbf" + page.encode("utf-8"))
    cp = write(tmp_path, "cp.txt", page.encode("cp1252"))
    reports = {Path(r.path).name: r for r in ingest_paths([bom, cp])}
    for name in ("bom.txt", "cp.txt"):
        (trial,) = reports[name].trials
        assert trial.title == "Essai de phase II à Lyon"
        assert trial.source.format == "overview-status"
    assert reports["bom.txt"].warnings == ()
    assert reports["cp.txt"].warnings == (
        "not UTF-8; decoded as cp1252 - check accented characters",
    )


def test_folder_with_bad_files_still_ingests_the_rest(tmp_path: Path) -> None:
    for name, content, _ in BAD_INPUT:
        write(tmp_path, name, content)
    nested = tmp_path / "more" / "deeper"
    nested.mkdir(parents=True)
    write(nested, "study.json", json.dumps(SAMPLE_STUDY))
    write(tmp_path, "seed.txt", (CORPUS / "002_42162affc4e27ba9.txt").read_text())
    write(tmp_path, ".hidden", "ignored")
    result = CliRunner().invoke(app, ["ingest", str(tmp_path), "--json"])
    assert result.exit_code == 0
    ids = [json.loads(line)["id"] for line in result.stdout.splitlines()]
    assert ids == ["NCT04984096", "NCT01234567"]  # a folder's files before its subfolders
    errors = result.stderr.splitlines()
    assert len([e for e in errors if e.startswith("error: ")]) == len(BAD_INPUT)
    assert errors[-1] == (
        "9 files, 2 trials (basic-information 1, ctgov-v2-study 1), 15 criteria, "
        "7 errors, 0 warnings"
    )


def test_nothing_readable_exits_1(tmp_path: Path) -> None:
    write(tmp_path, "empty.txt", b"")
    result = CliRunner().invoke(app, ["ingest", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {tmp_path / 'empty.txt'}: empty file")


def test_ingest_table_for_the_seed_corpus() -> None:
    result = CliRunner().invoke(app, ["ingest", str(CORPUS)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].endswith("000_2a7767d01ef54209.txt  [recruitment-tracking]")
    assert lines[1].split() == ["id", "fields", "derived", "incl", "excl", "warnings"]
    # The page states 14 fields (the Design line four of them); its treatment, apatinib, only
    # in the description.
    assert lines[2].split() == ["NCT03913182", "14/36", "1", "0", "0", "-"]
    assert any(
        line.split()[:1] == ["NCT04984096"] and line.split()[3:5] == ["5", "6"] for line in lines
    )
    assert lines[-1] == (
        "5 files, 5 trials (overview-status 2, recruitment-tracking 1, status-about 1, "
        "basic-information 1), 116 criteria, 0 errors, 0 warnings"
    )


def test_ingest_json_lines_carry_the_model_fields() -> None:
    result = CliRunner().invoke(app, ["ingest", str(CORPUS / "004_ef499c8e88c3b74e.txt"), "--json"])
    assert result.exit_code == 0
    (line,) = result.stdout.splitlines()
    record = json.loads(line)
    assert list(record)[:3] == ["id", "source", "nct_id"]
    assert record["source"]["format"] == "overview-status"
    criterion = next(c for c in record["criteria"] if c["id"].endswith("/exclusion/1"))
    assert set(criterion) == {"id", "section", "text", "span", "field", "parent", "truncated"}
    source = (CORPUS / "004_ef499c8e88c3b74e.txt").read_text(encoding="utf-8")
    assert source[criterion["span"][0] : criterion["span"][1]] == criterion["text"]
    assert "anti-PD-1" in criterion["text"]
