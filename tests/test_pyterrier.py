"""ddro as a PyTerrier transformer: its results are `ddro search`'s, and `pt.Experiment` measures
them as `ddro eval` does."""

import json

import pytest

pt = pytest.importorskip("pyterrier", reason="the pyterrier extra is not installed (pip install 'ddro[pyterrier]')")
pd = pytest.importorskip("pandas")

from ddro.cli import main  # noqa: E402
from ddro.collections import load_collection  # noqa: E402
from ddro.runs import read_trec_run  # noqa: E402

from conftest import DATA, needs_data, write_beir  # noqa: E402


def frames(collection):
    """Topics (the judged test queries, string qids) and qrels as PyTerrier takes them."""
    judged = set(collection.judged_query_ids())
    topics = pd.DataFrame([(q.query_id, q.text) for q in collection.queries_of("test") if q.query_id in judged],
                          columns=["qid", "query"])
    qrels = pd.DataFrame([(q, d, rel) for q, docs in collection.qrels_dict(collection.split.test, "test").items()
                          for d, rel in docs.items()], columns=["qid", "docno", "label"])
    return topics, qrels


def experiment_against_eval(collection_src, model_dir, tmp_path, capsys, k=10, **load):
    from ir_measures import RR, nDCG

    from ddro.bm25 import BM25Retriever
    from ddro.pyterrier import DDRORetriever

    collection = load_collection(collection_src, **load)
    topics, qrels = frames(collection)
    retriever = DDRORetriever(model_dir, k=k)
    results = retriever(topics)
    assert list(results.columns) == ["qid", "query", "docno", "score", "rank"]
    # The transformer's ranking is `ddro search`'s, query for query.
    fraction = [] if "test_fraction" not in load else ["--test-fraction", str(load["test_fraction"])]
    run_file = tmp_path / "ddro.trec"
    assert main(["search", "--collection", str(collection_src), *fraction, "--model", str(model_dir),
                 "--out", str(run_file), "--k", str(k), "--beams", str(k)]) == 0
    searched = read_trec_run(run_file)
    for qid, group in results.groupby("qid"):
        assert list(group.sort_values("rank")["docno"]) == [d for d, _ in searched[qid]]
    capsys.readouterr()
    assert main(["eval", "--collection", str(collection_src), *fraction, "--run", str(run_file)]) == 0
    evaluated = json.loads(capsys.readouterr().out)["measures"]
    bm25 = BM25Retriever().index(collection.docs)
    bm25_frame = pd.DataFrame([(qid, doc, score, rank) for qid, ranked in bm25.search(
        [q for q in collection.queries_of("test") if q.query_id in set(topics["qid"])], k=k).items()
        for rank, (doc, score) in enumerate(ranked)], columns=["qid", "docno", "score", "rank"])
    table = pt.Experiment([retriever, pt.Transformer.from_df(bm25_frame)], topics, qrels, eval_metrics=[RR@10, nDCG@10],
                          names=["ddro", "bm25"], verbose=False)
    measured = table.set_index("name").loc["ddro"]
    assert measured["RR@10"] == pytest.approx(evaluated["RR@10"], abs=1e-9)
    assert measured["nDCG@10"] == pytest.approx(evaluated["nDCG@10"], abs=1e-9)
    return measured


def test_experiment_measures_the_transformer_as_ddro_eval_does(tiny, tmp_path, capsys):
    _, model = tiny
    model.save(tmp_path / "model")
    source = write_beir(tmp_path / "collection", n_docs=30)
    experiment_against_eval(source, tmp_path / "model", tmp_path, capsys, test_fraction=0.3)


def test_a_frame_without_a_query_column_is_one_clear_error(tiny, tmp_path):
    from ddro.errors import DdroError
    from ddro.pyterrier import DDRORetriever

    tiny[1].save(tmp_path / "model")
    with pytest.raises(DdroError, match="no query column"):
        DDRORetriever(tmp_path / "model")(pd.DataFrame({"qid": ["1"]}))


@pytest.mark.slow
@needs_data("cranfield")
def test_experiment_on_cranfield_gives_ddro_evals_rr10(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--preset", "tiny", "--collection", str(DATA / "cranfield"), "--out", str(out)]) == 0
    measured = experiment_against_eval(DATA / "cranfield", out / "model-ddro", tmp_path, capsys, k=100)
    assert 0 <= measured["RR@10"] <= 1
