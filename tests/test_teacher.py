"""Teachers (BM25, dense, their fusion) and the DDRO pairs they order on pseudo-queries."""

import pytest

from ddro.bm25 import BM25Retriever
from ddro.collections import PseudoQuery
from ddro.dense import DenseRetriever
from ddro.docids.encoders import get_encoder
from ddro.errors import OptionError
from ddro.runs import fuse_rrf
from ddro.teacher import Teacher
from ddro.training.ddro import DDROConfig, negative_rankings, teach_pseudo_queries, training_queries
from ddro.training.negatives import make_pairs

from conftest import bare_corpus


def ids(run):
    return {q: [d for d, _ in ranked] for q, ranked in run.items()}


def test_each_teacher_ranks_as_its_retrievers_do(tiny):
    collection, _ = tiny
    queries = collection.queries[:5]
    bm25 = BM25Retriever().index(collection.docs).search(queries, k=20)
    dense = DenseRetriever(get_encoder("lsa:16")).index(collection).search(queries, k=20)
    assert Teacher("bm25", collection).rankings(queries, 20) == ids(bm25)
    assert Teacher("dense", collection, encoder="lsa:16").rankings(queries, 20) == ids(dense)
    assert Teacher("bm25+dense", collection, encoder="lsa:16").rankings(queries, 20) == ids(fuse_rrf([bm25, dense], 20))
    # Deeper than the collection: every document once.
    deep = Teacher("bm25+dense", collection, encoder="lsa:16").rankings(queries, 1000)
    assert all(sorted(r) == sorted(d.doc_id for d in collection.docs) for r in deep.values())


def test_an_unknown_teacher_names_the_option():
    with pytest.raises(OptionError, match="teacher.*'bm26'"):
        DDROConfig(teacher="bm26")
    with pytest.raises(OptionError, match="teacher_positives"):
        DDROConfig(teacher="bm25", teacher_positives=0)


@pytest.mark.parametrize("teacher_positives", [1, 3])
def test_a_teacher_ranks_pseudo_queries_over_the_whole_collection(tiny, teacher_positives):
    """With a teacher, a pseudo-query's positives are its own document and the teacher's next best,
    and its negatives come from the teacher's ranking of the whole collection, after them."""
    collection, model = tiny
    bare = bare_corpus(collection)
    config = DDROConfig(pseudo_queries=12, teacher="bm25", teacher_positives=teacher_positives)
    train, validation, positives = training_queries(bare, model, config)
    own = {q.query_id: positives[q.query_id][0] for q in train + validation}
    taught = teach_pseudo_queries(bare, model, train + validation, positives, config)
    expected = Teacher("bm25", bare).rankings(train + validation, config.negatives().depth)
    assert taught == expected and set(taught) == {q.query_id for q in train + validation}
    index = {d.doc_id: i for i, d in enumerate(collection.docs)}
    for q in train + validation:
        others = [index[d] for d in expected[q.query_id] if index[d] != own[q.query_id]]
        assert positives[q.query_id] == [own[q.query_id]] + others[:teacher_positives - 1]
    rankings = negative_rankings(bare, None, [train], positives, config, taught)
    pooled = {collection.docs[own[q.query_id]].doc_id for q in train}
    pairs = make_pairs(train, positives, rankings, model.table, config.negatives())
    rejected = {collection.docs[p.rejected].doc_id for p in pairs}
    assert rejected - pooled  # not only the other sampled documents, as without a teacher
    for pair in pairs:
        ranking = taught[pair.query_id]
        assert pair.chosen in positives[pair.query_id] and pair.rejected not in positives[pair.query_id]
        if pair.chosen != own[pair.query_id]:  # a teacher's pick is ranked above the document it beats
            assert ranking.index(collection.docs[pair.chosen].doc_id) < ranking.index(collection.docs[pair.rejected].doc_id)


def test_without_a_teacher_nothing_is_taught(tiny):
    collection, model = tiny
    config = DDROConfig(pseudo_queries=12)
    train, validation, positives = training_queries(bare_corpus(collection), model, config)
    before = {q: list(p) for q, p in positives.items()}
    assert teach_pseudo_queries(collection, model, train + validation, positives, config) == {}
    assert positives == before
    assert all(isinstance(q, PseudoQuery) for q in train)


@pytest.mark.parametrize("targets", [1, 2])
def test_stage_two_pairs_each_pseudo_query_with_the_teachers_best_other_documents(tiny, targets):
    import copy

    from ddro.collections import Query
    from ddro.models import get_preset
    from ddro.training.sft import stage_examples_for

    collection, model = tiny
    plain = stage_examples_for(collection, copy.copy(model), get_preset("tiny"))["pseudo"]
    preset = get_preset("tiny", pseudo_teacher="bm25", pseudo_teacher_targets=targets)
    taught = stage_examples_for(collection, copy.copy(model), preset)["pseudo"]
    assert taught[:len(plain)] == plain
    bm25 = BM25Retriever().index(collection.docs)
    index = {d.doc_id: i for i, d in enumerate(collection.docs)}
    expected = []
    for text, own in plain:
        ranked = [index[d] for d, _ in bm25.search([Query("q", text)], k=targets + 1)["q"]]
        expected += [(text, other) for other in [d for d in ranked if d != own][:targets]]
    assert taught[len(plain):] == expected and len(expected) == targets * len(plain)


def test_pseudo_teacher_settings_are_checked():
    from ddro.models import get_preset

    with pytest.raises(OptionError, match="pseudo_teacher_targets"):
        get_preset("tiny", pseudo_teacher="bm25", pseudo_teacher_targets=0)
