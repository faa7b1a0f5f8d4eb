"""Every docid scheme on a small collection; tables on disk; collision policies."""

import numpy as np
import pytest

from ddro.collections import Document, load_collection
from ddro.docids import SCHEMES, DocidConfig, DocidTable, build_docids
from ddro.docids.kmeans import kmeans
from ddro.docids.table import PAD, collision_groups, resolve_with_dup_tokens
from ddro.docids.text import load_tokenizer, terms_strings, tokenize_docids, url_string
from ddro.errors import DdroError

SMALL = dict(encoder="lsa:16", pq_m=4, pq_k=8, rq_levels=3, rq_k=4, hk_k=3, hk_leaf=5)


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    from conftest import write_beir

    return load_collection(write_beir(tmp_path_factory.mktemp("c") / "tiny", n_docs=60))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_scheme_gives_unique_valid_docids_and_round_trips(collection, scheme, tmp_path):
    table = build_docids(collection, DocidConfig(scheme=scheme, **SMALL))
    assert table.doc_ids == [d.doc_id for d in collection.docs]
    assert table.unique_docids() == len(collection.docs)  # suffix policy: no two documents share
    lengths = table.lengths
    assert (lengths >= 1).all() and (table.codes[table.codes != PAD] < len(table.vocab)).all()
    for i in range(len(table)):
        assert table.docs_for(table.docid(i)) == [table.doc_ids[i]]
    # No docid is a proper prefix of another: a finished docid is recognisable in a trie.
    seqs = {table.docid(i) for i in range(len(table))}
    assert not any(s[:k] in seqs for s in seqs for k in range(1, len(s)))
    table.save(tmp_path / "t")
    again = DocidTable.load(tmp_path / "t")
    assert np.array_equal(again.codes, table.codes) and again.vocab == table.vocab
    assert again.doc_ids == table.doc_ids and again.collision_groups == table.collision_groups
    assert again.stats() == table.stats()


def test_fixed_lengths_and_token_names(collection):
    pq = build_docids(collection, DocidConfig(scheme="pq", collisions="share", **SMALL))
    assert (pq.lengths == 4).all() and len(pq.vocab) == 4 * 8
    assert all(tok.startswith(f"<pq_{m}_") for m, tok in enumerate(pq.docid_tokens(0)))
    rq = build_docids(collection, DocidConfig(scheme="rq", collisions="share", **SMALL))
    assert (rq.lengths == 3).all() and rq.docid_tokens(0)[0].startswith("<rq_0_")
    atomic = build_docids(collection, DocidConfig(scheme="atomic"))
    assert atomic.docid_tokens(5) == ["<doc_5>"] and atomic.new_tokens


def test_text_schemes_end_with_eos_and_record_strings(collection):
    title = build_docids(collection, DocidConfig(scheme="title", **SMALL))
    assert not title.new_tokens and all(title.docid_tokens(i)[-1] == "[SEP]" for i in range(len(title)))
    assert title.strings[0] == "wing lift study 0" and title.strings[1] == "heat flow study 0"
    assert title.stats()["collisions"] == 0
    naive = build_docids(collection, DocidConfig(scheme="naive"))
    assert naive.strings[12] == "12" and naive.docid_tokens(12) == ["12", "[SEP]"]


def test_duplicate_titles_are_disambiguated_in_collection_order():
    tok = load_tokenizer("minilm")
    codes, vocab, strings, groups = tokenize_docids(["a b", "a b", "c", "a b", "a b 2"], tok, 16, "suffix")
    assert groups == [[0, 1, 3]]
    # "a b 2" is already document 4's docid, so the copies take 3 and 4; 4 keeps its own.
    assert strings == ["a b", "a b 3", "c", "a b 4", "a b 2"]
    rows = {tuple(r[r != PAD]) for r in codes}
    assert len(rows) == 5
    _, _, shared, _ = tokenize_docids(["a b", "a b"], tok, 16, "share")
    assert shared == ["a b", "a b"]


def test_url_rules():
    doc = Document("1", "Solar Power", "", "https://www.energy.gov/solar-power/how-it-works")
    assert url_string(doc, "paper") == "how it works solar power energy.gov"
    ids = Document("2", "A long title of a page", "", "http://site.com/p/12345/ab9f")
    assert url_string(ids, "paper") == "a long title of a page site.com"
    short = Document("3", "Home", "", "http://site.com/about/team")
    assert url_string(short, "legacy") == "team about site.com"
    assert url_string(Document("4", "No url here", "", ""), "paper") == "no url here"
    with pytest.raises(DdroError, match="url_rule"):
        url_string(doc, "other")


def test_terms_are_top_tfidf_in_document_frequency_order():
    docs = [Document(str(i), "", t) for i, t in enumerate([
        "alpha beta beta gamma", "alpha delta delta delta", "alpha beta epsilon", "zeta zeta zeta alpha"])]
    strings = terms_strings(docs, 2)
    # doc 1: delta (tf 3, df 1) and alpha (df 4): broad term first.
    assert strings[1] == "alpha delta"
    assert strings[3] == "alpha zeta"


def test_collision_policies_on_codes():
    codes = np.array([[1, 2], [3, 4], [1, 2], [1, 2], [3, 4], [0, 0]], dtype=np.int32)
    assert collision_groups(codes) == [[0, 2, 3], [1, 4]]
    fixed, vocab, groups = resolve_with_dup_tokens(codes, ["t0", "t1", "t2", "t3", "t4"], "suffix")
    assert vocab[5:] == ["<dup_0>", "<dup_1>", "<dup_2>"]
    assert fixed[0].tolist() == [1, 2, 5] and fixed[2].tolist() == [1, 2, 6] and fixed[3].tolist() == [1, 2, 7]
    assert fixed[5].tolist() == [0, 0, PAD]
    same, _, _ = resolve_with_dup_tokens(codes, ["t"] * 5, "share")
    assert np.array_equal(same, codes)
    with pytest.raises(DdroError, match="collision policy"):
        resolve_with_dup_tokens(codes, [], "shuffle")


def test_share_policy_reverse_map_lists_all_documents(collection):
    table = build_docids(collection, DocidConfig(scheme="rq", collisions="share", encoder="lsa:16", rq_levels=1, rq_k=4))
    assert table.stats()["unique_docids"] <= 4
    group = table.collision_groups[0]
    assert table.docs_for(table.docid(group[0])) == [table.doc_ids[i] for i in group]


def test_computed_docids_are_deterministic(collection):
    a = build_docids(collection, DocidConfig(scheme="hkmeans", **SMALL))
    b = build_docids(collection, DocidConfig(scheme="hkmeans", **SMALL))
    assert np.array_equal(a.codes, b.codes)
    assert max(a.lengths) > 2  # 60 docs, k=3, leaves of <= 5: at least two levels


def test_kmeans_clamps_k_to_distinct_points():
    x = np.repeat(np.eye(3, dtype=np.float32), 2, axis=0)
    centroids, labels = kmeans(x, 8, seed=0)
    assert len(centroids) == 3 and len(set(labels.tolist())) == 3


def test_minilm_encoder_embeds_offline():
    from ddro.docids.encoders import get_encoder

    vectors = get_encoder("minilm").encode(["wing lift in a slipstream", "heat conduction in slabs", "lift of wings"])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert vectors[0] @ vectors[2] > vectors[0] @ vectors[1]


def test_bad_options(collection):
    with pytest.raises(DdroError, match="unknown docid scheme"):
        build_docids(collection, DocidConfig(scheme="nope"))
    with pytest.raises(DdroError, match="unknown encoder"):
        build_docids(collection, DocidConfig(scheme="pq", encoder="bogus"))
    with pytest.raises(DdroError, match="sub-spaces exceed"):
        build_docids(collection, DocidConfig(scheme="pq", encoder="lsa:4", pq_m=8))


def test_large_inputs_cluster_by_mini_batch_deterministically_with_nearest_centroid_labels(monkeypatch):
    from ddro.docids import kmeans as kmeans_module

    rng = np.random.default_rng(0)
    x = (rng.normal(size=(40, 8))[rng.integers(0, 40, 3000)] + 0.1 * rng.normal(size=(3000, 8))).astype(np.float32)
    full = kmeans_module.kmeans(x, 16, seed=3)
    monkeypatch.setattr(kmeans_module, "MINI_BATCH_ABOVE", 1000)
    first, again = kmeans_module.kmeans(x, 16, seed=3), kmeans_module.kmeans(x, 16, seed=3)
    assert np.array_equal(first[1], again[1]) and np.array_equal(first[0], again[0])
    assert not np.array_equal(first[0], full[0])  # the other algorithm did run
    centroids, labels = first
    nearest = ((x[:, None, :] - centroids[None]) ** 2).sum(-1).argmin(1)
    assert (labels == nearest).mean() > 0.99  # float ties aside, every point takes its nearest centroid
    error = lambda c, l: float(((x - c[l]) ** 2).sum(1).mean())
    assert error(*first) < 1.1 * error(*full)
