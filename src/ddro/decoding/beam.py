"""Constrained beam search whose per-step work is a handful of batched tensor operations.

transformers' `prefix_allowed_tokens_fn` calls Python once per beam per step and re-reads each
prefix. Here every beam carries its constraint's state from step to step (a `DocidTrie` state is
one int64, a `SpanIndex` state two): a step runs the decoder once on all beams of all queries (KV
cache), takes the allowed tokens of every state in one `allowed` call, scatters the allowed
log-probabilities into a `-inf` score table, picks the next beams with one `topk` per query and
advances the states of the winners.

The search follows transformers' beam search (`early_stopping=False`) so that both return the
same hypotheses: of the `2 * num_beams` best candidates per query, those that complete a docid
and rank within the first `num_beams` join the query's finished pool, the best `num_beams` that
do not complete go on. Scores are sums of the model's log-probabilities over the whole
vocabulary (the quantity the exhaustive scorer and DDRO's loss use), divided by
`length ** length_penalty` for finished hypotheses. The search stops when no query can improve
its pool any more: with `length_penalty=0` a continuation never scores above its prefix, so the
test is exact. Fixed-length docids all complete at their one length.

The encoder runs once per query batch; the cross-attention cache holds the same values for every
beam of a query, so once the number of beams per query stops growing only the self-attention
cache is reordered.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch

from ddro.decoding.trie import PAD


@dataclass
class BeamSearchResult:
    """`sequences` [batch, beams, length] generated tokens (PAD = -1 after a hypothesis' end) and
    `scores` [batch, beams], best first; `-inf` where fewer than `beams` hypotheses exist."""

    sequences: torch.Tensor
    scores: torch.Tensor
    # Constrained searches: [batch, beams, length] the sum of log-probabilities up to each token of
    # a hypothesis (its prefixes' scores, which n-gram docids rank by), -inf after its end.
    prefix_scores: torch.Tensor | None = None


def _cache_argument(model) -> str:
    # transformers renamed `past_key_values` to `cache` (5.x); take whichever this version has.
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _decoder_step(model, name, encoder_outputs, attention_mask, last_tokens, cache):
    out = model(encoder_outputs=encoder_outputs, attention_mask=attention_mask,
                decoder_input_ids=last_tokens[:, None], use_cache=True, **{name: cache})
    return torch.log_softmax(out.logits[:, -1].float(), dim=-1), getattr(out, name)


def _reorder(cache, rows: torch.Tensor, widening: bool) -> None:
    # Cross-attention values depend on the query only: while the number of beams per query stays
    # the same, picking beams within a query leaves them unchanged.
    target = cache if widening else getattr(cache, "self_attention_cache", cache)
    target.reorder_cache(rows)


@torch.inference_mode()
def beam_search(model, inputs: dict, *, num_beams: int, max_new_tokens: int, decoder_start_token_id: int,
                trie=None, length_penalty: float = 0.0) -> BeamSearchResult:
    """Beam search of a seq2seq `model` over `inputs` (`input_ids`, `attention_mask`).

    With a `trie` (a `DocidTrie` over sequences that end in an end token, or a `SpanIndex`, whose
    sequences are the corpus' spans then EOS) only its sequences are generated and a hypothesis is
    finished when its tokens form a whole sequence; without one the search is
    unconstrained and every beam runs `max_new_tokens` steps (the benchmark's baseline).
    """
    from transformers.modeling_outputs import BaseModelOutput

    input_ids, attention_mask = inputs["input_ids"], inputs["attention_mask"]
    device = input_ids.device
    batch = input_ids.shape[0]
    k = max(int(num_beams), 1)
    hidden = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    constrained = trie is not None
    width = 1
    live_scores = torch.zeros(batch, 1, device=device)
    live_tokens = torch.zeros(batch, 1, 0, dtype=torch.long, device=device)
    live_prefix = torch.zeros(batch, 1, 0, device=device)
    last = torch.full((batch,), decoder_start_token_id, dtype=torch.long, device=device)
    states = trie.root_states(batch, device) if constrained else None
    # A constraint whose sequences are complete exactly when they take its `end_token` (a span
    # index: any span ends at EOS) needs its states for the beams kept only, half the candidates.
    end_token = getattr(trie, "end_token", None)
    done_scores = torch.full((batch, k), float("-inf"), device=device)
    done_tokens = torch.full((batch, k, max_new_tokens), PAD, dtype=torch.long, device=device)
    done_prefix = torch.full((batch, k, max_new_tokens), float("-inf"), device=device)
    cache, cache_name = None, _cache_argument(model)
    encoder_outputs, mask_rows = BaseModelOutput(last_hidden_state=hidden), attention_mask
    for step in range(max_new_tokens):
        logp, cache = _decoder_step(model, cache_name, encoder_outputs, mask_rows, last, cache)
        vocab = logp.shape[-1]
        if constrained:
            rows, tokens = trie.allowed(states, step)
            candidates = torch.full_like(logp, float("-inf"))
            # Flat index_select / index_copy_: a few times faster than `[rows, tokens]` indexing on CPU.
            flat = rows * vocab + tokens
            candidates.view(-1).index_copy_(0, flat, logp.view(-1).index_select(0, flat))
        else:
            candidates = logp
        candidates = (candidates + live_scores.reshape(-1, 1)).view(batch, width * vocab)
        take = min((2 if constrained else 1) * k, width * vocab)
        top_scores, top_index = candidates.topk(take, dim=1)
        parent, token = top_index // vocab, top_index % vocab
        history = torch.cat([live_tokens.gather(1, parent[:, :, None].expand(-1, -1, step)), token[:, :, None]], 2)
        prefix_history = torch.cat([live_prefix.gather(1, parent[:, :, None].expand(-1, -1, step)),
                                    top_scores[:, :, None]], 2)
        parent_rows = (torch.arange(batch, device=device)[:, None] * width + parent).reshape(-1)
        if constrained:
            if end_token is None:
                next_states = trie.advance(states[parent_rows], token.reshape(-1), step)
                complete = trie.is_complete(next_states, step + 1).view(batch, take)
            else:
                complete = token == end_token
            complete &= torch.isfinite(top_scores)
            finishing = complete & (torch.arange(take, device=device) < k)
            normalized = top_scores / float(step + 1) ** length_penalty
            pool = torch.cat([done_scores, torch.where(finishing, normalized, float("-inf"))], 1)
            padded = torch.full((batch, take, max_new_tokens), PAD, dtype=torch.long, device=device)
            padded[:, :, : step + 1] = history
            padded_prefix = torch.full((batch, take, max_new_tokens), float("-inf"), device=device)
            padded_prefix[:, :, : step + 1] = prefix_history
            done_scores, best = pool.topk(k, dim=1)
            done_tokens = torch.cat([done_tokens, padded], 1).gather(1, best[:, :, None].expand(-1, -1, max_new_tokens))
            done_prefix = torch.cat([done_prefix, padded_prefix], 1).gather(1, best[:, :, None].expand(-1, -1, max_new_tokens))
            keep = torch.where(complete, float("-inf"), top_scores).topk(min(k, take), dim=1).indices
        else:
            keep = torch.arange(take, device=device).expand(batch, -1)
        widening = keep.shape[1] != width or step == 0
        width = keep.shape[1]
        live_scores = top_scores.gather(1, keep)
        live_tokens = history.gather(1, keep[:, :, None].expand(-1, -1, step + 1))
        live_prefix = prefix_history.gather(1, keep[:, :, None].expand(-1, -1, step + 1))
        last = token.gather(1, keep).reshape(-1)
        if constrained:
            # Rows of the flat states: a trie's state is one int64, a span index's three.
            kept = (torch.arange(batch, device=device)[:, None] * take + keep).reshape(-1)
            if end_token is None:
                states = next_states[kept]
            else:
                states = trie.advance(states[parent_rows[kept]], token.reshape(-1)[kept], step)
            if step + 1 == max_new_tokens or _pools_final(done_scores, live_scores, step, max_new_tokens, length_penalty):
                break
        rows = parent_rows.view(batch, take).gather(1, keep).reshape(-1)
        _reorder(cache, rows, widening)
        if widening:
            query_of_row = torch.arange(batch, device=device).repeat_interleave(width)
            encoder_outputs = BaseModelOutput(last_hidden_state=hidden.index_select(0, query_of_row))
            mask_rows = attention_mask.index_select(0, query_of_row)
    if not constrained:
        return BeamSearchResult(live_tokens, live_scores)
    return BeamSearchResult(done_tokens, done_scores, done_prefix)


def _pools_final(done_scores, live_scores, step: int, max_new_tokens: int, length_penalty: float) -> bool:
    """Whether no live beam of any query can still enter its query's finished pool."""
    best_live = live_scores[:, 0]
    # The best score a live beam could still reach: log-probabilities only fall, and the length
    # division helps most at the longest length when length_penalty > 0, else at the next one.
    length = max_new_tokens if length_penalty > 0 else step + 2
    bound = best_live / float(length) ** length_penalty
    return bool(((bound <= done_scores[:, -1]) | torch.isneginf(best_live)).all())
