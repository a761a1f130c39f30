"""Wan2.1 3-D rotary position embedding.

Wan rotates adjacent channel pairs ``(x[2i], x[2i+1])`` as complex numbers. The head dimension is split
into a temporal, a height and a width part of ``d - 4*(d//6)``, ``2*(d//6)`` and ``2*(d//6)`` channels,
each with its own 1-D frequency ladder. Tables are built in float64 (as Wan does) and cached per
device and grid, so models stay constructible on the meta device without buffers.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from fantasy_world.errors import InputError


def wan_rope_split(head_dim: int) -> tuple[int, int, int]:
    """Channels (real, not complex) used for the (frame, height, width) axes of one head."""
    part = 2 * (head_dim // 6)
    return head_dim - 2 * part, part, part


def rope_1d_table(dim: int, max_pos: int, theta: float = 10000.0) -> torch.Tensor:
    """Complex128 table [max_pos, dim//2]: ``exp(i * pos * theta^(-2j/dim))``."""
    if dim % 2:
        raise InputError(f"rope dim={dim}: expected an even number of channels")
    inv = 1.0 / torch.pow(
        torch.tensor(theta, dtype=torch.float64), torch.arange(0, dim, 2, dtype=torch.float64) / dim
    )
    angles = torch.outer(torch.arange(max_pos, dtype=torch.float64), inv)
    return torch.polar(torch.ones_like(angles), angles)


@lru_cache(maxsize=64)
def _freqs_cached(
    head_dim: int, grid: tuple[int, int, int], device: torch.device, theta: float
) -> torch.Tensor:
    f, h, w = grid
    parts = wan_rope_split(head_dim)
    tf, th, tw = (rope_1d_table(d, n, theta) for d, n in zip(parts, grid))
    table = torch.cat(
        [
            tf.view(f, 1, 1, -1).expand(f, h, w, -1),
            th.view(1, h, 1, -1).expand(f, h, w, -1),
            tw.view(1, 1, w, -1).expand(f, h, w, -1),
        ],
        dim=-1,
    ).reshape(f * h * w, head_dim // 2)
    return table.to(torch.complex64).to(device)


def wan_rope_freqs(
    head_dim: int,
    grid: tuple[int, int, int],
    device: torch.device | str | None = None,
    theta: float = 10000.0,
) -> torch.Tensor:
    """Complex64 rotations [f*h*w, head_dim//2] for a (frames, height, width) token grid, row-major.

    The returned tensor is cached and shared: do not modify it in place.
    """
    if head_dim % 2 or head_dim < 6:
        raise InputError(f"rope head_dim={head_dim}: expected an even number >= 6")
    grid = tuple(int(g) for g in grid)
    if len(grid) != 3 or min(grid) <= 0:
        raise InputError(f"rope grid={grid}: expected three positive sizes (frames, height, width)")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    return _freqs_cached(head_dim, grid, dev, float(theta))


def apply_rope(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs of ``x`` [B, L, H, D] by ``freqs`` [L, D//2] (complex); same shape and dtype out.

    The product runs in float32 for complex64 tables and in float64 for complex128 tables.
    """
    b, seq, heads, dim = x.shape
    if freqs.shape != (seq, dim // 2) or dim % 2:
        raise InputError(f"apply_rope: freqs shape {tuple(freqs.shape)} does not match x {tuple(x.shape)}")
    real = torch.float64 if freqs.dtype == torch.complex128 else torch.float32
    if torch.compiler.is_compiling():  # inductor cannot fuse complex maths: same product, written out
        cs = torch.view_as_real(freqs).to(real).view(1, seq, 1, dim // 2, 2)
        cos, sin = cs[..., 0], cs[..., 1]
        xr = x.to(real).reshape(b, seq, heads, dim // 2, 2)
        x0, x1 = xr[..., 0], xr[..., 1]
        return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).flatten(3).to(x.dtype)
    xc = torch.view_as_complex(x.to(real).reshape(b, seq, heads, dim // 2, 2))
    out = torch.view_as_real(xc * freqs.to(xc.dtype).view(1, seq, 1, dim // 2))
    return out.flatten(3).to(x.dtype)
