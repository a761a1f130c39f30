"""Seeded random weights keyed by parameter name, so two implementations get identical weights.

Why: the benchmark times our models against diffusers' at real sizes without real checkpoints, and a
14B model pair does not fit one card at once. Each tensor is drawn from a generator seeded by (seed, our
parameter name) on the target device, so a second model (diffusers' names mapped back to ours) gets the
same values later, without both ever being resident. Never zeros (zero weights let kernels and gates skip work): matrices are scaled like
their fan-in, norm weights near 1, everything else small but non-zero (so zero-initialised gates are open).
"""

from __future__ import annotations

import contextlib
import math
import zlib
from collections.abc import Callable, Iterator

import torch
from torch import nn


def _draw(name: str, shape: torch.Size, seed: int, device: torch.device) -> torch.Tensor:
    gen = torch.Generator(device=device).manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
    noise = torch.randn(shape, generator=gen, device=device, dtype=torch.float32)
    if len(shape) >= 2 and "modulation" not in name:
        return noise / math.sqrt(max(1, math.prod(shape[1:])))
    if name.endswith("weight"):
        return 1.0 + 0.2 * noise
    return 0.2 * noise


@torch.no_grad()
def seeded_randomize(
    model: nn.Module,
    seed: int = 0,
    key: Callable[[str], str] | None = None,
    round_to: torch.dtype | None = None,
) -> None:
    """Overwrite every parameter of ``model`` with values keyed by ``key(name)`` (default: the name).

    ``round_to`` rounds the draw through that dtype first, so an fp32 copy kept by another implementation
    equals the bf16 value ours stores.
    """
    for name, p in model.named_parameters():
        value = _draw(key(name) if key else name, p.shape, seed, p.device)
        if round_to is not None:
            value = value.to(round_to)
        p.copy_(value.to(p.dtype))


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Construct modules directly in ``dtype`` (a 14B model never exists in float32)."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def build(factory: Callable[[], nn.Module], device: torch.device, dtype: torch.dtype) -> nn.Module:
    """``factory()`` constructed on ``device`` in ``dtype``, in eval mode without gradients."""
    with torch.device(device), default_dtype(dtype):
        model = factory()
    return model.eval().requires_grad_(False)


def free_cuda() -> None:
    """Return cached blocks after a model is dropped (the next one may need the whole card)."""
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
