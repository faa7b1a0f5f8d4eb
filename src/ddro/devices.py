"""Where a model runs when the user names no device."""

from __future__ import annotations


def torch_device(device: str | None = None) -> str:
    """`device` when given, else `cuda` when a GPU is there, else `cpu` (never a hard-coded `.cuda()`)."""
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")
