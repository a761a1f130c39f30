"""Zero-gated bidirectional cross-attention between the video and geometry token streams (as in the official model).

One shared query/key space: ``m1_proj`` (video) and ``m2_proj`` (geometry) are the queries in one
direction and the keys in the other (GLIP-style), so both directions attend through the same similarity
matrix. Both sides get the same 3-D (frame, row, column) RoPE so a geometry patch and the video token it
came from line up; the camera/register tokens of each frame get the identity rotation ``1+0j`` (the seed
used 0, which zeroes q/k). The gates ``gamma_m1``/``gamma_m2`` start at zero, so an untrained module
leaves both streams unchanged bit for bit.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from fantasy_world.errors import InputError
from fantasy_world.models.wan.attention import attention
from fantasy_world.models.wan.rope import apply_rope, wan_rope_freqs


@lru_cache(maxsize=32)
def _geo_freqs(
    head_dim: int, grid: tuple[int, int, int], n_special: int, device: torch.device, theta: float
) -> torch.Tensor:
    f, h, w = grid
    video = wan_rope_freqs(head_dim, grid, device, theta).view(f, h * w, head_dim // 2)
    ident = torch.ones(f, n_special, head_dim // 2, dtype=video.dtype, device=device)
    return torch.cat([ident, video], dim=1).reshape(f * (n_special + h * w), head_dim // 2)


def bicross_rope(
    head_dim: int,
    grid: tuple[int, int, int],
    n_special: int,
    device: torch.device | str,
    theta: float = 10000.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """RoPE tables (video [f·h·w, d/2], geometry [f·(n_special+h·w), d/2]); cached, do not modify."""
    dev = torch.device(device)
    grid = tuple(int(g) for g in grid)
    return wan_rope_freqs(head_dim, grid, dev, theta), _geo_freqs(
        head_dim, grid, int(n_special), dev, float(theta)
    )


class BiMultiHeadAttention(nn.Module):
    """Projections of the bidirectional attention (official key names under ``cross_attn``)."""

    def __init__(self, m1_dim: int, m2_dim: int, embed_dim: int, num_heads: int) -> None:
        super().__init__()
        if embed_dim % num_heads or (embed_dim // num_heads) % 2:
            raise InputError(
                f"bicross_dim={embed_dim}: expected a multiple of bicross_heads={num_heads} with an even head dim"
            )
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.m1_proj = nn.Linear(m1_dim, embed_dim)
        self.m2_proj = nn.Linear(m2_dim, embed_dim)
        self.values_m1_proj = nn.Linear(m1_dim, embed_dim)
        self.values_m2_proj = nn.Linear(m2_dim, embed_dim)
        self.out_m1_proj = nn.Linear(embed_dim, m1_dim)
        self.out_m2_proj = nn.Linear(embed_dim, m2_dim)
        self.fp8_attention = False  # set by FP8 mode (quant/selection.py)
        for proj in (
            self.m1_proj,
            self.m2_proj,
            self.values_m1_proj,
            self.values_m2_proj,
            self.out_m1_proj,
            self.out_m2_proj,
        ):
            nn.init.xavier_uniform_(proj.weight)
            nn.init.zeros_(proj.bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], self.num_heads, self.head_dim)

    def forward(
        self, x1: torch.Tensor, x2: torch.Tensor, freqs1: torch.Tensor, freqs2: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised x1 [B, L1, m1], x2 [B, L2, m2] -> updates (geometry->video, video->geometry)."""
        dtype = self.m1_proj.weight.dtype
        x1, x2 = x1.to(dtype), x2.to(dtype)
        a = apply_rope(self._heads(self.m1_proj(x1)), freqs1)
        b = apply_rope(self._heads(self.m2_proj(x2)), freqs2)
        v1 = self._heads(self.values_m1_proj(x1))
        v2 = self._heads(self.values_m2_proj(x2))
        out1 = attention(a, b, v2, self.fp8_attention).flatten(2)
        out2 = attention(b, a, v1, self.fp8_attention).flatten(2)
        return self.out_m1_proj(out1), self.out_m2_proj(out2)


class BiCrossAttention(nn.Module):
    """Pre-norm (LayerNorm without affine, eps 1e-6) + bidirectional attention + zero-init gated residuals."""

    def __init__(self, m1_dim: int, m2_dim: int, embed_dim: int, num_heads: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.cross_attn = BiMultiHeadAttention(m1_dim, m2_dim, embed_dim, num_heads)
        self.gamma_m1 = nn.Parameter(torch.zeros(m1_dim))
        self.gamma_m2 = nn.Parameter(torch.zeros(m2_dim))

    @property
    def head_dim(self) -> int:
        return self.cross_attn.head_dim

    def is_inert(self) -> bool:
        """True when both gates are frozen at exactly zero: the module cannot change anything, so skip it."""
        gates = (self.gamma_m1, self.gamma_m2)
        if any(g.requires_grad for g in gates) or any(g.is_meta for g in gates):
            return False
        if torch.compiler.is_compiling():
            return False  # reading the gates would break the graph; zero gates add exactly 0 anyway
        return not any(bool(g.detach().any()) for g in gates)

    def forward(
        self, x1: torch.Tensor, x2: torch.Tensor, freqs1: torch.Tensor, freqs2: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Video x1 [B, L1, m1] and geometry x2 [B, L2, m2] (float32 residual streams) -> both updated."""
        if x1.shape[1] != freqs1.shape[0] or x2.shape[1] != freqs2.shape[0]:
            raise InputError(
                f"bicross tokens {tuple(x1.shape)} / {tuple(x2.shape)} do not match RoPE tables "
                f"{tuple(freqs1.shape)} / {tuple(freqs2.shape)}"
            )
        if self.is_inert():
            return x1, x2
        n1 = F.layer_norm(x1.float(), x1.shape[-1:], eps=self.eps)
        n2 = F.layer_norm(x2.float(), x2.shape[-1:], eps=self.eps)
        d1, d2 = self.cross_attn(n1, n2, freqs1, freqs2)
        return x1 + self.gamma_m1.float() * d1.float(), x2 + self.gamma_m2.float() * d2.float()
