"""Geometry transformer block: a VGGT block with FantasyWorld's time AdaLN (official ``Block``).

With time conditioning ``e0`` [B, 6, C] the six modulators are ``e = (modulation + e0).chunk(6)`` in fp32
and the block computes, exactly as the official code (including its quirks)::

    x = x + ls1(attn(norm1(x) * (1 + e[1]) + e[0]))                # e[2] unused: no attention gate
    x = x + ls2(mlp(norm2(x)) * (1 + e[4]) + e[3]) * e[5]          # shift/scale act on the MLP *output*

Without ``e0`` (camera-head trunk) it is a plain pre-norm VGGT block and ``modulation`` is unused.

Precision (issue 18): the norms run in fp32 and the matmuls in the weights' dtype; the residual stream is
never cast down, so with time conditioning it becomes fp32 at the first feed-forward (the fp32
modulators promote it), as in the official code under autocast. The heads read these tokens: keeping them
fp32 halves the camera head's bf16 error.

The block is split into :meth:`GeometryBlock.attend` and :meth:`GeometryBlock.feed_forward` because an IRG
layer runs the bidirectional cross-attention between the two halves.
"""

from __future__ import annotations

import torch
from torch import nn

from ..precision import layer_norm_fp32
from .attention import Attention
from .layer_scale import LayerScale
from .mlp import Mlp

Modulators = tuple[torch.Tensor, ...]


class GeometryBlock(nn.Module):
    """One frame or global block of the geometry branch (also the camera-head trunk block).

    Submodule names follow the official state dict: ``modulation``, ``norm1``, ``attn.{qkv,q_norm,k_norm,
    proj}``, ``ls1.gamma``, ``norm2``, ``mlp.{fc1,fc2}``, ``ls2.gamma``.
    """

    fp32_stream: bool = True  # False: cast the stream back to its input dtype (before issue 18; benchmarks)

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        ffn_bias: bool = True,
        qk_norm: bool = True,
        init_values: float | None = 0.01,
        rope: bool = True,
        rope_freq: float = 100.0,
        time_modulation: bool = True,
        eps: float = 1e-5,
    ):
        super().__init__()
        self.dim = dim
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(
            dim,
            num_heads,
            qkv_bias=qkv_bias,
            proj_bias=proj_bias,
            qk_norm=qk_norm,
            rope_freq=rope_freq if rope else None,
            norm_eps=eps,
        )
        self.modulation: nn.Parameter | None = None
        if time_modulation:
            self.modulation = nn.Parameter(torch.randn(1, 6, dim) / dim**0.5)
        self.ls1: nn.Module = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), bias=ffn_bias)
        self.ls2: nn.Module = LayerScale(dim, init_values) if init_values else nn.Identity()

    def modulators(self, e0: torch.Tensor | None, batch: int) -> Modulators | None:
        """Six fp32 modulators [batch, 1, C] from ``e0`` [B, 6, C], or ``None`` without conditioning.

        When ``batch`` is a multiple of B (frame blocks see [B·S, P, C]) each sample's ``e0`` is repeated
        for its S frames, batch-major, as the official block does; callers may also pre-repeat it.
        """
        if e0 is None:
            return None
        if self.modulation is None:
            raise ValueError("this GeometryBlock was built with time_modulation=False but got e0")
        if e0.shape[0] != batch:
            if batch % e0.shape[0]:
                raise ValueError(f"e0 batch {e0.shape[0]} does not divide token batch {batch}")
            e0 = e0.repeat_interleave(batch // e0.shape[0], dim=0)
        return (self.modulation.float() + e0.float()).chunk(6, dim=1)

    def attend(
        self, x: torch.Tensor, pos: torch.Tensor | None = None, e0: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, Modulators | None]:
        """Attention half: returns the updated tokens and the modulators the FFN half needs."""
        mods = self.modulators(e0, x.shape[0])
        h = layer_norm_fp32(self.norm1, x)
        if mods is not None:
            h = h * (1 + mods[1]) + mods[0]
        out = x + self.ls1(self.attn(h.to(self.attn.qkv.weight.dtype), pos))
        return (out if self.fp32_stream else out.to(x.dtype)), mods

    def feed_forward(self, x: torch.Tensor, mods: Modulators | None) -> torch.Tensor:
        """FFN half; with modulators the shift/scale act on the MLP output, then ``e[5]`` gates it."""
        h = self.mlp(layer_norm_fp32(self.norm2, x).to(self.mlp.fc1.weight.dtype))
        if mods is None:
            return x + self.ls2(h)
        out = x + self.ls2(h * (1 + mods[4]) + mods[3]) * mods[5]
        return out if self.fp32_stream else out.to(x.dtype)

    def forward(
        self, x: torch.Tensor, pos: torch.Tensor | None = None, e0: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x [B, N, C], pos [B, N, 2] (y, x) or None, e0 [B or B', 6, C] or None → [B, N, C]."""
        return self.feed_forward(*self.attend(x, pos, e0))
