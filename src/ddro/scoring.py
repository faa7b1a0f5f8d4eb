"""Sequence log-probabilities of docids under a seq2seq model (teacher forcing).

`log p(d | q)` is the sum over the docid's decoder tokens (EOS included) of each token's
log-probability under the full softmax: the score beam search ranks by (with `length_penalty=0`)
and the quantity DDRO's pairwise loss compares.

Many docids of one query (a pair's two documents, a query's pairs, every docid of the
collection) are scored by encoding the query once (`query_states`) and decoding each docid
against a copy of its query's states (`docid_logprobs`).
"""

from __future__ import annotations

import torch


def sequence_logprobs(model, labels: torch.Tensor, **encoder_inputs) -> torch.Tensor:
    """`[batch]` sums of label-token log-probabilities; `labels` padded with -100.

    `encoder_inputs` are `input_ids`/`attention_mask`, or `encoder_outputs`/`attention_mask` to
    reuse one encoding. Gradients flow when the caller has them enabled.
    """
    logits = model(labels=labels, **encoder_inputs).logits.float()
    mask = labels != -100
    token_logp = torch.log_softmax(logits, dim=-1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (token_logp * mask).sum(-1)


def query_states(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The encoder's last hidden states of a batch of queries, `[queries, tokens, width]`.

    Under DDP `model` is the wrapper: its encoder is the wrapped model's, and the decoder pass that
    follows (`docid_logprobs`) goes through the wrapper's forward, which syncs every gradient."""
    return getattr(model, "module", model).get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def docid_logprobs(model, labels: torch.Tensor, states: torch.Tensor, attention_mask: torch.Tensor,
                   rows: torch.Tensor) -> torch.Tensor:
    """`sequence_logprobs` of each label row given the query `rows[i]` of an encoded batch
    (`states` from `query_states`, and the queries' `attention_mask`)."""
    from transformers.modeling_outputs import BaseModelOutput

    expanded = BaseModelOutput(last_hidden_state=states.index_select(0, rows))
    return sequence_logprobs(model, labels, encoder_outputs=expanded, attention_mask=attention_mask.index_select(0, rows))
