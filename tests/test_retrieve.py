"""Retrieval over real indexes built with the real model: quality, filters and modes."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from rag import store
from rag.cli import app
from rag.embed import SentenceEmbedder
from rag.errors import RagError
from rag.filters import Filters, parse_filters
from rag.metrics import RetrievalScore, score
from rag.retrieve import CANDIDATES, Method, Retriever

GOLD = Path(__file__).resolve().parents[1] / "eval" / "retrieval.jsonl"
NSCLC = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "ctgov-v2" / "nsclc-ctg-studies.json"
)
CAMRELIZUMAB_PRIOR_ICI = "T-ee5e47e5ae/exclusion/1"


def gold_queries(index: store.Index) -> list[dict[str, Any]]:
    """The gold queries whose trials are all in the index."""
    queries = [json.loads(line) for line in GOLD.read_text().splitlines() if line.strip()]
    return [q for q in queries if all(g.split("/")[0] in index.trials for g in q["gold"])]


@pytest.fixture(scope="module")
def scores(eval_index: store.Index, embedder: SentenceEmbedder) -> dict[str, RetrievalScore]:
    retriever = Retriever(eval_index, embedder)
    queries = gold_queries(eval_index)
    result: dict[str, RetrievalScore] = {}
    methods: tuple[Method, ...] = ("dense", "lexical", "hybrid")
    for method in methods:
        runs = []
        for q in queries:
            hits = retriever.search(q["query"], k=10, method=method)
            runs.append(([h.chunk.id for h in hits], q["gold"]))
        result[method] = score(runs, k=5)
    return result


def test_gold_set_is_large_enough(eval_index: store.Index) -> None:
    assert len(gold_queries(eval_index)) >= (45 if len(eval_index.trials) > 5 else 15)


@pytest.mark.skipif(not NSCLC.exists(), reason=f"{NSCLC} is absent: 37 of the gold queries need it")
def test_hybrid_beats_each_retriever_alone(scores: dict[str, RetrievalScore]) -> None:
    hybrid = scores["hybrid"]
    for alone in ("dense", "lexical"):
        assert hybrid.recall_at_k > scores[alone].recall_at_k, alone
        assert hybrid.mrr > scores[alone].mrr, alone
    # The level reached when this test was written (0.634, 0.635); raise it as retrieval improves.
    assert hybrid.recall_at_k >= 0.62
    assert hybrid.mrr >= 0.62


def test_prior_anti_pd1_finds_the_camrelizumab_exclusion(
    seed_index: store.Index, eval_index: store.Index, embedder: SentenceEmbedder
) -> None:
    hits = Retriever(seed_index, embedder).search("prior anti-PD-1 treatment", k=3)
    assert CAMRELIZUMAB_PRIOR_ICI in [h.chunk.id for h in hits]
    # Among 100 NSCLC trials more criteria speak of prior anti-PD-1 therapy; it stays in the top 5.
    hits = Retriever(eval_index, embedder).search("prior anti-PD-1 treatment", k=5)
    assert CAMRELIZUMAB_PRIOR_ICI in [h.chunk.id for h in hits]


def test_hits_carry_what_a_citation_needs(
    seed_index: store.Index, embedder: SentenceEmbedder
) -> None:
    (hit,) = Retriever(seed_index, embedder).search("platelets of the Fudan trial", k=1)
    chunk = hit.chunk
    assert chunk.id == "T-fcd9d254a2/inclusion/8.2"
    assert chunk.criterion_id == chunk.id and chunk.section == "inclusion"
    source = (
        Path(__file__).resolve().parents[1] / "corpus" / "003_3a8d64e594130fed.txt"
    ).read_text()
    assert (
        chunk.span is not None
        and source[chunk.span[0] : chunk.span[1]] == "platelets ≥ 100 × 10^9 / L;"
    )
    # The sub-item is embedded with its parent criterion as context.
    assert "The function of vital organs meets the following requirements:" in chunk.embed_text
    assert hit.dense_rank is not None and hit.lexical_rank is not None


def test_per_trial_cap_and_all_trials_mode(
    seed_index: store.Index, embedder: SentenceEmbedder
) -> None:
    retriever = Retriever(seed_index, embedder)
    hits = retriever.search("brain metastases", k=10, per_trial=1)
    assert len({h.chunk.trial_id for h in hits}) == len(hits) == 5
    groups = retriever.search_trials("prior PD-1 inhibitor treatment", per_trial=2)
    assert sorted(g.trial.id for g in groups) == sorted(seed_index.trials)
    assert all(len(g.hits) == 2 for g in groups)
    assert groups[0].hits[0].score >= groups[-1].hits[0].score


def test_filters(seed_index: store.Index, embedder: SentenceEmbedder) -> None:
    retriever = Retriever(seed_index, embedder)

    def trials(*filters: str) -> set[str]:
        groups = retriever.search_trials("eligibility", filters=parse_filters(list(filters)))
        return {g.trial.id for g in groups}

    assert trials("status=recruiting") == {"NCT03913182", "T-fcd9d254a2"}
    assert trials("status=not yet recruiting,unknown") == {"T-ee5e47e5ae", "NCT04984096"}
    # T-01c13b784d has no Phase field; its description says "phase Ⅱ" (001 line 7).
    assert trials("phase=2") == {"NCT03913182", "T-01c13b784d", "T-fcd9d254a2", "T-ee5e47e5ae"}
    assert trials("phase=II", "type=interventional") == {"NCT03913182"}
    assert trials("trial=nct04984096") == {"NCT04984096"}
    # Stated conditions decide (NCT04984096 states "Esophageal Cancer"); a page that states
    # none is read for them (001's summary, 003's title).
    assert trials("condition=squamous") == {"NCT03913182", "T-01c13b784d", "T-fcd9d254a2"}
    assert trials("intervention=camrelizumab") == {"T-ee5e47e5ae"}
    # NCT03913182 takes 18-125 (page); 001 18~80 and 004 18-75 in their first inclusion
    # criteria; NCT04984096 and 003 (over 18) state no maximum.
    assert trials("age=130") == {"NCT04984096", "T-fcd9d254a2"}
    assert trials("age=10") == set()
    groups = retriever.search_trials("age", filters=parse_filters(["age=78"]))
    notes = {g.trial.id: g.notes for g in groups}
    assert notes["NCT03913182"] == ()
    assert notes["NCT04984096"] == ("no maximum age stated",)
    assert notes["T-fcd9d254a2"] == ("no maximum age stated", "ages from inclusion criterion 6")
    # Both limits read from one criterion: said once.
    assert notes["T-01c13b784d"] == ("ages from inclusion criterion 4",)
    assert "T-ee5e47e5ae" not in notes  # 78 is over its 75
    # Every seed takes women: 001 says so in inclusion criterion 4 ("both men and women").
    groups = retriever.search_trials("x", filters=parse_filters(["sex=female"]))
    assert {g.trial.id: g.notes for g in groups if g.notes} == {
        "T-01c13b784d": ("sex from inclusion criterion 4",)
    }
    assert len(groups) == 5
    assert trials("sex=male", "trial=NCT03913182,T-01c13b784d") == {"NCT03913182", "T-01c13b784d"}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("colour=red", "Unknown filter 'colour'; use one of: status, phase"),
        ("age=old", "give an age in years"),
        ("status", "is not KEY=VALUE"),
        ("phase=7", "use a phase such as phase=2"),
        ("sex=robot", "use sex=female"),
    ],
)
def test_bad_filters_say_what_to_do(item: str, message: str) -> None:
    with pytest.raises(RagError, match=message):
        parse_filters([item])


def test_search_command_json(seed_index_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(seed_index_root)
    result = CliRunner().invoke(
        app, ["search", "ECOG performance status", "--k", "4", "--json", "-f", "phase=2"]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 4
    assert set(rows[0]) >= {"trial_id", "chunk_id", "section", "criterion_id", "score", "text"}
    assert {r["trial_id"] for r in rows} <= {
        "NCT03913182",
        "T-01c13b784d",
        "T-fcd9d254a2",
        "T-ee5e47e5ae",
    }
    assert any("ECOG" in r["text"] for r in rows)
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)


def test_search_command_errors(seed_index_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(seed_index_root)
    result = CliRunner().invoke(app, ["search", "x", "-f", "colour=red"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: Unknown filter 'colour'")
    result = CliRunner().invoke(app, ["search", "x", "--name", "nope"])
    assert result.exit_code == 1
    assert (
        result.stderr
        == "error: No index 'nope' under index/; build it with: rag index --name nope\n"
    )


def _approximate(index: store.Index) -> store.Index:
    """The same index searched through an HNSW graph, as store.build makes above its threshold."""
    graph, kind = store.make_faiss_index(np.array(index.vectors), approximate=True)
    return replace(index, manifest=index.manifest | {"faiss": kind}, faiss_index=graph)


@pytest.mark.skipif(not NSCLC.exists(), reason=f"{NSCLC} is absent: the graph needs its chunks")
def test_an_approximate_index_answers_as_the_exact_one(
    eval_index: store.Index, embedder: SentenceEmbedder
) -> None:
    approximate = _approximate(eval_index)
    assert not approximate.exact and (approximate.vectors == eval_index.vectors).all()
    exact, graph = Retriever(eval_index, embedder), Retriever(approximate, embedder)
    queries = [q["query"] for q in gold_queries(eval_index)]
    same = [
        len({h.chunk.id for h in exact.search(q, k=5)} & {h.chunk.id for h in graph.search(q, k=5)})
        for q in queries
    ]
    assert sum(same) / (5 * len(queries)) >= 0.95, same
    # A search confined to one trial whose chunks the graph's top 200 lacks still ranks them
    # by meaning, as the exact index does.
    query, trial = "hepatitis B virus infection", "T-fcd9d254a2"
    top = approximate.dense_top(embedder.encode([query])[0], CANDIDATES)[0]
    assert not {approximate.chunks[i].trial_id for i in top} & {trial}
    scope = Filters(trial_ids=frozenset({trial}))
    want = [(h.chunk.id, h.dense_rank) for h in exact.search(query, k=5, filters=scope)]
    got = [(h.chunk.id, h.dense_rank) for h in graph.search(query, k=5, filters=scope)]
    assert got == want and all(rank is not None for _, rank in got), got
