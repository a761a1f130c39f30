"""Per-channel residual scaling (LayerScale) with the ``gamma`` key name."""

from __future__ import annotations

import torch
from torch import nn


class LayerScale(nn.Module):
    """Multiplies by a learned per-channel ``gamma`` initialised to a small constant, so a new block starts
    close to the identity."""

    def __init__(self, dim: int, init_values: float = 1e-5):
        super().__init__()
        self.init_values = init_values
        self.gamma = nn.Parameter(torch.full((dim,), float(init_values)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma
