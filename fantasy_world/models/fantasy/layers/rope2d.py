"""2-D rotary position embedding of the geometry branch (VGGT's RotaryPositionEmbedding2D).

The head dimension is split in halves: the first half is rotated by the token's row (y), the second by
its column (x), each with a 1-D RoPE of base frequency ``freq`` in the rotate-half layout. There is no
temporal position: frames are told apart only through attention content. Tables are computed on the fly
(no buffers), so modules using this build on the meta device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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


def _cos_sin(half_dim: int, n_pos: int, freq: float, device: torch.device, dtype: torch.dtype):
    """cos/sin tables [n_pos, half_dim]; angles are cast to ``dtype`` before cos/sin, as VGGT does."""
    exponents = torch.arange(0, half_dim, 2, device=device).float() / half_dim
    inv_freq = 1.0 / (freq**exponents)
    angles = torch.outer(torch.arange(n_pos, device=device, dtype=torch.float32), inv_freq).to(dtype)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def _rotate_half(t: torch.Tensor) -> torch.Tensor:
    first, second = t.chunk(2, dim=-1)
    return torch.cat([-second, first], dim=-1)


def _rope_1d(t: torch.Tensor, pos: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    c = F.embedding(pos, cos)[:, None]  # [B, 1, N, D]
    s = F.embedding(pos, sin)[:, None]
    return t * c + _rotate_half(t) * s


def apply_rope_2d(t: torch.Tensor, pos: torch.Tensor, freq: float = 100.0) -> torch.Tensor:
    """Rotate ``t`` [B, heads, N, D] by integer positions ``pos`` [B, N, 2] (y, x); D must be a multiple of 4."""
    if t.shape[-1] % 4:
        raise ValueError(f"2-D RoPE needs a head dim divisible by 4, got {t.shape[-1]}")
    if pos.ndim != 3 or pos.shape[-1] != 2 or pos.shape[:2] != (t.shape[0], t.shape[2]):
        raise ValueError(
            f"positions {tuple(pos.shape)} do not match tokens {tuple(t.shape)} ([B, N, 2] expected)"
        )
    pos = pos.long()
    half = t.shape[-1] // 2
    cos, sin = _cos_sin(half, int(pos.max()) + 1, freq, t.device, t.dtype)
    ty, tx = t.chunk(2, dim=-1)
    return torch.cat([_rope_1d(ty, pos[..., 0], cos, sin), _rope_1d(tx, pos[..., 1], cos, sin)], dim=-1)
