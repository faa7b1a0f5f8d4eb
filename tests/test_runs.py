"""TREC run files: round trip, the strictly-decreasing score rule, and errors that name file:line."""

import ir_measures
import pytest

from ddro.runs import read_trec_run, write_trec_run


def _lines(path):
    return [line.split() for line in path.read_text().splitlines()]


def test_round_trip(tmp_path):
    run = {"q1": [("d3", 12.5), ("d1", 3.25), ("d7", -0.125)], "q2": [("d1", 0.75)]}
    path = write_trec_run(run, tmp_path / "runs" / "bm25.run", "bm25")
    assert read_trec_run(path) == run
    assert _lines(path)[0] == ["q1", "Q0", "d3", "1", "12.500000", "bm25"]
    assert [row[3] for row in _lines(path)] == ["1", "2", "3", "1"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["bm25.run"]  # no temporary file left


def test_ties_and_rising_scores_are_written_strictly_decreasing(tmp_path):
    run = {"q": [("a", 1.0), ("b", 1.0), ("c", 2.0), ("d", 0.5), ("e", 0.5000004), ("f", 0.5000001)]}
    path = write_trec_run(run, tmp_path / "t.run", "x")
    rows = _lines(path)
    assert [r[2] for r in rows] == ["a", "b", "c", "d", "e", "f"]
    assert [r[4] for r in rows] == ["1.000000", "0.999999", "0.999998", "0.500000", "0.499999", "0.499998"]
    # An independent reader that sorts by score (as trec_eval does) sees the order given.
    by_score = sorted(ir_measures.read_trec_run(str(path)), key=lambda d: -d.score)
    assert [d.doc_id for d in by_score] == ["a", "b", "c", "d", "e", "f"]


def test_negative_scores_keep_their_order(tmp_path):
    run = {"q": [("a", -0.0000004), ("b", -0.0000004), ("c", -3.0)]}
    rows = _lines(write_trec_run(run, tmp_path / "t.run", "x"))
    assert [r[4] for r in rows] == ["0.000000", "-0.000001", "-3.000000"]


def test_duplicate_document_is_rejected_on_write(tmp_path):
    with pytest.raises(ValueError, match="d1 appears twice"):
        write_trec_run({"q": [("d1", 2.0), ("d2", 1.0), ("d1", 0.5)]}, tmp_path / "t.run", "x")
    assert not (tmp_path / "t.run").exists()


def test_read_sorts_by_score_then_rank(tmp_path):
    path = tmp_path / "t.run"
    path.write_text("q Q0 a 1 1.0 t\nq Q0 b 2 3.0 t\nq Q0 d 4 2.0 t\nq Q0 c 3 2.0 t\n")
    assert read_trec_run(path) == {"q": [("b", 3.0), ("c", 2.0), ("d", 2.0), ("a", 1.0)]}


def rrf_by_formula(runs, rrf_k):
    """Reciprocal-rank fusion written out: every document of any run, its sum of 1 / (rrf_k + rank)."""
    scores = {}
    for run in runs:
        for qid, ranking in run.items():
            for rank, (doc, _) in enumerate(ranking, start=1):
                scores.setdefault(qid, {}).setdefault(doc, 0.0)
                scores[qid][doc] += 1.0 / (rrf_k + rank)
    return scores


def test_rrf_matches_the_formula_and_breaks_ties_by_first_appearance():
    from ddro.runs import fuse_rrf

    a = {"q1": [("d1", 9.0), ("d2", 5.0), ("d3", 1.0)], "q2": [("d4", 1.0)]}
    b = {"q1": [("d3", 0.9), ("d2", 0.8), ("d5", 0.1)], "q3": [("d6", 2.0), ("d7", 1.0)]}
    fused = fuse_rrf([a, b], k=10, rrf_k=60)
    expected = rrf_by_formula([a, b], 60)
    assert set(fused) == {"q1", "q2", "q3"}  # a query only one run ranks is kept
    for qid, ranking in fused.items():
        assert dict(ranking) == pytest.approx(expected[qid])
        assert [s for _, s in ranking] == sorted((s for _, s in ranking), reverse=True)
    # d3 (ranks 3 and 1) edges out d2 (2 and 2): 1/63 + 1/61 > 2/62.
    assert [d for d, _ in fused["q1"]] == ["d3", "d2", "d1", "d5"]
    assert [d for d, _ in fuse_rrf([a, b], k=2)["q1"]] == ["d3", "d2"]
    # Exact ties keep the order of first appearance.
    swapped = fuse_rrf([{"q": [("x", 2.0), ("y", 1.0)]}, {"q": [("y", 2.0), ("x", 1.0)]}])
    assert [d for d, _ in swapped["q"]] == ["x", "y"] and swapped["q"][0][1] == swapped["q"][1][1]
    assert fuse_rrf([a]) == {q: [(d, 1.0 / (60 + r)) for r, (d, _) in enumerate(ranking, start=1)]
                             for q, ranking in a.items()}
