"""``--bf16``: bfloat16 autocast around a whole ``algo.update`` call, applied from outside the algorithm."""

from __future__ import annotations

import contextlib

import torch


def autocast(device: torch.device | str, bf16: bool) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on ``device`` if ``bf16``, else nothing. Networks return float32 (``networks.f32``), so
    losses, targets and optimizer state stay float32; matrix products run in bfloat16."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
