"""BM25 baseline: obvious matches first, ranked lists, and the published bm25s numbers on Cranfield."""

import pytest

from ddro.bm25 import BM25Retriever
from ddro.collections import Document, Query, load_collection
from ddro.evaluation import evaluate

from conftest import DATA, TOPICS, needs_data


@pytest.fixture
def retriever():
    docs = [Document(f"doc-{i}", topic, phrase) for i, (topic, phrase) in enumerate(TOPICS)]
    return BM25Retriever().index(docs)


def test_obvious_document_ranks_first(retriever):
    queries = [Query("q-shock", "Supersonic SHOCK reflection"), Query("q-plate", "the buckling of plates")]
    run = retriever.search(queries, k=3)
    assert run["q-shock"][0][0] == "doc-2"
    assert run["q-plate"][0][0] == "doc-4"
    for ranking in run.values():
        scores = [score for _, score in ranking]
        assert len(ranking) == 3 and scores == sorted(scores, reverse=True) and scores[0] > scores[1]


def test_k_is_capped_at_the_collection_size(retriever):
    run = retriever.search([Query("q", "heat conduction")], k=100)
    assert len(run["q"]) == len(TOPICS)
    assert {doc_id for doc_id, _ in run["q"]} == {f"doc-{i}" for i in range(len(TOPICS))}


def test_query_of_stop_words_returns_zero_scores_in_collection_order(retriever):
    run = retriever.search([Query("all", "what is the of")], k=5)
    assert run["all"] == [(f"doc-{i}", 0.0) for i in range(5)]
    some = retriever.search([Query("some", "what is the of")], k=3)["some"]
    positions = [int(doc_id.split("-")[1]) for doc_id, _ in some]
    assert len(some) == 3 and positions == sorted(positions) and {s for _, s in some} == {0.0}


def test_search_before_index_is_an_error():
    with pytest.raises(RuntimeError, match="before index"):
        BM25Retriever().search([Query("q", "wing")])


@pytest.mark.slow
@needs_data("cranfield")
def test_cranfield_matches_published_bm25s_numbers():
    """bm25s without stemming (`stemmer="none"`), the setting these numbers were published for."""
    c = load_collection(DATA / "cranfield", test_fraction=1.0)
    run = BM25Retriever(stemmer="none").index(c.docs).search(c.queries, k=100)
    result = evaluate(run, c.qrels_dict(c.split.test), c.split.test)
    assert result["queries"] == 225
    assert result["aggregate"]["RR@10"] == pytest.approx(0.508, abs=0.01)
    assert result["aggregate"]["nDCG@10"] == pytest.approx(0.352, abs=0.01)
    assert result["aggregate"]["R@100"] == pytest.approx(0.709, abs=0.01)
