"""2-D rotary position embedding of the geometry branch (VGGT's RotaryPositionEmbedding2D).

The head dimension is split in halves: the first half is rotated by the token's row (y), the second by
its column (x), each with a 1-D RoPE of base frequency ``freq`` in the rotate-half layout. There is no
temporal position: frames are told apart only through attention content. Angles are computed on the fly
(no buffers), so modules using this build on the meta device.
"""

from __future__ import annotations

import torch


def patch_positions(batch: int, h: int, w: int, n_special: int, device: torch.device | str) -> torch.Tensor:
    """(y, x) positions [batch, n_special + h*w, 2] as the official aggregator builds them.

    Special (camera/register) tokens sit at (0, 0); patch (i, j) in row-major order sits at (i+1, j+1), so
    no patch shares the special tokens' unrotated position.
    """
    ys = torch.arange(h, device=device)
    xs = torch.arange(w, device=device)
    grid = torch.cartesian_prod(ys, xs) + 1
    special = torch.zeros(n_special, 2, dtype=grid.dtype, device=device)
    return torch.cat([special, grid], dim=0).unsqueeze(0).expand(batch, -1, -1).clone()


def _cos_sin(half_dim: int, pos: torch.Tensor, freq: float, dtype: torch.dtype):
    """cos/sin [B, 1, N, half_dim] for integer positions ``pos`` [B, N].

    Angles are float32 ``pos · inv_freq`` (the products of VGGT's table, bit for bit) cast to ``dtype``
    before cos/sin, as VGGT does. Computed per token rather than as a table up to ``pos.max()``, so no
    data-dependent size breaks a torch.compile graph.
    """
    exponents = torch.arange(0, half_dim, 2, device=pos.device).float() / half_dim
    inv_freq = 1.0 / (freq**exponents)
    angles = (pos.float()[..., None] * inv_freq).to(dtype)
    angles = torch.cat([angles, angles], dim=-1)[:, None]
    return angles.cos().to(dtype), angles.sin().to(dtype)


def _rotate_half(t: torch.Tensor) -> torch.Tensor:
    first, second = t.chunk(2, dim=-1)
    return torch.cat([-second, first], dim=-1)


def _rope_1d(t: torch.Tensor, pos: torch.Tensor, freq: float) -> torch.Tensor:
    cos, sin = _cos_sin(t.shape[-1], pos, freq, t.dtype)
    return t * cos + _rotate_half(t) * sin


def apply_rope_2d(t: torch.Tensor, pos: torch.Tensor, freq: float = 100.0) -> torch.Tensor:
    """Rotate ``t`` [B, heads, N, D] by integer positions ``pos`` [B, N, 2] (y, x); D must be a multiple of 4."""
    if t.shape[-1] % 4:
        raise ValueError(f"2-D RoPE needs a head dim divisible by 4, got {t.shape[-1]}")
    if pos.ndim != 3 or pos.shape[-1] != 2 or pos.shape[:2] != (t.shape[0], t.shape[2]):
        raise ValueError(
            f"positions {tuple(pos.shape)} do not match tokens {tuple(t.shape)} ([B, N, 2] expected)"
        )
    pos = pos.long()
    ty, tx = t.chunk(2, dim=-1)
    return torch.cat([_rope_1d(ty, pos[..., 0], freq), _rope_1d(tx, pos[..., 1], freq)], dim=-1)
