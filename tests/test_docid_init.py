"""`--docid-init centroids`: the docid tokens' rows start from what each PQ/RQ token encodes,
checked against plain loops over the documents."""

import json

import numpy as np
import pytest
import torch

from ddro.cli import main
from ddro.docids.pq import pq_codes, subspaces
from ddro.docids.rq import rq_codes
from ddro.docids.table import DocidTable
from ddro.errors import DdroError
from ddro.models.docid_init import code_vectors, init_docid_rows


def embeddings(n=60, dims=8, seed=0):
    return np.random.default_rng(seed).normal(size=(n, dims)).astype(np.float32)


def table_of(scheme, codes, vocab, **options):
    return DocidTable(scheme, [f"d{i}" for i in range(len(codes))], codes, vocab, True, options)


def test_pq_vectors_are_each_blocks_mean_and_sum_to_the_quantized_embedding():
    x = embeddings()
    codes, vocab, _ = pq_codes(x, 2, 4, seed=0)
    vectors = code_vectors(table_of("pq", codes, vocab, pq_m=2, pq_k=4), x)
    blocks = subspaces(8, 2)
    for token in range(len(vocab)):
        position = token // 4
        members = [d for d in range(len(x)) if codes[d, position] == token]
        expected = np.zeros(8)
        if members:
            expected[blocks[position]] = np.mean([x[d, blocks[position]] for d in members], axis=0)
        assert np.allclose(vectors[token], expected, atol=1e-6)
    quantized = vectors[codes].sum(1)
    assert np.linalg.norm(x - quantized) < 0.8 * np.linalg.norm(x)  # the codes keep most of the embedding


def test_rq_vectors_are_each_levels_mean_residual():
    x = embeddings(seed=1)
    codes, vocab, _ = rq_codes(x, 3, 4, seed=0)
    vectors = code_vectors(table_of("rq", codes, vocab, rq_levels=3, rq_k=4), x)
    residual = [row.astype(np.float64) for row in x]
    for level in range(3):
        for token in range(level * 4, level * 4 + 4):
            members = [d for d in range(len(x)) if codes[d, level] == token]
            expected = np.mean([residual[d] for d in members], axis=0) if members else np.zeros(8)
            assert np.allclose(vectors[token], expected, atol=1e-5)
        residual = [residual[d] - vectors[codes[d, level]] for d in range(len(x))]


def test_only_computed_docids_have_centroids():
    with pytest.raises(DdroError, match="needs pq or rq docids, not atomic"):
        code_vectors(table_of("atomic", np.zeros((2, 1), dtype=np.int32), ["<a>"]), embeddings(2))


def test_rows_take_the_vectors_direction_at_the_rows_scale(tiny):
    _, model = tiny
    weight = model.model.get_input_embeddings().weight
    width, before = weight.shape[1], weight.detach().clone()
    vectors = np.random.default_rng(2).normal(size=(len(model.table.vocab), width)).astype(np.float32)
    vectors[0] = 0  # a token no document uses keeps its random row
    ids = torch.as_tensor(model.docid_token_ids)
    scale = before[ids[1:]].norm(dim=1).mean()
    assert init_docid_rows(model, vectors) == len(vectors) - 1
    after = model.model.get_input_embeddings().weight.detach()
    assert torch.equal(after[ids[0]], before[ids[0]])
    assert torch.allclose(after[ids[1:]].norm(dim=1).mean(), scale, rtol=1e-4)
    cosine = torch.nn.functional.cosine_similarity(after[ids[1:]], torch.as_tensor(vectors[1:]), dim=1)
    assert torch.allclose(cosine, torch.ones_like(cosine), atol=1e-5)
    text_rows = [i for i in range(len(after)) if i not in set(ids.tolist())]
    assert torch.equal(after[text_rows], before[text_rows])  # the text vocabulary is untouched
    with pytest.raises(DdroError, match=f"the decoder is {width} wide and the docid embeddings 3"):
        init_docid_rows(model, vectors[:, :3])


def test_train_sft_starts_from_the_centroids_of_the_docid_embeddings(beir_dir, tmp_path, capsys):
    from ddro.collections import load_collection
    from ddro.docids.encoders import document_texts, embed_documents, get_encoder, resolve_cache_dir
    from ddro.models import DocidModel

    assert main(["docids", "--collection", str(beir_dir), "--out", str(tmp_path / "pq"), "--scheme", "pq",
                 "--encoder", "lsa:32", "--pq-m", "2", "--pq-k", "8"]) == 0  # as wide as the tiny decoder
    assert main(["train", "sft", "--collection", str(beir_dir), "--docids", str(tmp_path / "pq"), "--out",
                 str(tmp_path / "m"), "--preset", "tiny", "--docid-init", "centroids", "--index-epochs", "0",
                 "--pseudo-epochs", "0", "--query-epochs", "0"]) == 0
    model = DocidModel.load(tmp_path / "m")
    x = embed_documents(document_texts(load_collection(str(beir_dir))), get_encoder("lsa:32", 0), resolve_cache_dir(None))
    vectors = torch.as_tensor(code_vectors(model.table, x))
    rows = model.model.get_input_embeddings().weight.detach()[torch.as_tensor(model.docid_token_ids)]
    used = vectors.norm(dim=1) > 0
    cosine = torch.nn.functional.cosine_similarity(rows[used], vectors[used], dim=1)
    assert torch.allclose(cosine, torch.ones_like(cosine), atol=1e-4)
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["settings"]["docid_init"] == "centroids"
    capsys.readouterr()
    assert main(["run", "--collection", str(beir_dir), "--out", str(tmp_path / "r"), "--preset", "tiny",
                 "--docid-init", "centroids"]) == 2  # the preset's lsa:16 docids under its 32-wide decoder
    err = capsys.readouterr().err.strip().splitlines()  # after the docids' progress
    assert err[-1:] == ["ddro: error: --docid-init centroids: the decoder is 32 wide and the docid embeddings 16; it "
                   "needs the same width (the cpu preset's decoder has it)"]
