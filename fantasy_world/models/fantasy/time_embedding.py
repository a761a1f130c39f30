"""Time conditioning of the geometry branch (official ``vggt.time_embedding`` / ``vggt.time_projection``).

The geometry blocks are modulated by the *same* Wan timestep (0..1000) as the video blocks, but through
their own two small MLPs at the geometry width, evaluated in float32 like Wan's own time path so that
bf16 weights do not quantise the modulators.
"""

from __future__ import annotations

import torch
from torch import nn

from fantasy_world.models.wan.dit import sinusoidal_embedding


class GeometryTimeEmbedding(nn.Module):
    """Sinusoid(t) -> ``time_embedding`` (Linear, SiLU, Linear) -> ``time_projection`` (SiLU, Linear to 6·D)."""

    def __init__(self, freq_dim: int, dim: int) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.dim = dim
        self.time_embedding = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """t [B] timesteps -> (e [B, D], e0 [B, 6, D]), both float32."""
        sin = sinusoidal_embedding(self.freq_dim, t).float()
        first, last = self.time_embedding[0], self.time_embedding[2]
        e = _linear_f32(last, nn.functional.silu(_linear_f32(first, sin)))
        e0 = _linear_f32(self.time_projection[1], nn.functional.silu(e)).unflatten(1, (6, self.dim))
        return e, e0


def _linear_f32(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return nn.functional.linear(x.float(), layer.weight.float(), layer.bias.float())
