"""Plugging a `DocidTrie` into transformers' `generate` as a `LogitsProcessor`."""

from __future__ import annotations

import torch
from transformers import LogitsProcessor

from ddro.decoding.trie import DEAD


class TrieLogitsProcessor(LogitsProcessor):
    """Masks every token that would leave the set of docids.

    `input_ids` of a seq2seq decoder start with `decoder_start_tokens` tokens (1 for T5); the rest
    is the docid prefix. Once a prefix is a whole docid, only `eos_token_id` may follow (when
    given), so variable-length docids end cleanly; fixed-length ones are cut by `max_new_tokens`.
    """

    def __init__(self, trie, eos_token_id: int | None = None, decoder_start_tokens: int = 1):
        self.trie = trie
        self.eos_token_id = eos_token_id
        self.decoder_start_tokens = decoder_start_tokens

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        prefix = input_ids[:, self.decoder_start_tokens:]
        depth = prefix.shape[1]
        states = self.trie.walk(prefix)
        mask = self.trie.allowed_mask(states, depth, scores.shape[-1])
        if self.eos_token_id is not None:
            finished = self.trie.is_complete(states, depth) | (states == DEAD)
            mask[finished, self.eos_token_id] = True
        return scores.masked_fill(~mask, float("-inf"))
