"""Latent bridge: video tokens after the preconditioning blocks -> geometry patch tokens.

Two variants, chosen by ``FantasyWorldConfig.bridge``:

* ``"conv"`` — the official ``vggt.projection_head``: a 1×1×1 Conv3d (video width -> geometry width).
  It is a per-token linear map; we evaluate it as one (``F.linear`` on the flattened kernel) instead of
  permuting to a 5-D volume and back.
* ``"transformer"`` — the seed design's 2-layer adapter, actually wired in (the seed never called it):
  pre-norm self-attention blocks at the video width with Wan's 3-D RoPE (so tokens know where they are
  before they leave the video stream), then a linear projection to the geometry width. The attention
  output and FFN output projections start at zero, so an untrained bridge is exactly the projection.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fantasy_world.errors import InputError
from fantasy_world.models.wan.attention import attention
from fantasy_world.models.wan.dit import WanRMSNorm
from fantasy_world.models.wan.rope import apply_rope, wan_rope_freqs


def _to_frames(x: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
    f, h, w = grid
    if x.ndim != 3 or x.shape[1] != f * h * w:
        raise InputError(
            f"latent bridge input {tuple(x.shape)}: expected [B, {f * h * w}, C] for grid {grid}"
        )
    return x.view(x.shape[0], f, h * w, x.shape[-1])


class ConvBridge(nn.Module):
    """Official latent bridge: ``proj`` = Conv3d(in_dim, out_dim, kernel 1) with bias."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv3d(in_dim, out_dim, kernel_size=1)

    def forward(self, x: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        """x [B, f·h·w, in_dim] -> [B, f, h·w, out_dim] float32."""
        weight = self.proj.weight.flatten(1)
        out = F.linear(x.to(weight.dtype), weight, self.proj.bias)
        return _to_frames(out.float(), grid)


class BridgeLayer(nn.Module):
    """Pre-norm transformer layer with q/k RMS norm and Wan 3-D RoPE."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        if dim % num_heads:
            raise InputError(f"bridge dim={dim}: expected a multiple of bridge_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)
        self.norm_q = WanRMSNorm(dim, eps)
        self.norm_k = WanRMSNorm(dim, eps)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.ffn = nn.Sequential(
            nn.Linear(dim, ffn_dim), nn.GELU(approximate="tanh"), nn.Linear(ffn_dim, dim)
        )
        for layer in (self.o, self.ffn[2]):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        h = self.norm1(x.to(self.q.weight.dtype))
        q = self.norm_q(self.q(h)).view(b, s, self.num_heads, self.head_dim)
        k = self.norm_k(self.k(h)).view(b, s, self.num_heads, self.head_dim)
        v = self.v(h).view(b, s, self.num_heads, self.head_dim)
        x = x + self.o(attention(apply_rope(q, freqs), apply_rope(k, freqs), v).flatten(2)).float()
        return x + self.ffn(self.norm2(x.to(self.q.weight.dtype))).float()


class TransformerBridge(nn.Module):
    """Seed latent bridge: ``layers`` (pre-norm attention + FFN at the video width), then ``proj``."""

    def __init__(
        self, in_dim: int, out_dim: int, num_layers: int, num_heads: int, ffn_dim: int, rope_theta: float
    ) -> None:
        super().__init__()
        self.rope_theta = rope_theta
        self.layers = nn.ModuleList(BridgeLayer(in_dim, num_heads, ffn_dim) for _ in range(num_layers))
        self.proj = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        """x [B, f·h·w, in_dim] -> [B, f, h·w, out_dim] float32."""
        _to_frames(x, grid)
        x = x.float()
        if self.layers:
            freqs = wan_rope_freqs(self.layers[0].head_dim, grid, x.device, self.rope_theta)
            for layer in self.layers:
                x = layer(x, freqs)
        return _to_frames(self.proj(x.to(self.proj.weight.dtype)).float(), grid)
