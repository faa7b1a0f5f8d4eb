"""The dense baseline: exact inner-product retrieval with the docid encoder's embeddings, and its row in `ddro run`."""

import json

import numpy as np
import pytest

from ddro.cli import main
from ddro.collections import load_collection
from ddro.dense import DenseRetriever
from ddro.docids.encoders import document_texts, get_encoder
from ddro.evaluation import evaluate
from ddro.runs import read_trec_run

from conftest import write_beir


def brute_force_scores(collection, queries, spec: str) -> dict[str, list[float]]:
    """Every document's inner product with each query, summed term by term in Python floats."""
    encoder = get_encoder(spec)
    texts = document_texts(collection)
    docs = encoder.encode(texts).tolist()
    return {q.query_id: [sum(a * b for a, b in zip(vector, doc)) for doc in docs]
            for q, vector in zip(queries, encoder.encode_queries([q.text for q in queries], texts).tolist())}


def check_top_k(run, scores, doc_ids, k):
    """`run` is a top-k of `scores`: right scores, best first, nothing better left out."""
    position = {d: i for i, d in enumerate(doc_ids)}
    for query_id, expected in scores.items():
        ranking = run[query_id]
        assert len(ranking) == k and len({d for d, _ in ranking}) == k
        got = [expected[position[d]] for d, _ in ranking]
        assert [s for _, s in ranking] == pytest.approx(got, abs=1e-5)
        assert all(a >= b - 1e-5 for a, b in zip(got, got[1:]))
        left_out = [s for d, s in zip(doc_ids, expected) if d not in {d for d, _ in ranking}]
        assert max(left_out, default=-np.inf) <= got[-1] + 1e-5


def test_dense_search_is_the_brute_force_inner_product_ranking(tmp_path):
    collection = load_collection(write_beir(tmp_path / "c", n_docs=25), test_fraction=0.5)
    queries = collection.queries
    run = DenseRetriever(get_encoder("lsa:16"), tmp_path / "cache").index(collection).search(queries, k=7)
    check_top_k(run, brute_force_scores(collection, queries, "lsa:16"), [d.doc_id for d in collection.docs], 7)
    topical = run[queries[0].query_id][0][0]  # "what about wing lift": a document on wing lift
    assert int(topical[1:]) % 5 == 0


def test_dense_scores_tie_in_collection_order(tmp_path):
    collection = load_collection(write_beir(tmp_path / "c", n_docs=6), test_fraction=1.0)
    retriever = DenseRetriever(get_encoder("lsa:4"), None).index(collection)
    retriever._vectors = np.zeros_like(retriever._vectors)
    assert [d for d, _ in retriever.search(collection.queries[:1], k=6)[collection.queries[0].query_id]] == \
        [d.doc_id for d in collection.docs]


# SFT barely trains: these tests are about the rows beside it.
BRIEF = ["--preset", "tiny", "--no-ddro", "--index-epochs", "0.2", "--pseudo-epochs", "0.2", "--query-epochs", "0.2"]


def test_run_writes_the_dense_row_of_the_docid_encoder(beir_dir, tmp_path):
    """`tiny` builds PQ docids from `lsa:16`: its dense row ranks by those embeddings, and SFT
    (and DDRO) are tested against it."""
    out = tmp_path / "run"
    assert main(["run", "--collection", str(beir_dir), "--out", str(out), *BRIEF]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["systems"]) == ["bm25", "dense", "sft", "bm25+dense", "sft+bm25", "sft+bm25+dense"]
    assert set(metrics["significance"]) == {"sft_vs_bm25", "sft_vs_dense", "sft+bm25_vs_bm25",
                                            "sft+bm25+dense_vs_bm25+dense"} and "dense_seconds" in metrics["timings"]
    collection = load_collection(beir_dir)
    queries = collection.queries_of("test")
    run = read_trec_run(out / "runs" / "dense.trec")
    doc_ids = [d.doc_id for d in collection.docs]
    check_top_k(run, brute_force_scores(collection, queries, "lsa:16"), doc_ids, min(100, len(doc_ids)))
    expected = evaluate(run, collection.qrels_dict(collection.split.test), [q.query_id for q in queries])
    assert metrics["systems"]["dense"] == expected["aggregate"]


def test_docids_made_from_text_have_no_dense_row(beir_dir, tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--collection", str(beir_dir), "--out", str(out), *BRIEF, "--scheme", "atomic"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["systems"]) == ["bm25", "sft", "sft+bm25"] and not (out / "runs" / "dense.trec").exists()
