"""The DDRO pairwise loss (Mekonnen et al., SIGIR 2025, eq. for L_DDRO), as one function.

For a query q, a relevant docid d+ (`chosen`) and a non-relevant docid d- (`rejected`), with
sequence log-probabilities summed over each docid's tokens under the model being trained
(`*_logps`) and under the frozen SFT reference (`ref_*_logps`):

    h = (logp(d+|q) - logp_ref(d+|q)) - (logp(d-|q) - logp_ref(d-|q))

    sigmoid (the paper):  -log sigmoid(beta * h)
    hinge:                max(0, 1 - beta * h)
    ipo:                  (h - 1 / (2 * beta))^2, on per-token average log-probabilities

For `ipo` the four log-probabilities are each docid's average per token (its sum divided by its
token count, EOS included), as TRL's IPO computes them; `sigmoid` and `hinge` take the sums (the
paper's, and the score search ranks by). `ddro_loss` applies the formula to what it is given;
`compared_logps` turns sums into what a loss type compares, and the DDRO trainer, its reference
log-probabilities and the held-out pair loss all go through it.

The names follow TRL's DPO vocabulary (`chosen`/`rejected`, `beta`, `loss_type`) so users can map
settings across; there is no reward model and no sampling. The implicit rewards
`beta * (logp - logp_ref)` are returned for logging (their difference is the margin, and the
share of pairs with a positive margin the accuracy).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSS_TYPES = ("sigmoid", "hinge", "ipo")


def compared_logps(logps: torch.Tensor, token_counts: torch.Tensor, loss_type: str) -> torch.Tensor:
    """Summed docid log-probabilities as `loss_type` compares them: unchanged, or for `ipo` divided
    by each docid's token count."""
    return logps / token_counts.to(logps.dtype) if loss_type == "ipo" else logps


def ddro_loss(
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float = 0.4,
    loss_type: str = "sigmoid",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair losses `[batch]`, and the chosen and rejected implicit rewards (detached)."""
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {LOSS_TYPES}, not {loss_type!r}")
    if beta <= 0:
        raise ValueError(f"beta must be positive, not {beta}")
    chosen_shift = chosen_logps - ref_chosen_logps
    rejected_shift = rejected_logps - ref_rejected_logps
    h = chosen_shift - rejected_shift
    if loss_type == "sigmoid":
        losses = -F.logsigmoid(beta * h)
    elif loss_type == "hinge":
        losses = torch.relu(1 - beta * h)
    else:
        losses = (h - 1 / (2 * beta)) ** 2
    return losses, (beta * chosen_shift).detach(), (beta * rejected_shift).detach()
