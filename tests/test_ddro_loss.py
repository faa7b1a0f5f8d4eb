"""The DDRO loss against an independent plain-PyTorch computation, values and gradients."""

import math

import pytest
import torch

from ddro.training.ddro_loss import LOSS_TYPES, ddro_loss


def reference_loss(pc, pr, rc, rr, beta, loss_type):
    """The formula written out element by element, with plain Python math."""
    out = []
    for a, b, c, d in zip(pc.tolist(), pr.tolist(), rc.tolist(), rr.tolist()):
        h = (a - c) - (b - d)
        if loss_type == "sigmoid":
            out.append(-math.log(1 / (1 + math.exp(-beta * h))))
        elif loss_type == "hinge":
            out.append(max(0.0, 1 - beta * h))
        else:
            out.append((h - 1 / (2 * beta)) ** 2)
    return out


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
@pytest.mark.parametrize("beta", [0.1, 0.4, 2.0])
def test_loss_and_gradient_match_the_formula(loss_type, beta):
    torch.manual_seed(0)
    pc, pr = (torch.randn(7, dtype=torch.float64, requires_grad=True) * 3 for _ in range(2))
    pc, pr = pc.detach().requires_grad_(), pr.detach().requires_grad_()
    rc, rr = torch.randn(7, dtype=torch.float64) * 3, torch.randn(7, dtype=torch.float64) * 3
    losses, chosen_rewards, rejected_rewards = ddro_loss(pc, pr, rc, rr, beta, loss_type)
    assert torch.allclose(losses, torch.tensor(reference_loss(pc, pr, rc, rr, beta, loss_type), dtype=torch.float64))
    assert torch.allclose(chosen_rewards, beta * (pc - rc)) and torch.allclose(rejected_rewards, beta * (pr - rr))
    losses.sum().backward()
    # Analytic gradients: d/d logp(d+) = -d/d logp(d-) = dL/dh.
    h = ((pc - rc) - (pr - rr)).detach()
    if loss_type == "sigmoid":
        dh = -beta * torch.sigmoid(-beta * h)
    elif loss_type == "hinge":
        dh = torch.where(1 - beta * h > 0, -beta * torch.ones_like(h), torch.zeros_like(h))
    else:
        dh = 2 * (h - 1 / (2 * beta))
    assert torch.allclose(pc.grad, dh) and torch.allclose(pr.grad, -dh)


def test_equal_shifts_give_log2_for_sigmoid():
    x = torch.tensor([-3.0, -5.0])
    losses, _, _ = ddro_loss(x, x - 1, x, x - 1, 0.4, "sigmoid")
    assert torch.allclose(losses, torch.full((2,), math.log(2)))


def test_invalid_arguments():
    x = torch.zeros(2)
    with pytest.raises(ValueError, match="loss_type"):
        ddro_loss(x, x, x, x, 0.4, "kto")
    with pytest.raises(ValueError, match="beta"):
        ddro_loss(x, x, x, x, 0.0, "sigmoid")
