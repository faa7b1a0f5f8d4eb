"""The arithmetic precision of a model's passes: one setting for training, reference, validation and search.

- `fp32`: plain fp32 arithmetic (the cpu, tiny and t5-scratch presets).
- `bf16`: bf16 autocast over fp32 weights (the t5-base preset, as the paper trains on GPUs).

fp16 is refused: T5's feed-forward activations overflow its range (the reason T5 checkpoints are
trained in bf16), and a model that trains in bf16 scores differently in fp16.

Every pass of a `DocidModel` runs inside `autocast(model.precision, device)`: SFT and DDRO's
training steps, DDRO's reference log-probabilities, validation and search. The Trainer's own
mixed precision stays off (`training.arguments.DdroTrainingArguments`), since accelerate applies it by
wrapping `model.forward` for good, which left a model scoring differently after `Trainer.train()`
than when loaded again, and covered only `forward` (not DDRO's separate encoder pass).
"""

from __future__ import annotations

import torch

from ddro.errors import DdroError

PRECISIONS = ("fp32", "bf16")
DEFAULT_PRECISION = "fp32"


def check_precision(precision: str) -> str:
    """`precision` if ddro supports it, else a one-line error."""
    if precision == "fp16":
        raise DdroError("precision fp16: T5's activations overflow fp16; use bf16 (or fp32)")
    if precision not in PRECISIONS:
        raise DdroError(f"precision {precision!r}: choose from {', '.join(PRECISIONS)}")
    return precision


def autocast(precision: str, device) -> torch.autocast:
    """The autocast region of `precision` on `device`'s kind; `fp32` also switches off an enclosing one."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=check_precision(precision) == "bf16")
