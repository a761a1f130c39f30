"""Multi-head self-attention of VGGT blocks: fused qkv, optional per-head QK LayerNorm and 2-D RoPE."""

from __future__ import annotations

import torch
from torch import nn

from fantasy_world.models.wan.attention import sdpa

from .rope2d import apply_rope_2d


class Attention(nn.Module):
    """Self-attention over [B, N, C] tokens with SDPA through the selected backend (scale 1/sqrt(head_dim)).

    QK-norm (``q_norm``/``k_norm``, LayerNorm over the head dim with affine) is applied before RoPE, as
    in VGGT. RoPE is used only when the module was built with ``rope_freq`` and ``pos`` is given.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        qk_norm: bool = True,
        rope_freq: float | None = 100.0,
        norm_eps: float = 1e-5,
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.rope_freq = rope_freq
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.q_norm: nn.Module = nn.LayerNorm(self.head_dim, eps=norm_eps) if qk_norm else nn.Identity()
        self.k_norm: nn.Module = nn.LayerNorm(self.head_dim, eps=norm_eps) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        self.fp8_attention = False  # set by FP8 mode (quant/selection.py)

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        if self.rope_freq is not None and pos is not None:
            q = apply_rope_2d(q, pos, self.rope_freq)
            k = apply_rope_2d(k, pos, self.rope_freq)
        out = sdpa(q, k, v, self.fp8_attention)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))
