"""The usual constrained decoding, kept as the reference `beam_search` is tested and timed against.

A nested-dict trie and transformers' `generate(prefix_allowed_tokens_fn=...)`, the way the GENRE
and DDRO code bases constrain docid generation: Python walks each beam's prefix at every step.
Slow by design; use `ddro.decoding.beam_search`.
"""

from __future__ import annotations

import torch

from ddro.decoding.beam import BeamSearchResult
from ddro.decoding.trie import PAD


def dict_trie(sequences) -> dict:
    """`{token: {token: ...}}` over the rows of `sequences` (PAD = -1 after a row's end)."""
    root: dict = {}
    for row in sequences:
        node = root
        for token in row:
            if token == PAD:
                break
            node = node.setdefault(int(token), {})
    return root


def prefix_allowed_tokens_fn(trie: dict, eos_token_id: int, decoder_start_tokens: int = 1):
    """transformers' callback: the children of the beam's prefix (EOS once it leaves the trie,
    since transformers refuses an empty list)."""

    def allowed(batch_id: int, sent: torch.Tensor) -> list[int]:
        node = trie
        for token in sent.tolist()[decoder_start_tokens:]:
            node = node.get(token)
            if node is None:
                return [eos_token_id]
        return list(node) or [eos_token_id]

    return allowed


def generate_constrained(model, inputs: dict, *, sequences, num_beams: int, max_new_tokens: int,
                         decoder_start_token_id: int, eos_token_id: int, pad_token_id: int = 0,
                         length_penalty: float = 0.0, trie: dict | None = None) -> BeamSearchResult:
    """Beam search through `model.generate` with a dict trie over `sequences`, in
    `beam_search`'s result format (`num_beams` >= 2: one beam is transformers' greedy search)."""
    trie = dict_trie(sequences) if trie is None else trie
    out = model.generate(
        **inputs, num_beams=num_beams, num_return_sequences=num_beams, max_new_tokens=max_new_tokens,
        length_penalty=length_penalty, early_stopping=False, do_sample=False,
        prefix_allowed_tokens_fn=prefix_allowed_tokens_fn(trie, eos_token_id),
        decoder_start_token_id=decoder_start_token_id, eos_token_id=eos_token_id, pad_token_id=pad_token_id,
        output_scores=True, return_dict_in_generate=True,
    )
    tokens = out.sequences[:, 1:]
    # Everything after a hypothesis' first EOS is padding.
    after_eos = (tokens == eos_token_id).long().cumsum(1) - (tokens == eos_token_id).long() > 0
    tokens = tokens.masked_fill(after_eos, PAD)
    batch = inputs["input_ids"].shape[0]
    padded = torch.full((batch * num_beams, max_new_tokens), PAD, dtype=torch.long, device=tokens.device)
    padded[:, : tokens.shape[1]] = tokens
    return BeamSearchResult(padded.view(batch, num_beams, -1), out.sequences_scores.view(batch, num_beams))
