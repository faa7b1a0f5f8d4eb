"""Measures against independent references (pytrec_eval, hand counts), significance tests, report."""

import numpy as np
import pytest
import pytrec_eval

from ddro.evaluation import MEASURES, evaluate, paired_tests, write_report


def _random_case(n_queries=20, n_docs=40, seed=7):
    """Graded qrels and a run with distinct scores (so every tool agrees on the order)."""
    rng = np.random.default_rng(seed)
    docs = [f"d{i}" for i in range(n_docs)]
    qrels, run = {}, {}
    for q in range(n_queries):
        qid = f"q{q}"
        judged = rng.choice(n_docs, size=6, replace=False)
        grades = rng.integers(0, 4, size=6)
        grades[0] = max(grades[0], 1)
        qrels[qid] = {docs[d]: int(g) for d, g in zip(judged, grades)}
        order = rng.permutation(n_docs)[:25]
        run[qid] = [(docs[d], float(25 - rank) + 0.5) for rank, d in enumerate(order)]
    return qrels, run


def test_rr10_and_ndcg10_agree_with_pytrec_eval():
    qrels, run = _random_case()
    result = evaluate(run, qrels, list(qrels))
    top10 = {qid: {d: s for d, s in ranking[:10]} for qid, ranking in run.items()}
    full = {qid: dict(ranking) for qid, ranking in run.items()}
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    ndcg = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(full)
    for qid in qrels:
        assert result["per_query"]["RR@10"][qid] == pytest.approx(rr[qid]["recip_rank"])
        assert result["per_query"]["nDCG@10"][qid] == pytest.approx(ndcg[qid]["ndcg_cut_10"])
    assert result["aggregate"]["RR@10"] == pytest.approx(np.mean([rr[q]["recip_rank"] for q in qrels]))
    assert result["queries"] == 20 and set(result["aggregate"]) == set(MEASURES)


def test_recall_and_success_by_hand():
    qrels = {"a": {"x": 1, "y": 2, "z": 0}, "b": {"w": 1}}
    run = {
        # relevant x at rank 2, y at rank 7
        "a": [("z", 9.0), ("x", 8.0), ("n1", 7.0), ("n2", 6.0), ("n3", 5.0), ("n4", 4.0), ("y", 3.0)],
        # relevant w at rank 1
        "b": [("w", 1.0), ("x", 0.5)],
    }
    per_query = evaluate(run, qrels, ["a", "b"])["per_query"]
    assert (per_query["R@1"]["a"], per_query["R@5"]["a"], per_query["R@10"]["a"]) == (0.0, 0.5, 1.0)
    assert (per_query["Success@1"]["a"], per_query["Success@5"]["a"], per_query["Success@10"]["a"]) == (0.0, 1.0, 1.0)
    assert per_query["RR@10"]["a"] == 0.5
    assert per_query["R@1"]["b"] == per_query["Success@1"]["b"] == per_query["RR@10"]["b"] == 1.0


def test_queries_without_results_count_as_zero():
    qrels = {"a": {"x": 1}, "b": {"y": 1}, "c": {"z": 1}}
    run = {"a": [("x", 1.0)], "b": [], "other": [("z", 1.0)]}
    result = evaluate(run, qrels, ["a", "b", "c"], measures=["RR@10", "Success@1"])
    assert result["per_query"]["RR@10"] == {"a": 1.0, "b": 0.0, "c": 0.0}
    assert result["aggregate"] == {"RR@10": pytest.approx(1 / 3), "Success@1": pytest.approx(1 / 3)}
    assert result["queries"] == 3


def test_list_order_is_evaluated_even_when_scores_tie():
    # By score alone "b" and "a" tie; trec_eval would break the tie by doc id (b before a).
    qrels = {"q": {"b": 1}}
    result = evaluate({"q": [("a", 1.0), ("b", 1.0)]}, qrels, ["q"], measures=["RR@10", "nDCG@10"])
    assert result["aggregate"]["RR@10"] == 0.5
    assert result["aggregate"]["nDCG@10"] == pytest.approx(1 / np.log2(3))


def test_query_without_relevant_judgment_is_rejected():
    qrels = {"a": {"x": 1}, "b": {"y": 0}}
    with pytest.raises(ValueError, match="no relevant judgment: b, c"):
        evaluate({"a": [("x", 1.0)]}, qrels, ["a", "b", "c"])


def test_identical_systems_are_not_different():
    per_query = {"RR@10": {f"q{i}": (i % 3) / 3 for i in range(30)}}
    tests = paired_tests(per_query, per_query)
    assert tests["RR@10"] == {"t_test_p": 1.0, "randomization_p": 1.0, "mean_difference": 0.0}


def test_clearly_different_systems():
    rng = np.random.default_rng(1)
    b = rng.uniform(0.0, 0.5, 30)
    a = b + rng.uniform(0.2, 0.4, 30)
    qids = [f"q{i}" for i in range(30)]
    tests = paired_tests({"m": dict(zip(qids, a))}, {"m": dict(zip(qids, b))}, n_permutations=2000)["m"]
    assert tests["t_test_p"] < 1e-6
    assert tests["randomization_p"] == pytest.approx(1 / 2001)  # no sign flip reaches the observed mean
    assert tests["mean_difference"] == pytest.approx(np.mean(a - b))


def test_randomization_agrees_with_t_test_on_normal_differences():
    rng = np.random.default_rng(3)
    qids = [f"q{i}" for i in range(30)]
    a = rng.normal(0.5, 0.2, 30)
    b = a - rng.normal(0.04, 0.1, 30)
    tests = paired_tests({"m": dict(zip(qids, a))}, {"m": dict(zip(qids, b))}, seed=5)["m"]
    assert 0.005 < tests["t_test_p"] < 0.5
    assert tests["randomization_p"] == pytest.approx(tests["t_test_p"], abs=0.02)
    again = paired_tests({"m": dict(zip(qids, a))}, {"m": dict(zip(qids, b))}, seed=5)["m"]
    assert again == tests


def test_paired_tests_need_the_same_queries_and_measures():
    with pytest.raises(ValueError, match="different queries"):
        paired_tests({"m": {"q1": 1.0, "q2": 0.0}}, {"m": {"q1": 1.0, "q3": 0.0}})
    with pytest.raises(ValueError, match="different measures"):
        paired_tests({"m": {"q1": 1.0, "q2": 0.0}}, {"n": {"q1": 1.0, "q2": 0.0}})


def test_write_report(tmp_path):
    metrics = {
        "collection": "cranfield",
        "split": {"rule": "sha1-fraction(test_fraction=0.3333)", "train_queries": 150, "test_queries": 75},
        "systems": {
            "bm25": {"RR@10": 0.5079, "R@10": 0.41, "R@100": 0.709, "nDCG@10": 0.352, "Success@1": 0.4, "Success@10": 0.86},
            "sft": {"RR@10": 0.3111, "R@10": 0.2, "R@100": 0.5, "nDCG@10": 0.25, "Success@1": 0.2, "Success@10": 0.6},
        },
        "significance": {"sft_vs_bm25": {"RR@10": {"t_test_p": 0.0012, "randomization_p": 0.0011}}},
        "timings": {"bm25_seconds": 0.41},
    }
    md_path, png_path = write_report(metrics, tmp_path / "report")
    md = md_path.read_text()
    assert md.startswith("# ") and "cranfield" in md and "150 training queries, 75 test queries" in md
    assert "| bm25 | 0.508 |" in md and "| sft | 0.311 |" in md
    assert "| sft_vs_bm25 | RR@10 | 0.0012 | 0.0011 |" in md
    assert png_path.read_bytes().startswith(b"\x89PNG")
