"""How a filter's value is matched against a trial's values, as a user asking means it."""

from __future__ import annotations

import pytest

from rag.filters import matches


@pytest.mark.parametrize(
    ("value", "text", "match", "fits"),
    [
        # A disease's words for the same thing, and histology between organ and disease.
        ("esophageal cancer", "Esophageal Squamous Cell Carcinoma", "phrase", True),
        ("esophageal cancer", "Oesophageal Neoplasms", "phrase", True),
        ("lung cancer", "Non-Small Cell Lung Cancer", "phrase", True),
        ("solid tumors", "Advanced Solid Tumours", "phrase", True),
        ("lung cancer", "Lung Metastases From Breast Cancer", "phrase", False),
        ("cancer lung", "Lung Cancer", "phrase", False),  # the order stays
        ("PD-1 inhibitor", "PD-1 checkpoint inhibitor", "phrase", True),
        ("Shanghai Chest Hospital", "Zhigang Li, Shanghai Chest Hospital", "phrase", True),
        # A sponsor's name whole: "Sanofi" is not "Genzyme, a Sanofi Company".
        ("Sanofi", "Genzyme, a Sanofi Company", "exact", False),
        ("Sanofi", "sanofi", "exact", True),
        ("oesophageal cancer", "Cancer, Esophageal", "words", True),
    ],
)
def test_matches(value: str, text: str, match: str, fits: bool) -> None:
    assert matches(value, [text], match) is fits  # type: ignore[arg-type]
