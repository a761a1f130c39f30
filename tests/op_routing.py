"""A tiny bf16 Wan DiT run without and with one GPU op's route forced on (shared test setup).

Our CUDA-only ops (``linear_gelu``, ``norm_rope``, ``fp8_gelu``) each have an ``_on_gpu`` test and a CPU
form equal to the unfused modules: forcing the route on a CPU shows where the model calls the op and that
its outputs do not change.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import torch
from torch import nn

from fantasy_world.models.wan.config import WanDiTConfig
from fantasy_world.models.wan.dit import WanDiT


def routed_forward(
    monkeypatch,
    module: ModuleType,
    op: str,
    layers: int = 1,
    frames: int = 1,
    prepare: Callable[[nn.Module], object] | None = None,
) -> tuple[list[tuple[int, ...]], torch.Tensor, torch.Tensor, WanDiT]:
    """(shapes of the first argument of each ``module.<op>`` call, plain output, routed output, the model)
    for a 64-wide, 4-head DiT on a ``frames``×4×4 latent (2×2 tokens per frame); ``prepare`` edits the
    model before both forwards."""
    cfg = WanDiTConfig(
        dim=64, ffn_dim=96, num_heads=4, num_layers=layers, freq_dim=32, text_dim=24, text_len=8
    )
    torch.manual_seed(3)
    dit = WanDiT(cfg).to(torch.bfloat16)
    for p in dit.parameters():
        p.data.normal_(0, 0.05)
    if prepare is not None:
        prepare(dit)
    x = torch.randn(1, cfg.in_dim, frames, 4, 4)
    t = torch.tensor([500.0])
    ctx = torch.randn(1, 8, 24)
    with torch.no_grad():
        plain = dit(x, t, ctx)
    calls: list[tuple[int, ...]] = []
    real = getattr(module, op)
    monkeypatch.setattr(module, "_on_gpu", lambda x: True)
    monkeypatch.setattr(module, op, lambda first, *a: calls.append(tuple(first.shape)) or real(first, *a))
    with torch.no_grad():
        routed = dit(x, t, ctx)
    return calls, plain, routed, dit
