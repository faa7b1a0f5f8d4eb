"""BM25 stems by default (PyStemmer's English stemmer) and keeps the unstemmed variant as an option."""

import math
import re

import pytest

from ddro.bm25 import BM25Retriever
from ddro.cli import main
from ddro.collections import Document, Query, load_collection
from ddro.errors import DdroError
from ddro.evaluation import evaluate

from conftest import DATA, TOPICS, needs_data

DOCS = [Document(f"doc-{i}", topic, phrase) for i, (topic, phrase) in enumerate(TOPICS)] + [
    Document("doc-wings", "Wings", "Swept wings and their lifting flows, measured in flows of air."),
    Document("doc-plates", "", "Plates buckle; the buckling of plated structures under shear."),
]


def brute_force_bm25(docs, query: str, stemmer, k1=1.5, b=0.75) -> dict[str, float]:
    """Okapi BM25, Lucene's idf and length normalisation, written out term by term: tokens are
    lower-cased words of two or more characters, English stop words dropped, then stemmed."""
    from bm25s.stopwords import STOPWORDS_EN

    def tokens(text):
        words = [w for w in re.findall(r"(?u)\b\w\w+\b", text.lower()) if w not in set(STOPWORDS_EN)]
        return stemmer.stemWords(words) if stemmer else words

    bags = {d.doc_id: tokens(f"{d.title} {d.text}") for d in docs}
    average = sum(map(len, bags.values())) / len(bags)
    scores = {}
    for doc_id, bag in bags.items():
        score = 0.0
        for term in set(tokens(query)):
            df = sum(term in other for other in bags.values())
            tf = bag.count(term)
            if df and tf:
                idf = math.log(1 + (len(bags) - df + 0.5) / (df + 0.5))
                score += idf * tf / (tf + k1 * (1 - b + b * len(bag) / average))
        scores[doc_id] = score
    return scores


@pytest.mark.parametrize("stemmer", ["english", "none"])
def test_scores_are_brute_force_bm25_over_the_stemmed_tokens(stemmer):
    import Stemmer

    queries = [Query("q1", "wing flow"), Query("q2", "buckled plates shearing"), Query("q3", "heat conducting slabs")]
    run = BM25Retriever(stemmer=stemmer).index(DOCS).search(queries, k=len(DOCS))
    for query in queries:
        expected = brute_force_bm25(DOCS, query.text, Stemmer.Stemmer("english") if stemmer == "english" else None)
        assert dict(run[query.query_id]) == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_a_query_for_wings_finds_the_documents_about_a_wing():
    query = [Query("q", "wings")]
    stemmed = dict(BM25Retriever().index(DOCS).search(query, k=len(DOCS))["q"])
    unstemmed = dict(BM25Retriever(stemmer="none").index(DOCS).search(query, k=len(DOCS))["q"])
    assert stemmed["doc-0"] > 0 and unstemmed["doc-0"] == 0  # "the lift of a swept wing"
    assert stemmed["doc-wings"] > 0 and unstemmed["doc-wings"] > 0


def test_an_unknown_stemmer_is_one_clear_error(beir_dir, tmp_path, capsys):
    with pytest.raises(DdroError, match="unknown stemmer"):
        BM25Retriever(stemmer="klingon")
    assert main(["run", "--collection", str(beir_dir), "--out", str(tmp_path / "run"), "--preset", "tiny",
                 "--bm25-stemmer", "klingon"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--bm25-stemmer 'klingon'" in err[0]
    assert not (tmp_path / "run").exists()  # refused before anything was built


def test_ddro_negatives_follow_the_bm25_stemmer(tiny):
    from ddro.training.negatives import bm25_rankings

    collection, _ = tiny
    queries = [Query("q", "wings")]
    stemmed = bm25_rankings(collection, [(queries, 5)])["q"]
    assert stemmed == [d for d, _ in BM25Retriever().index(collection.docs).search(queries, k=5)["q"]]
    unstemmed = bm25_rankings(collection, [(queries, 5)], "none")["q"]
    assert unstemmed != stemmed  # the documents say "wing"
    assert unstemmed == [
        d for d, _ in BM25Retriever(stemmer="none").index(collection.docs).search(queries, k=5)["q"]]


@pytest.mark.slow
@needs_data("cranfield")
def test_stemming_helps_on_cranfields_test_queries():
    """As an independent script measured (issue 15): RR@10 0.552 unstemmed, 0.573 stemmed (its nDCG@10: 0.403)."""
    c = load_collection(DATA / "cranfield")
    queries = c.queries_of("test")
    qrels = c.qrels_dict(c.split.test)
    results = {stemmer: evaluate(BM25Retriever(stemmer=stemmer).index(c.docs).search(queries, k=100), qrels,
                                 [q.query_id for q in queries])["aggregate"] for stemmer in ("english", "none")}
    assert results["none"]["RR@10"] == pytest.approx(0.552, abs=0.001)
    assert results["english"]["RR@10"] == pytest.approx(0.573, abs=0.001)
    assert results["english"]["nDCG@10"] == pytest.approx(0.404, abs=0.001)
    assert results["english"]["R@100"] == pytest.approx(0.734, abs=0.001)
