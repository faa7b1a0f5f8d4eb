"""Slow: `ddro docids` on Cranfield, NPL and LISA for every scheme (marker `slow`; CI runs it).

Computed schemes use the model-free `lsa` encoder here to keep CI short; one Cranfield run uses the
default MiniLM encoder, the one the README's numbers come from.
"""

import json

import pytest

from ddro.cli import main
from ddro.docids import SCHEMES, DocidTable

from conftest import DATA

DOCS = {"cranfield": 1400, "npl": 11429, "lisa": 5999}
FIXED_LENGTH = {"pq": 24, "rq": 4, "atomic": 1}

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", sorted(DOCS))
@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_scheme_on_every_collection(name, scheme, tmp_path, capsys):
    if not (DATA / name).is_dir():
        pytest.skip(f"../shared/data/{name} not present")
    out = tmp_path / "t"
    assert main(["docids", "--collection", str(DATA / name), "--scheme", scheme, "--encoder", "lsa",
                 "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"docids: {name} scheme={scheme}: {DOCS[name]} documents")
    stats = json.loads((out / "stats.json").read_text())
    table = DocidTable.load(out)
    assert len(table) == DOCS[name] and len(set(table.doc_ids)) == DOCS[name]
    if scheme == "ngram":
        # Any span identifies a document: the first spans (the fixed docids) may be shared.
        assert stats["documents"] == table.spans.n_docs == DOCS[name] and stats["collision_policy"] == "share"
        assert sum(len(table.spans.document_codes(d)) for d in range(DOCS[name])) == table.spans.n_tokens
        return
    assert stats["documents"] == stats["unique_docids"] == DOCS[name]
    if table.codebook is not None:
        assert_codebook_gives_the_codes_back(table, name)
    if scheme in FIXED_LENGTH:
        # Documents of a colliding group carry one more token (<dup_k>).
        extra = int(stats["collisions"] > 0)
        assert FIXED_LENGTH[scheme] <= stats["docid_length_min"] <= stats["docid_length"] <= FIXED_LENGTH[scheme] + extra


def assert_codebook_gives_the_codes_back(table, name):
    """The saved centroids give every document its code back (k-means labels each point by its
    nearest centroid): what a document added later is coded by."""
    from ddro.collections import load_collection
    from ddro.docids.encoders import document_texts, embed_documents, get_encoder, resolve_cache_dir

    embeddings = embed_documents(document_texts(load_collection(DATA / name)), get_encoder("lsa", 0),
                                 resolve_cache_dir(None))
    for i, codes in enumerate(table.codebook.encode(embeddings)):
        tokens = table.docid_tokens(i)
        raw = tokens[:-1] if tokens[-1].startswith(("<dup_", "<hk_leaf_")) else tokens
        assert raw == [table.vocab[c] for c in codes], (name, table.scheme, i)


def test_cranfield_pq_with_minilm(tmp_path):
    if not (DATA / "cranfield").is_dir():
        pytest.skip("../shared/data/cranfield not present")
    out = tmp_path / "pq"
    assert main(["docids", "--collection", str(DATA / "cranfield"), "--scheme", "pq", "--out", str(out)]) == 0
    stats = json.loads((out / "stats.json").read_text())
    assert stats["options"]["encoder"] == "minilm" and stats["vocab_size"] >= 24 * 256
    assert stats["unique_docids"] == 1400 and stats["collisions"] < 10
