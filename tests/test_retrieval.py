"""Models, constrained search and the exhaustive scorer on small seeded models."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from ddro.collections import load_collection
from ddro.docids import DocidConfig, build_docids
from ddro.errors import DdroError
from ddro.models import DocidModel, build_docid_model, get_preset
from ddro.retrieval import GenerativeRetriever

from conftest import write_beir


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    collection = load_collection(write_beir(tmp_path_factory.mktemp("c") / "tiny", n_docs=40), test_fraction=1.0)
    preset = get_preset("tiny")
    table = build_docids(collection, DocidConfig(**preset.docid_plan.docids))
    model = build_docid_model(preset, table, [f"{d.title} {d.text}" for d in collection.docs], seed=3)
    model.model.eval()
    return collection, model


def test_a_model_built_twice_with_one_seed_is_the_same(small):
    """Same texts and seed, same tokenizer and weights (the `tokenizers` WordPiece trainer gave
    another vocabulary on about every run, so t5-scratch runs could not be repeated)."""
    collection, model = small
    texts = [f"{d.title} {d.text}" for d in collection.docs]
    for _ in range(3):
        again = build_docid_model(get_preset("tiny"), model.table, texts, seed=3)
        assert again.tokenizer.get_vocab() == model.tokenizer.get_vocab()
        assert again.tokenizer(texts[:5])["input_ids"] == model.tokenizer(texts[:5])["input_ids"]
        assert all(torch.equal(a, b) for a, b in zip(again.model.state_dict().values(),
                                                     model.model.state_dict().values()))


def test_labels_are_docid_tokens_then_eos(small):
    _, model = small
    seqs = model.docid_sequences()
    for i in range(len(model.table)):
        row = seqs[i][seqs[i] >= 0]
        assert row[-1] == model.eos_token_id
        assert row[:-1].tolist() == [int(model.docid_token_ids[c]) for c in model.table.docid(i)]


def test_beam_search_matches_exhaustive_scoring_when_beam_covers_every_docid(small):
    collection, model = small
    retriever = GenerativeRetriever(model)
    queries = collection.queries[:4]
    beam = retriever.search(queries, k=40, num_beams=40, progress=False)
    exact = retriever.exhaustive_search(queries, k=40, progress=False)
    for query in queries:
        got, want = beam[query.query_id], exact[query.query_id]
        assert [d for d, _ in got] == [d for d, _ in want]
        assert np.allclose([s for _, s in got], [s for _, s in want], atol=1e-4)


def test_search_returns_only_existing_documents_once(small):
    collection, model = small
    run = GenerativeRetriever(model).search(collection.queries, k=10, num_beams=12, progress=False)
    known = set(model.table.doc_ids)
    for query in collection.queries:
        docs = [d for d, _ in run[query.query_id]]
        assert 0 < len(docs) <= 10 and len(set(docs)) == len(docs) and set(docs) <= known
        scores = [s for _, s in run[query.query_id]]
        assert scores == sorted(scores, reverse=True)


def test_saved_model_gives_the_same_run_in_a_fresh_process(small, tmp_path):
    collection, model = small
    model.save(tmp_path / "m")
    queries = collection.queries[:3]
    here = GenerativeRetriever(model).search(queries, k=5, num_beams=8, progress=False)
    script = (
        "import json, sys; from ddro.retrieval import GenerativeRetriever; from ddro.collections import load_collection;"
        f"c = load_collection({str(collection.source)!r}, test_fraction=1.0);"
        f"r = GenerativeRetriever.load({str(tmp_path / 'm')!r});"
        "print(json.dumps(r.search(c.queries[:3], k=5, num_beams=8, progress=False)))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    there = json.loads(out.strip().splitlines()[-1])
    for query in queries:
        assert [d for d, _ in there[query.query_id]] == [d for d, _ in here[query.query_id]]
        assert np.allclose([s for _, s in there[query.query_id]], [s for _, s in here[query.query_id]], atol=1e-5)


def test_bf16_search_scores_its_docids_close_to_fp32(small, tmp_path):
    """Weights in bf16, scores still log-probabilities: each returned docid's score is within bf16's
    rounding of the fp32 model's exhaustive log-probability of that docid."""
    collection, model = small
    model.save(tmp_path / "m")
    with pytest.raises(DdroError, match="dtype 'int8'"):
        GenerativeRetriever.load(tmp_path / "m", dtype="int8")
    half = GenerativeRetriever.load(tmp_path / "m", dtype="bf16")
    assert {p.dtype for p in half.docid_model.model.parameters()} == {torch.bfloat16}
    queries = collection.queries[:4]
    exact = GenerativeRetriever(model).score_all(queries, progress=False)
    run = half.search(queries, k=10, num_beams=40, progress=False)  # 40 beams: every docid, no search error
    index = {doc_id: i for i, doc_id in enumerate(model.table.doc_ids)}
    for q, query in enumerate(queries):
        ranked = run[query.query_id]
        assert len(ranked) == 10 and all(isinstance(s, float) for _, s in ranked)
        fp32 = np.array([exact[q, index[d]] for d, _ in ranked])
        assert np.allclose([s for _, s in ranked], fp32, atol=0.05 + 0.02 * np.abs(fp32).max())
        # bf16 may swap near-ties, not promote a docid the fp32 model scores far lower
        assert fp32.min() >= np.sort(exact[q])[-10] - 0.05 - 0.02 * np.abs(fp32).max()


def test_minilm_warm_start_freezes_lower_layers_and_keeps_docid_vocab(small, tmp_path):
    collection, _ = small
    preset = get_preset("cpu")
    table = build_docids(collection, DocidConfig(scheme="pq", encoder="lsa:16", pq_m=2, pq_k=8))
    model = build_docid_model(preset, table, None)
    layers = model.model.encoder.encoder.layer
    assert not any(p.requires_grad for layer in layers[:4] for p in layer.parameters())
    assert all(p.requires_grad for layer in layers[4:] for p in layer.parameters())
    model.save(tmp_path / "m")  # a loaded model keeps the same parameters frozen (DDRO on a saved SFT model)
    trainable = {name: p.requires_grad for name, p in model.model.named_parameters()}
    loaded = DocidModel.load(tmp_path / "m")
    assert {name: p.requires_grad for name, p in loaded.model.named_parameters()} == trainable
    assert 0 < sum(trainable.values()) < len(trainable)
    assert model.decoder_vocab_size == 3 + len(table.vocab)
    inputs = model.encode(["wing lift"])
    labels = torch.from_numpy(model.docid_sequences()[:1])
    assert model.model(**inputs, labels=labels).loss.item() > 0


def test_pretrained_checkpoint_from_a_local_folder(small, tmp_path):
    """`--model PATH`: new docid tokens get embedding rows after the model's; the tokenizer stays as it was."""
    collection, tiny = small
    tiny.model.save_pretrained(tmp_path / "ckpt")
    tiny.tokenizer.save_pretrained(tmp_path / "ckpt")
    table = build_docids(collection, DocidConfig(scheme="atomic"))
    model = build_docid_model(get_preset("tiny", model=str(tmp_path / "ckpt")), table, None)
    base = tiny.model.get_input_embeddings().num_embeddings
    assert model.decoder_vocab_size == base + len(table.vocab) and len(model.tokenizer) == len(tiny.tokenizer)
    assert int(model.docid_token_ids[7]) == base + 7
    with pytest.raises(DdroError, match="cannot be loaded"):
        build_docid_model(get_preset("tiny", model=str(tmp_path / "nope")), table, None)


def test_variable_length_title_docids_match_exhaustive_scoring(small):
    collection, _ = small
    table = build_docids(collection, DocidConfig(scheme="title"))
    model = build_docid_model(get_preset("tiny"), table, [d.text for d in collection.docs], seed=5)
    model.model.eval()
    retriever = GenerativeRetriever(model)
    queries = collection.queries[:3]
    beam = retriever.search(queries, k=10, num_beams=40, progress=False)
    exact = retriever.exhaustive_search(queries, k=10, progress=False)
    for query in queries:
        assert [d for d, _ in beam[query.query_id]] == [d for d, _ in exact[query.query_id]]
        assert np.allclose([s for _, s in beam[query.query_id]], [s for _, s in exact[query.query_id]], atol=1e-4)
