"""Trial -> chunks: ids, texts that stand alone, spans that point back into the record."""

from __future__ import annotations

from pathlib import Path

from rag.chunk import card_text, chunk_trial, split_passages
from rag.ingest import ingest_file
from rag.types import Source, Trial

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


def seed(name: str) -> Trial:
    (trial,) = ingest_file(next(CORPUS.glob(f"{name}_*.txt")))
    return trial


def test_one_chunk_per_criterion_plus_card_and_passages() -> None:
    trial = seed("002")
    chunks = chunk_trial(trial)
    ids = [c.id for c in chunks]
    assert ids[0] == "NCT04984096/card"
    assert ids[1:12] == [c.id for c in trial.criteria]
    assert ids[12:] == ["NCT04984096/summary/1", "NCT04984096/description/1"]
    assert len(set(ids)) == len(ids)
    excl = chunks[6]
    assert excl.id == "NCT04984096/exclusion/1" and excl.section == "exclusion"
    assert excl.embed_text.splitlines() == [
        "Anlotinib Combined With PD-1 Inhibitors for Advanced/Metastatic Esophageal Cancer "
        "(NCT04984096; Shanghai Chest Hospital) | exclusion criterion",
        "have used Anlotinib before;",
    ]


def test_sub_criterion_carries_its_parents() -> None:
    chunks = {c.id: c for c in chunk_trial(seed("001"))}
    plt = chunks["T-01c13b784d/inclusion/8.1.3"]
    assert plt.text == "PLT ≥ 80 × 109 / L."
    assert plt.embed_text.splitlines()[1:] == [
        "The main organs function normally, that is, the following criteria are met:",
        "Blood routine examination:",
        "PLT ≥ 80 × 109 / L.",
    ]
    # No title on the page: the embedded header starts with the summary, and the name shown
    # to people is what the page studies.
    assert plt.embed_text.startswith("The purpose of this study is to observe")
    assert plt.title == (
        "study of anlotinib and sindilimab in advanced esophageal squamous cell carcinoma (ESCC)"
    )


def test_card_states_what_the_record_states_as_a_person_reads_it() -> None:
    text = card_text(seed("004"))
    assert text.splitlines()[:4] == [
        "Trial: T-ee5e47e5ae",
        "Title: A Multicenter, Randomized Controlled, Phase II Clinical Study of First-line "
        "Chemotherapy and Camrelizumab With or Without Radiotherapy in the Treatment of "
        "Oligometastatic Esophageal Cancer",
        "Status: Not yet recruiting",
        "Phase: Phase 2",
    ]
    assert "Enrollment" not in text and "Start date" not in text
    assert "Accepts healthy volunteers: No" in text
    assert "Collaborators: Huizhou Municipal Central Hospital; Jinhua" in text
    # Values the page states only in its own words say where they were read.
    assert "Ages: 18 to 75 years (from inclusion criterion 1)" in text
    assert "Masking: None (open label) (from the summary)" in text
    assert "Ages: 18 to 125 years" in card_text(seed("000"))
    assert "Start date: 1 August 2021" in card_text(seed("002"))


def test_long_description_splits_at_sentences_with_overlap() -> None:
    sentences = [
        f"Sentence number {i} says something about the trial design here." for i in range(40)
    ]
    description = " ".join(sentences) + "\n\nA short second paragraph."
    trial = Trial(id="T-1", source=Source("x", "text"), title="T", description=description)
    pieces = [c for c in chunk_trial(trial) if c.kind == "description"]
    assert len(pieces) == 4
    for piece in pieces:
        assert piece.span is not None and piece.field == "description"
        assert " ".join(description[piece.span[0] : piece.span[1]].split()) == piece.text
        assert len(piece.text.split()) <= 150
    # Each long piece starts with the sentence the one before ended with.
    last = pieces[0].text.rsplit(". ", 1)[-1]
    assert pieces[1].text.startswith(last.rstrip("."))
    assert pieces[-1].text == "A short second paragraph."


def test_split_passages_keeps_short_paragraphs_whole() -> None:
    text = "One.\n\n  Two lines\nof text.  \n\n\nThree."
    assert [text[s:e] for s, e in split_passages(text)] == ["One.", "Two lines\nof text.", "Three."]
