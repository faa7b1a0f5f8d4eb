"""The span index of n-gram docids against naive substring search on random corpora."""

import numpy as np
import pytest
import torch

from ddro.decoding.spans import SpanIndex

EOS, OFFSET = 1, 3  # decoder ids: EOS, and code c is token c + OFFSET


def random_corpus(rng, vocab: int, docs: int, longest: int):
    documents = [rng.integers(0, vocab, size=int(rng.integers(0, longest + 1))) for _ in range(docs)]
    offsets = np.concatenate([[0], np.cumsum([len(d) for d in documents])])
    codes = np.concatenate(documents) if offsets[-1] else np.zeros(0, dtype=np.int64)
    return documents, codes, offsets


def occurrences(documents, span) -> list[tuple[int, int]]:
    """(document, position) of every occurrence of `span`, by brute force."""
    n = len(span)
    return [(d, i) for d, doc in enumerate(documents) for i in range(len(doc) - n + 1) if list(doc[i:i + n]) == list(span)]


def next_codes(documents, span) -> set[int]:
    return {int(documents[d][i + len(span)]) for d, i in occurrences(documents, span) if i + len(span) < len(documents[d])}


def index_for(codes, offsets, vocab, max_tokens, window):
    index = SpanIndex.build(codes, offsets, vocab, max_tokens, window=window)
    return index.for_decoder(np.arange(vocab) + OFFSET, EOS, vocab + OFFSET)


@pytest.mark.parametrize("seed", range(12))
def test_allowed_tokens_and_counts_match_a_naive_search_along_random_walks(seed):
    rng = np.random.default_rng(seed)
    vocab, max_tokens = int(rng.integers(2, 7)), 5
    documents, codes, offsets = random_corpus(rng, vocab, int(rng.integers(1, 9)), 40)
    # Windows from 1 (nearly every range precomputed) to 64 (every range read whole).
    index = index_for(codes, offsets, vocab, max_tokens, window=int(rng.choice([1, 2, 4, 64])))
    walks = 16
    states, prefixes = index.root_states(walks), [[] for _ in range(walks)]
    for depth in range(max_tokens + 1):
        rows, tokens = index.allowed(states, depth)
        chosen = torch.full((walks,), EOS)
        for w in range(walks):
            got = sorted(tokens[rows == w].tolist())
            want = sorted([c + OFFSET for c in next_codes(documents, prefixes[w])] if depth < max_tokens else [])
            if depth >= 1 and occurrences(documents, prefixes[w]):
                want = sorted(want + [EOS])
            assert got == want, (seed, prefixes[w], got, want)
            if depth and -1 not in prefixes[w]:
                assert int(states[w, 1] - states[w, 0]) == len(occurrences(documents, prefixes[w]))
            lo, hi, node = states[w].tolist()
            # The state carries its range's node: the one of key (depth, lo), kept for the root and
            # for large ranges only.
            has_node = 0 <= lo and (depth == 0 or hi - lo > index.window) and depth < max_tokens
            assert node == (np.searchsorted(index.node_key, depth * (index.n + 1) + lo) if has_node else -1)
            extend = [t for t in got if t != EOS]
            if extend:
                chosen[w] = int(rng.choice(extend))
                prefixes[w] = prefixes[w] + [int(chosen[w]) - OFFSET]
            else:
                prefixes[w] = prefixes[w] + [-1]  # ended or dead: no longer a span of the corpus
        states = index.advance(states, chosen, depth)


def test_a_span_ends_only_at_eos_and_a_token_outside_the_corpus_kills_it():
    documents = [np.array([0, 1, 2, 0, 1]), np.array([2, 2, 1])]
    offsets = np.array([0, 5, 8])
    index = index_for(np.concatenate(documents), offsets, 4, 3, window=2)
    root = index.root_states(1)
    assert EOS not in index.allowed(root, 0)[1].tolist()  # no empty span
    one = index.advance(root, torch.tensor([0 + OFFSET]), 0)
    assert int(one[0, 1] - one[0, 0]) == 2 and not index.is_complete(one)
    ended = index.advance(one, torch.tensor([EOS]), 1)
    assert index.is_complete(ended).tolist() == [True]
    assert index.allowed(ended, 2)[1].numel() == 0
    absent = index.advance(one, torch.tensor([3 + OFFSET]), 1)  # code 3 never follows 0
    assert int(absent[0, 1] - absent[0, 0]) == 0 and not index.is_complete(absent)
    assert index.allowed(absent, 2)[1].numel() == 0
    # "1 2" occurs inside document 0, and would once more across documents 0 and 1 (".. 0 1 | 2 2 1").
    lo, hi, _ = index.walk(torch.tensor([[1 + OFFSET, 2 + OFFSET]]))[0].tolist()
    assert hi - lo == 1
    # At the longest span only EOS may follow.
    three = index.walk(torch.tensor([[0 + OFFSET, 1 + OFFSET, 2 + OFFSET]]))
    assert index.allowed(three, 3)[1].tolist() == [EOS]


def test_documents_of_a_span_and_each_documents_codes():
    rng = np.random.default_rng(5)
    documents, codes, offsets = random_corpus(rng, 3, 6, 20)
    index = index_for(codes, offsets, 3, 4, window=2)
    for d, doc in enumerate(documents):
        assert index.document_codes(d).tolist() == doc.tolist()
    corpus, doc_of = index.corpus_codes()
    assert corpus.tolist() == codes.tolist() and doc_of.tolist() == np.repeat(np.arange(6), np.diff(offsets)).tolist()
    for span in ([0], [1, 2], [2, 0, 1]):
        lo, hi, _ = index.walk(torch.tensor([[c + OFFSET for c in span]]))[0].tolist()
        docs, counts = index.documents_in(lo, hi)
        found = occurrences(documents, span)
        assert docs.tolist() == sorted({d for d, _ in found})
        assert counts.tolist() == [sum(1 for d, _ in found if d == doc) for doc in docs.tolist()]


def test_the_index_saves_as_plain_arrays_and_loads_the_same(tmp_path):
    rng = np.random.default_rng(2)
    _, codes, offsets = random_corpus(rng, 5, 7, 30)
    index = SpanIndex.build(codes, offsets, 5, 4, window=2)
    index.save(tmp_path / "spans")
    again = SpanIndex.load(tmp_path / "spans")
    for name in ("text", "suffix_array", "doc_starts", "node_key", "edge_key", "edge_lo", "edge_hi"):
        assert np.array_equal(getattr(index, name), getattr(again, name)), name
    assert (again.vocab_size, again.max_tokens, again.window) == (5, 4, 2)
    assert all(path.suffix in (".npy", ".json") for path in (tmp_path / "spans").iterdir())


def test_every_span_a_model_generates_under_the_index_occurs_in_the_corpus():
    """A random decoder searched under the index: each finished hypothesis is a corpus span then EOS."""
    from transformers import T5Config, T5ForConditionalGeneration

    from ddro.decoding.beam import beam_search

    rng = np.random.default_rng(0)
    vocab = 6
    documents, codes, offsets = random_corpus(rng, vocab, 12, 30)
    index = index_for(codes, offsets, vocab, 4, window=3)
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(T5Config(vocab_size=vocab + OFFSET, d_model=16, d_ff=32, num_layers=1,
                                                num_heads=2, d_kv=8, decoder_start_token_id=0, pad_token_id=0,
                                                eos_token_id=EOS)).eval()
    inputs = {"input_ids": torch.randint(3, vocab + OFFSET, (3, 5)), "attention_mask": torch.ones(3, 5, dtype=torch.long)}
    found = beam_search(model, inputs, num_beams=20, max_new_tokens=5, decoder_start_token_id=0, trie=index)
    checked = 0
    for sequences, scores in zip(found.sequences, found.scores):
        for row, score in zip(sequences.tolist(), scores.tolist()):
            if score == float("-inf"):
                continue
            tokens = [t for t in row if t >= 0]
            assert tokens[-1] == EOS and EOS not in tokens[:-1]
            assert occurrences(documents, [t - OFFSET for t in tokens[:-1]]), tokens
            checked += 1
    assert checked >= 30
    # The search advances only the beams it keeps, as the index ends spans at its end token; the
    # generic path (every candidate advanced, completeness read from the states) finds the same.
    generic = beam_search(model, inputs, num_beams=20, max_new_tokens=5, decoder_start_token_id=0,
                          trie=WithoutEndToken(index))
    assert torch.equal(found.sequences, generic.sequences) and torch.equal(found.scores, generic.scores)


class WithoutEndToken:
    """A span index that does not tell the search its end token."""

    def __init__(self, index):
        self.root_states, self.allowed, self.advance, self.is_complete = (
            index.root_states, index.allowed, index.advance, index.is_complete)
