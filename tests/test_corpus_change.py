"""Documents added to and removed from a trained index: kept codebooks, grown and shrunk tables,
the model's new rows, `ddro add-docs` and `ddro remove-docs`."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ddro.cli import main
from ddro.collections import load_collection
from ddro.collections.base import Document
from ddro.docids import DocidConfig, DocidTable, build_docids
from ddro.docids.codebooks import Codebook
from ddro.docids.growth import added, removed
from ddro.errors import DdroError

from conftest import assert_refused, write_beir

SMALL = {"pq": dict(pq_m=3, pq_k=4), "rq": dict(rq_levels=2, rq_k=4), "hkmeans": dict(hk_k=3, hk_leaf=4)}


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    return load_collection(write_beir(tmp_path_factory.mktemp("c") / "tiny", n_docs=36), test_fraction=0.3)


def split_docs(collection, n_new: int = 6):
    return collection.docs[:-n_new], collection.docs[-n_new:]


def corpus(docs):
    """What `build_docids` reads of a collection."""
    return SimpleNamespace(docs=list(docs))


def embed(docs):
    from ddro.docids.encoders import document_text, embed_documents, get_encoder

    return embed_documents([document_text(d) for d in docs], get_encoder("minilm"), None)


def brute_nearest(x, centroids):
    """The nearest centroid of one point, by a plain loop (the oracle of `Codebook.encode`)."""
    best, best_distance = 0, None
    for i, c in enumerate(centroids):
        distance = float(sum((float(a) - float(b)) ** 2 for a, b in zip(x, c)))
        if best_distance is None or distance < best_distance:
            best, best_distance = i, distance
    return best


# --- codebooks -------------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["pq", "rq", "hkmeans"])
def test_the_codebook_gives_the_built_documents_their_codes_back(scheme):
    from ddro.docids.hkmeans import hkmeans_codes
    from ddro.docids.pq import pq_codes
    from ddro.docids.rq import rq_codes

    x = np.random.default_rng(3).normal(size=(90, 12)).astype(np.float32)
    make = {"pq": lambda: pq_codes(x, 3, 5, 0), "rq": lambda: rq_codes(x, 3, 5, 0),
            "hkmeans": lambda: hkmeans_codes(x, 3, 8, 0)}[scheme]
    codes, vocab, codebook = make()
    encoded = codebook.encode(x)
    for row, got in zip(codes, encoded):
        built = [int(c) for c in row if c >= 0]
        assert list(map(int, got)) == (built[:-1] if scheme == "hkmeans" else built)


def test_pq_codes_of_new_points_are_the_nearest_centroids_of_each_sub_space():
    from ddro.docids.pq import pq_codes

    x = np.random.default_rng(4).normal(size=(60, 10)).astype(np.float32)
    _, _, codebook = pq_codes(x, 3, 4, 0)
    new = np.random.default_rng(5).normal(size=(7, 10))
    for point, codes in zip(new, codebook.encode(new)):
        for sub, (start, stop) in enumerate(zip(codebook.bounds[:-1], codebook.bounds[1:])):
            centroids = codebook.centroids[sub, : codebook.counts[sub], : stop - start]
            assert codes[sub] == sub * 4 + brute_nearest(point[start:stop], centroids)


def test_rq_codes_of_new_points_follow_the_residuals():
    from ddro.docids.rq import rq_codes

    x = np.random.default_rng(6).normal(size=(60, 6)).astype(np.float32)
    _, _, codebook = rq_codes(x, 3, 4, 0)
    for point, codes in zip(np.random.default_rng(7).normal(size=(5, 6)), codebook.encode(np.random.default_rng(7).normal(size=(5, 6)))):
        residual = point.astype(np.float64)
        for level in range(3):
            centroids = codebook.centroids[level, : codebook.counts[level]]
            label = brute_nearest(residual, centroids)
            assert codes[level] == level * 4 + label
            residual = residual - centroids[label]


def test_a_codebook_saves_and_loads_exactly_and_refuses_a_damaged_one(tmp_path):
    from ddro.docids.hkmeans import hkmeans_codes

    x = np.random.default_rng(8).normal(size=(50, 5)).astype(np.float32)
    _, _, codebook = hkmeans_codes(x, 3, 6, 0)
    codebook.save(tmp_path / "cb")
    again = Codebook.load(tmp_path / "cb")
    assert np.array_equal(again.centroids, codebook.centroids) and np.array_equal(again.parents, codebook.parents)
    assert again.encode(x) == codebook.encode(x)
    meta = json.loads((tmp_path / "cb" / "codebook.json").read_text())
    meta["counts"] = meta["counts"][:-1]
    (tmp_path / "cb" / "codebook.json").write_text(json.dumps(meta))
    with pytest.raises(DdroError, match="codebook.json: 'counts' does not describe"):
        Codebook.load(tmp_path / "cb")


# --- grown and shrunk tables -----------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["pq", "rq", "hkmeans"])
def test_an_added_documents_docid_comes_from_the_saved_codebook_as_a_rebuild_with_it_gives(collection, scheme, tmp_path):
    old, new = split_docs(collection)
    table = build_docids(corpus(old), DocidConfig(scheme=scheme, **SMALL[scheme]))
    table.save(tmp_path / "t")
    loaded = DocidTable.load(tmp_path / "t")  # the codebook as read from disk
    grown = added(loaded, new, old)
    # A rebuild with those codebooks: every document, old and new, coded by them in collection order.
    rebuilt = loaded.codebook.encode(embed(old + new))
    for i in range(len(grown)):
        tokens = grown.docid_tokens(i)
        raw = tokens[:-1] if tokens[-1].startswith(("<dup_", "<hk_leaf_")) else tokens
        assert raw == [grown.vocab[c] for c in rebuilt[i]], i
    assert [grown.docid(i) for i in range(len(old))] == [table.docid(i) for i in range(len(old))]
    assert grown.vocab[: len(table.vocab)] == table.vocab
    assert grown.unique_docids() == len(grown)  # suffix policy: every docid its own


def test_a_newcomer_to_a_taken_pq_code_gets_the_next_number_of_its_group(collection):
    old, _ = split_docs(collection)
    table = build_docids(corpus(old), DocidConfig(scheme="pq", pq_m=1, pq_k=2))  # 30 documents, 2 codes
    twin = Document("twin", old[0].title, old[0].text)  # the same text: the same code as old[0]
    grown = added(table, [twin], old)
    group = [i for i in range(len(table)) if table.docid_tokens(i)[0] == table.docid_tokens(0)[0]]
    largest = max(int(table.docid_tokens(i)[-1][5:-1]) for i in group)
    assert grown.docid_tokens(len(table)) == [table.docid_tokens(0)[0], f"<dup_{largest + 1}>"]
    assert any(len(table) in g and 0 in g for g in grown.collision_groups)
    shared = build_docids(corpus(old), DocidConfig(scheme="pq", pq_m=1, pq_k=2, collisions="share"))
    grown = added(shared, [twin], old)
    assert "twin" in grown.docs_for(grown.docid(0)) and old[0].doc_id in grown.docs_for(grown.docid(0))


@pytest.mark.parametrize("scheme", ["title", "naive", "atomic"])
def test_text_and_atomic_docids_of_added_documents_are_those_a_build_of_all_gives(collection, scheme):
    old, new = split_docs(collection)
    new = new + [Document("same-title", old[2].title, "a different text")]  # its title is taken: numbered
    table = build_docids(corpus(old), DocidConfig(scheme=scheme))
    grown = added(table, new, old)
    whole = build_docids(corpus(old + new), DocidConfig(scheme=scheme))
    docids = [grown.docid_tokens(i) for i in range(len(grown))]
    assert docids[: len(old)] == [table.docid_tokens(i) for i in range(len(old))]
    assert docids[len(old):] == [whole.docid_tokens(i) for i in range(len(old), len(whole))]
    assert grown.strings == (None if whole.strings is None else table.strings + whole.strings[len(old):])


def test_added_key_terms_are_weighed_over_old_and_new_documents(collection):
    from ddro.docids.text import terms_strings

    old, new = split_docs(collection)
    grown = added(build_docids(corpus(old), DocidConfig(scheme="terms")), new, old)
    # A build of all would move old docids (their idf changed); the new ones are its strings (numbered if taken).
    for string, expected in zip(grown.strings[len(old):], terms_strings(old + new, 5)[len(old):]):
        assert string == expected or (string.startswith(expected + " ") and string.rsplit(" ", 1)[1].isdigit())


def test_added_ngram_documents_join_the_span_index(collection):
    old, new = split_docs(collection)
    table = build_docids(corpus(old), DocidConfig(scheme="ngram", span_tokens=6))
    grown = added(table, new, old)
    whole = build_docids(corpus(old + new), DocidConfig(scheme="ngram", span_tokens=6))
    for i in range(len(whole)):
        assert [grown.vocab[c] for c in grown.spans.document_codes(i)] == [whole.vocab[c] for c in whole.spans.document_codes(i)]
        assert grown.docid_tokens(i) == whole.docid_tokens(i)
    assert grown.vocab[: len(table.vocab)] == table.vocab


@pytest.mark.parametrize("scheme", ["pq", "hkmeans", "title", "ngram"])
def test_tables_round_trip_after_adds_and_removes(collection, scheme, tmp_path):
    old, new = split_docs(collection)
    table = build_docids(corpus(old), DocidConfig(scheme=scheme, **SMALL.get(scheme, {})))
    changed = removed(added(table, new[:3], old), [old[1].doc_id, new[0].doc_id])
    changed = added(changed, new[3:], [d for d in old + new[:3] if d.doc_id not in (old[1].doc_id, new[0].doc_id)])
    changed.save(tmp_path / "t")
    again = DocidTable.load(tmp_path / "t")
    assert again.doc_ids == changed.doc_ids and again.vocab == changed.vocab
    assert np.array_equal(again.codes, changed.codes) and again.collision_groups == changed.collision_groups
    assert again.strings == changed.strings
    assert old[1].doc_id not in again.doc_ids and len(again) == len(collection.docs) - 2
    if changed.codebook is not None:
        assert np.array_equal(again.codebook.centroids, table.codebook.centroids)
    if changed.spans is not None:
        assert np.array_equal(again.spans.text, changed.spans.text)
        return
    # The trie the search builds from the reloaded table is the one of the changed table, and every
    # docid walks to its own document.
    from ddro.decoding.trie import DocidTrie

    trie, reloaded = DocidTrie.from_table(changed), DocidTrie.from_table(again)
    for name in ("order", "sorted_codes", "edge_key", "edge_child", "node_lo", "node_hi"):
        assert np.array_equal(getattr(trie, name), getattr(reloaded, name)), name
    states = reloaded.walk(torch.as_tensor(again.codes.astype(np.int64)).clamp(min=0), torch.as_tensor(again.lengths))
    assert all(i in reloaded.rows_of(int(state)) for i, state in enumerate(states))


def test_adding_and_removing_refuse_what_cannot_be_done(collection):
    old, new = split_docs(collection)
    table = build_docids(corpus(old), DocidConfig(scheme="pq", **SMALL["pq"]))
    with pytest.raises(DdroError, match="already in the docid table"):
        added(table, [old[0]], old)
    with pytest.raises(DdroError, match="'nope' is not in the docid table"):
        removed(table, ["nope"])
    with pytest.raises(DdroError, match="empty index"):
        removed(table, table.doc_ids)
    lsa = build_docids(corpus(old), DocidConfig(scheme="pq", encoder="lsa:8", **SMALL["pq"]))
    with pytest.raises(DdroError, match="fitted to the corpus"):
        added(lsa, new, old)
    table.codebook = None
    with pytest.raises(DdroError, match="keeps no codebook"):
        added(table, new, old)


# --- the model -------------------------------------------------------------------------------

@pytest.mark.parametrize("preset", ["tiny", "cpu"])
def test_new_docid_tokens_get_decoder_rows_and_the_old_rows_keep_their_scores(collection, preset):
    from ddro.corpus_change import adopt_table
    from ddro.models import build_docid_model, get_preset

    old, new = split_docs(collection)
    table = build_docids(corpus(old), DocidConfig(scheme="hkmeans", hk_k=3, hk_leaf=2))
    model = build_docid_model(get_preset(preset), table, [d.full_text for d in old])
    model.model.eval()
    batch = model.encode(["boundary layer"]) | {"decoder_input_ids": torch.tensor([[model.decoder_start_token_id]])}
    with torch.no_grad():
        before = model.model(**batch).logits
    joined = adopt_table(model, added(table, new, old))
    with torch.no_grad():
        after = model.model(**batch).logits
    assert joined > 0 and after.shape[-1] == before.shape[-1] + joined
    assert torch.allclose(after[..., : before.shape[-1]], before, atol=1e-5)
    assert len(set(model.docid_token_ids.tolist())) == len(model.table.vocab)


def search_ids(model, queries, k):
    from ddro.retrieval import GenerativeRetriever

    run = GenerativeRetriever(model).search(queries, k=k, num_beams=k, progress=False)
    return {d for ranking in run.values() for d, _ in ranking}


@pytest.mark.parametrize("scheme", ["pq", "ngram"])
def test_a_removed_document_is_never_returned(collection, scheme):
    from ddro.corpus_change import remove_documents
    from ddro.models import build_docid_model, get_preset

    config = DocidConfig(scheme=scheme, **SMALL.get(scheme, {})) if scheme != "ngram" else DocidConfig(scheme="ngram", span_tokens=3)
    table = build_docids(collection, config)
    model = build_docid_model(get_preset("tiny"), table, [d.full_text for d in collection.docs])
    queries = collection.queries[:4]
    everything = search_ids(model, queries, len(collection.docs))
    gone = sorted(everything)[:5]
    assert remove_documents(model, gone) == 5
    found = search_ids(model, queries, len(collection.docs))
    assert found and not found & set(gone)


def test_add_docs_and_remove_docs_from_the_command_line(tmp_path, capsys):
    beir = write_beir(tmp_path / "c", n_docs=36)
    lines = (beir / "corpus.jsonl").read_text().splitlines()
    old = tmp_path / "old"
    old.mkdir()
    (old / "corpus.jsonl").write_text("\n".join(lines[:30]) + "\n")
    (old / "queries.jsonl").write_text((beir / "queries.jsonl").read_text())
    (old / "qrels").mkdir()
    for part in ("train", "test"):  # the judgments of documents the old corpus has
        kept = [l for l in (beir / "qrels" / f"{part}.tsv").read_text().splitlines()
                if l.startswith("query-id") or int(l.split("\t")[1][1:]) < 30]
        (old / "qrels" / f"{part}.tsv").write_text("\n".join(kept) + "\n")
    new = tmp_path / "new.jsonl"
    new.write_text("\n".join(lines[30:]) + "\n")
    assert main(["docids", "--collection", str(old), "--scheme", "pq", "--pq-m", "2", "--pq-k", "4",
                 "--out", str(tmp_path / "docids")]) == 0
    assert main(["train", "sft", "--collection", str(old), "--docids", str(tmp_path / "docids"), "--preset", "tiny",
                 "--out", str(tmp_path / "m")]) == 0
    assert main(["add-docs", "--model", str(tmp_path / "m"), "--collection", str(old), "--documents", str(new),
                 "--preset", "tiny", "--out", str(tmp_path / "m2"), "--ddro", "--pseudo-queries", "4",
                 "--eval-steps", "2"]) == 0
    out = capsys.readouterr().out
    assert "add-docs: 6 documents added" in out and "DDRO round on" in out
    summary = json.loads((tmp_path / "m2" / "add_summary.json").read_text())
    assert summary["documents"] == 6 and summary["replayed"] == 9 * (summary["examples"] - summary["replayed"])
    assert summary["ddro"]["train_queries"] == 4  # the new documents' pseudo-queries: no query judges them
    # The grown model searches the whole collection (its documents in another order than the table's).
    assert main(["search", "--model", str(tmp_path / "m2"), "--collection", str(beir), "--out", str(tmp_path / "r.trec"),
                 "--k", "36", "--beams", "36"]) == 0
    found = {line.split()[2] for line in (tmp_path / "r.trec").read_text().splitlines()}
    assert found & {f"d{i}" for i in range(30, 36)}
    (tmp_path / "gone.txt").write_text("d31\nd2\n")
    assert main(["remove-docs", "--model", str(tmp_path / "m2"), "--documents", str(tmp_path / "gone.txt"),
                 "--out", str(tmp_path / "m3")]) == 0
    assert "2 documents removed, 34 left" in capsys.readouterr().out
    assert main(["search", "--model", str(tmp_path / "m3"), "--queries-file", str(write_queries(tmp_path)),
                 "--out", str(tmp_path / "r3.trec"), "--k", "34", "--beams", "34"]) == 0
    found = {line.split()[2] for line in (tmp_path / "r3.trec").read_text().splitlines()}
    assert found and not found & {"d31", "d2"}
    capsys.readouterr()
    status = main(["add-docs", "--model", str(tmp_path / "m3"), "--collection", str(old), "--documents", str(new),
                   "--preset", "tiny", "--out", str(tmp_path / "m4")])
    assert_refused(status, capsys, str(new), "document 'd30' is already in", [tmp_path / "m4"])


def test_a_ddro_round_trains_on_the_new_documents_queries_and_selects_on_every_held_out_one(tiny):
    from ddro.collections.base import PseudoQuery
    from ddro.training.ddro import DDROConfig, training_queries

    collection, model = tiny
    config = DDROConfig(seed=0, pseudo_queries=5)
    train, validation, positives = training_queries(collection, model, config)
    focus = {positives[q.query_id][0] for q in train if not isinstance(q, PseudoQuery)}
    some = sorted(focus)[:1] + [25, 26, 27]
    narrowed, narrowed_validation, narrowed_positives = training_queries(collection, model, config, documents=some)
    assert [q.query_id for q in narrowed_validation] == [q.query_id for q in validation]
    assert narrowed and all(set(narrowed_positives[q.query_id]) & set(some) for q in narrowed)
    assert any(not isinstance(q, PseudoQuery) for q in narrowed)
    assert {narrowed_positives[q.query_id][0] for q in narrowed if isinstance(q, PseudoQuery)} <= set(some)


def write_queries(folder):
    path = folder / "queries.tsv"
    path.write_text("a\tboundary layer\nb\tplate buckling\nc\twhat about heat\n")
    return path
