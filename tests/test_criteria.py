"""List shapes of eligibility text -> criteria: what a reader of the text sees as one criterion."""

from __future__ import annotations

from rag.criteria import parse_criteria
from rag.types import Criterion


def tree(text: str) -> list[tuple[str, str]]:
    """(path after the prefix, folded text) per criterion, after checking every span."""
    criteria = parse_criteria(text, "T")
    for c in criteria:
        assert text[c.span[0] : c.span[1]] == c.text
    return [(c.id.removeprefix("T/"), c.plain) for c in criteria]


def by_id(text: str) -> dict[str, Criterion]:
    return {c.id.removeprefix("T/"): c for c in parse_criteria(text, "T")}


def test_numbered_lists_under_both_headings() -> None:
    text = (
        "Inclusion Criteria:\n\n1. Age 18 or over\n2. ECOG 0-1\n\n"
        "Exclusion Criteria:\n\n1. Pregnant\n"
    )
    assert tree(text) == [
        ("inclusion/1", "Age 18 or over"),
        ("inclusion/2", "ECOG 0-1"),
        ("exclusion/1", "Pregnant"),
    ]


def test_markdown_bullets_nest_by_indentation() -> None:
    text = (
        "Inclusion Criteria:\n\n"
        "* Adequate organ function:\n"
        "  * ANC ≥ 1.5 x 10^9/L\n"
        "  * Platelets ≥ 100 x 10^9/L\n"
        "* Signed consent\n\n"
        "Exclusion Criteria:\n\n"
        "* Prior anti-PD-1 therapy\n"
    )
    found = by_id(text)
    assert list(found) == [
        "inclusion/1",
        "inclusion/1.1",
        "inclusion/1.2",
        "inclusion/2",
        "exclusion/1",
    ]
    assert found["inclusion/1.2"].text == "Platelets ≥ 100 x 10^9/L"
    assert found["inclusion/1.2"].parent == "T/inclusion/1"
    assert found["inclusion/2"].parent is None
    assert not found["inclusion/1"].truncated


def test_lettered_and_roman_sub_items() -> None:
    text = (
        "Inclusion Criteria:\n"
        "1. Laboratory values:\n"
        "a. Hemoglobin ≥ 9 g/dL\n"
        "b. Creatinine ≤ 1.5 x ULN\n"
        "2. One of the following:\n"
        "i. prior surgery\n"
        "ii. prior radiotherapy\n"
        "3. Consent\n"
    )
    assert tree(text) == [
        ("inclusion/1", "Laboratory values:"),
        ("inclusion/1.1", "Hemoglobin ≥ 9 g/dL"),
        ("inclusion/1.2", "Creatinine ≤ 1.5 x ULN"),
        ("inclusion/2", "One of the following:"),
        ("inclusion/2.1", "prior surgery"),
        ("inclusion/2.2", "prior radiotherapy"),
        ("inclusion/3", "Consent"),
    ]


def test_wrapped_lines_join_one_criterion() -> None:
    long_line = "word " * 16
    text = (
        "Inclusion Criteria:\n\n"
        f"1. Patients with histologically confirmed squamous cell carcinoma {long_line.strip()}\n"
        "of the esophagus, stage IV.\n\n"
        f"2. ECOG performance status of 0 or 1 as judged by the investigator {long_line.strip()}\n"
        "at screening.\n"
        f"3. Life expectancy of at least twelve weeks as judged by the investigator {long_line}\n"
    )
    found = tree(text)
    assert [path for path, _ in found] == ["inclusion/1", "inclusion/2", "inclusion/3"]
    assert found[0][1].endswith("word of the esophagus, stage IV.")
    assert "\n" in by_id(text)["inclusion/1"].text


def test_unnumbered_lines_are_one_criterion_each() -> None:
    text = (
        "Inclusion criteria\n"
        "Histologically confirmed esophageal squamous cell carcinoma (excluding mixed type )\n"
        "ECOG performance status 0 or 1.\n"
        "Exclusion criteria\n"
        "Pregnant or lactating women.\n"
    )
    assert tree(text) == [
        (
            "inclusion/1",
            "Histologically confirmed esophageal squamous cell carcinoma (excluding mixed type )",
        ),
        ("inclusion/2", "ECOG performance status 0 or 1."),
        ("exclusion/1", "Pregnant or lactating women."),
    ]


def test_cut_off_list_is_kept_and_marked_truncated() -> None:
    text = (
        "Exclusion criteria\n"
        "Have received any of the following treatments:\n"
        "A history of immunodeficiency, including a positive HIV test or organ transplantation.\n"
    )
    found = by_id(text)
    assert found["exclusion/1"].text == "Have received any of the following treatments:"
    assert found["exclusion/1"].truncated
    assert found["exclusion/2"].parent is None
    assert not found["exclusion/2"].truncated


def test_restarted_numbering_nests_and_outer_list_resumes() -> None:
    text = (
        "Inclusion Criteria:\n\n"
        "1. Oligometastatic disease.\n\nNote:\n\n"
        "1. Definition of metastasis.\n\n2. Synchronous or metachronous.\n\n"
        "2. At most 4 metastases.\n\n"
        "1. Each lesion counted separately.\n\n2. Subsided lesions not counted.\n\n"
        "3. No prior local treatment of metastases.\n"
    )
    assert [path for path, _ in tree(text)] == [
        "inclusion/1",
        "inclusion/1.1",
        "inclusion/1.2",
        "inclusion/2",
        "inclusion/2.1",
        "inclusion/2.2",
        "inclusion/3",
    ]
    assert by_id(text)["inclusion/1"].plain == "Oligometastatic disease. Note:"


def test_nested_numbering_that_outlasts_the_outer_number() -> None:
    """A sub-list 1-3 under item 2 must not be read as the outer list's item 3."""
    text = (
        "1. Adults.\n"
        "2. Adequate blood counts:\n"
        "1. Hemoglobin ≥ 9 g/dL.\n"
        "2. Platelets ≥ 100.\n"
        "3. Neutrophils ≥ 1.5.\n"
        "3. Signed consent.\n"
    )
    assert [path for path, _ in tree(text)] == [
        "inclusion/1",
        "inclusion/2",
        "inclusion/2.1",
        "inclusion/2.2",
        "inclusion/2.3",
        "inclusion/3",
    ]


def test_inline_enumeration_splits_into_children() -> None:
    text = (
        "Exclusion Criteria:\n"
        "1. Cardiovascular disease, including: (1) Heart failure above NYHA II; (2)\n"
        "Unstable angina; ( 3) Myocardial infarction within 1 year;\n"
        "2. Brain metastases.\n"
    )
    found = by_id(text)
    assert found["exclusion/1"].text == "Cardiovascular disease, including:"
    assert found["exclusion/1.1"].text == "Heart failure above NYHA II;"
    assert found["exclusion/1.2"].text == "Unstable angina;"
    assert found["exclusion/1.3"].text == "Myocardial infarction within 1 year;"
    assert found["exclusion/2"].parent is None


def test_value_lines_under_a_colon_line() -> None:
    text = (
        "Inclusion criteria\n"
        "The main organs function normally:\n"
        "(1) Blood routine examination:\n"
        "HB≥90g/L;\n"
        "PLT ≥ 80 × 109 / L. (2) Biochemical examination:\n"
        "Women of childbearing potential should agree to use an adequate contraception method.\n"
    )
    assert tree(text) == [
        ("inclusion/1", "The main organs function normally:"),
        ("inclusion/1.1", "Blood routine examination:"),
        ("inclusion/1.1.1", "HB≥90g/L;"),
        ("inclusion/1.1.2", "PLT ≥ 80 × 109 / L."),
        ("inclusion/1.2", "Biochemical examination:"),
        (
            "inclusion/2",
            "Women of childbearing potential should agree to use an adequate contraception method.",
        ),
    ]
    assert by_id(text)["inclusion/1.2"].truncated


def test_xml_textblock_with_crlf_and_pdq_headings() -> None:
    text = (
        "\n        DISEASE CHARACTERISTICS:\r\n\r\n"
        "          -  Histologically confirmed adenocarcinoma of the prostate that is\r\n"
        "             metastatic\r\n\r\n"
        "        PATIENT CHARACTERISTICS:\r\n\r\n"
        "        Age:\r\n\r\n"
        "          -  18 and over\r\n\r\n"
        "        Performance status:\r\n\r\n"
        "          -  ECOG 0-2\r\n\r\n"
        "        PRIOR CONCURRENT THERAPY:\r\n\r\n"
        "          -  No prior chemotherapy\r\n      "
    )
    assert tree(text) == [
        ("inclusion/1", "DISEASE CHARACTERISTICS:"),
        (
            "inclusion/1.1",
            "Histologically confirmed adenocarcinoma of the prostate that is metastatic",
        ),
        ("inclusion/2", "PATIENT CHARACTERISTICS:"),
        ("inclusion/2.1", "Age:"),
        ("inclusion/2.1.1", "18 and over"),
        ("inclusion/2.2", "Performance status:"),
        ("inclusion/2.2.1", "ECOG 0-2"),
        ("inclusion/3", "PRIOR CONCURRENT THERAPY:"),
        ("inclusion/3.1", "No prior chemotherapy"),
    ]


def test_decimals_and_ranges_are_not_list_markers() -> None:
    text = "Inclusion Criteria:\n* Bilirubin\n1.5 x ULN or less\n* Age 18 - 75\n"
    assert [path for path, _ in tree(text)] == ["inclusion/1", "inclusion/1.1", "inclusion/2"]


def test_heading_with_inline_criterion_and_no_heading_at_all() -> None:
    assert tree("Exclusion criteria: prior anti-PD-1 therapy") == [
        ("exclusion/1", "prior anti-PD-1 therapy")
    ]
    assert tree("Adults with ESCC.") == [("inclusion/1", "Adults with ESCC.")]
    assert tree("   \n\n") == []


def test_flat_bullets_under_a_label_form_a_sub_list() -> None:
    """One bullet style, one indent: value lines after "Label:" belong to it (NCT02369484)."""
    text = (
        "Inclusion Criteria:\n\n"
        "* Life expectancy \\>3 months.\n"
        "* Adequate haematological function:\n"
        "* WBC ≥ 2000/μL\n"
        "* haemoglobin ≥ 9 g/dL\n"
        "* Adequate liver function:\n"
        "* Total bilirubin ≤ 1.5 × ULN (except subjects with Gilbert Syndrome, who can have "
        "total bilirubin \\< 3.0 mg/dL)\n"
        "* ALT \\< 2.5 × ULN\n"
        "* Adequate renal function: Calculated creatinine clearance ≥ 45mL/min\n"
        "* Patient capable of proper therapeutic compliance, and accessible for followup.\n"
    )
    assert [path for path, _ in tree(text)] == [
        "inclusion/1",
        "inclusion/2",
        "inclusion/2.1",
        "inclusion/2.2",
        "inclusion/3",
        "inclusion/3.1",
        "inclusion/3.2",
        "inclusion/4",
        "inclusion/5",
    ]


def test_unmarked_paragraph_ending_in_a_colon_heads_the_next_list() -> None:
    """NCT04318938: "Male patients ..., who:" is not part of the female item before it."""
    text = (
        "12. Female patients who:\n\n"
        "    * are postmenopausal for at least 1 year, OR\n"
        "    * are surgically sterile.\n\n"
        "Male patients, even if surgically sterilized (i.e., status post-vasectomy), who:\n\n"
        "* agree to practice effective barrier contraception, OR\n"
        "* agree to completely abstain from heterosexual intercourse.\n"
    )
    found = by_id(text)
    assert list(found) == [
        "inclusion/1",
        "inclusion/1.1",
        "inclusion/1.2",
        "inclusion/2",
        "inclusion/2.1",
        "inclusion/2.2",
    ]
    assert found["inclusion/2"].text.startswith("Male patients, even if surgically sterilized")
    assert found["inclusion/1.2"].text == "are surgically sterile."
