"""Triton where the install has it (PyTorch's CUDA wheels bring it; CPU installs do not): the one import our
GPU kernels (``norm_rope``, ``fp8_gelu``, ``fp8_heads``) share, so each defines its kernels only when it is
there and otherwise runs its torch form."""

from __future__ import annotations

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the install
    triton = tl = None


def triton_runs(x: torch.Tensor) -> bool:
    """Whether a Triton kernel can take ``x``: a CUDA tensor, and Triton installed."""
    return x.is_cuda and triton is not None
