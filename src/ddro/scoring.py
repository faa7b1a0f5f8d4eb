"""Sequence log-probabilities of docids under a seq2seq model (teacher forcing).

`log p(d | q)` is the sum over the docid's decoder tokens (EOS included) of each token's
log-probability under the full softmax: the score beam search ranks by (with `length_penalty=0`)
and the quantity DDRO's pairwise loss compares.
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
