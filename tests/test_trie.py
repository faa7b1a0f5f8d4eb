"""`DocidTrie` against a naive reference, and inside transformers' `generate`."""

import numpy as np
import pytest
import torch

from ddro.decoding.trie import DEAD, DocidTrie


def naive_next(seqs, prefix):
    """Reference: scan every docid."""
    out = set()
    for s in seqs:
        s = [x for x in s if x != -1]
        if len(s) > len(prefix) and tuple(s[: len(prefix)]) == tuple(prefix):
            out.add(s[len(prefix)])
    return out


def naive_complete(seqs, prefix):
    return any([x for x in s if x != -1] == list(prefix) for s in seqs)


def random_table(rng, fixed):
    n, length, vocab = int(rng.integers(1, 80)), int(rng.integers(1, 7)), int(rng.integers(2, 7))
    seqs = rng.integers(0, vocab, size=(n, length))
    if not fixed:
        for i, end in enumerate(rng.integers(1, length + 1, size=n)):
            seqs[i, end:] = -1
    return seqs, vocab


@pytest.mark.parametrize("fixed", [True, False])
def test_batched_lookups_match_naive_reference(fixed):
    rng = np.random.default_rng(7 if fixed else 8)
    for _ in range(40):
        seqs, vocab = random_table(rng, fixed)
        trie = DocidTrie(seqs, vocab)
        for depth in range(seqs.shape[1] + 1):
            # Half the prefixes are real docid prefixes, half random (mostly invalid).
            real = seqs[rng.integers(0, len(seqs), 16), :depth]
            prefixes = np.concatenate([np.where(real < 0, 0, real), rng.integers(0, vocab, (16, depth))])
            mask = trie.next_tokens_mask(torch.from_numpy(prefixes))
            states = trie.walk(torch.from_numpy(prefixes))
            rows, tokens = trie.allowed(states, depth)
            complete = trie.is_complete(states, depth)
            for b, prefix in enumerate(prefixes):
                expected = naive_next(seqs, prefix)
                assert set(torch.nonzero(mask[b]).flatten().tolist()) == expected
                assert set(tokens[rows == b].tolist()) == expected
                assert bool(complete[b]) == naive_complete(seqs, prefix)
                if not expected and not naive_complete(seqs, prefix):
                    assert states[b] == DEAD


def test_rows_of_lists_the_docids_below_a_prefix():
    seqs = np.array([[0, 1, 2], [0, 1, 3], [2, 2, 2], [0, 1, 2]])
    trie = DocidTrie(seqs, 4)
    state = trie.walk(torch.tensor([[0, 1]]))[0]
    assert sorted(trie.rows_of(int(state)).tolist()) == [0, 1, 3]
    leaf = trie.walk(torch.tensor([[0, 1, 2]]))[0]
    assert sorted(trie.rows_of(int(leaf)).tolist()) == [0, 3]  # a shared docid lists both
    assert trie.rows_of(int(trie.walk(torch.tensor([[2, 2, 2]]))[0])).tolist() == [2]


def test_single_docid_and_mixed_lengths():
    trie = DocidTrie(np.array([[3, 1, 4]]), 5)
    assert trie.next_tokens_mask(torch.tensor([[3]]))[0].nonzero().flatten().tolist() == [1]
    mask = trie.next_tokens_mask(torch.tensor([[3, 1], [3, 0]]), lengths=torch.tensor([1, 0]))
    assert mask[0].nonzero().flatten().tolist() == [1] and mask[1].nonzero().flatten().tolist() == [3]


def test_from_table_maps_to_model_token_ids():
    from ddro.docids.table import DocidTable

    table = DocidTable("pq", ["a", "b"], np.array([[0, 1], [0, 2]]), ["<x>", "<y>", "<z>"], True)
    trie = DocidTrie.from_table(table, token_ids=[100, 101, 102], vocab_size=110)
    assert trie.next_tokens_mask(torch.tensor([[100]]))[0].nonzero().flatten().tolist() == [101, 102]


def test_memory_stays_small_for_random_pq_docids():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, size=(20000, 8)) + np.arange(8) * 256
    trie = DocidTrie(codes, 8 * 256)
    assert trie.nbytes / len(codes) < 2 * 8 + 40
    assert trie.n_nodes < len(codes) // 4


def test_prefixes_of_different_lengths_in_one_call():
    rng = np.random.default_rng(3)
    seqs, vocab = random_table(rng, fixed=False)
    seqs = np.concatenate([seqs, rng.integers(0, vocab, size=(40, seqs.shape[1]))])
    trie = DocidTrie(seqs, vocab)
    lengths = rng.integers(0, seqs.shape[1] + 1, size=64)
    prefixes = seqs[rng.integers(0, len(seqs), 64)].copy()
    prefixes[prefixes < 0] = 0
    mask = trie.next_tokens_mask(torch.from_numpy(prefixes), lengths=torch.from_numpy(lengths))
    states = trie.walk(torch.from_numpy(prefixes), torch.from_numpy(lengths))
    complete = trie.is_complete(states, torch.from_numpy(lengths))
    for b in range(64):
        prefix = prefixes[b, : lengths[b]]
        assert set(torch.nonzero(mask[b]).flatten().tolist()) == naive_next(seqs, prefix)
        assert bool(complete[b]) == naive_complete(seqs, prefix)
