"""Procedural solid textures in torch (checker, stripes, value noise) evaluated at 3-D surface points.

They use an integer lattice hash rather than a random generator, so a texture depends only on the point
and is identical on every call (determinism of clips) and on any device.
"""

from __future__ import annotations

import torch

_PRIMES = (73856093, 19349663, 83492791)


def checker(p: torch.Tensor, scale: float) -> torch.Tensor:
    """[..., 3] points → [...] in {0, 1}: parity of the unit cell at ``scale`` cells per metre."""
    cells = torch.floor(p * scale).to(torch.int64).sum(dim=-1)
    return (cells % 2).to(p.dtype)


def stripes(p: torch.Tensor, scale: float, axis: int = 2) -> torch.Tensor:
    """[..., 3] points → [...] in {0, 1}: bands across one axis, ``scale`` bands per metre."""
    return (torch.floor(p[..., axis] * scale).to(torch.int64) % 2).to(p.dtype)


def _hash(ix: torch.Tensor, iy: torch.Tensor, iz: torch.Tensor) -> torch.Tensor:
    """Integer lattice coordinates → pseudo-random values in [0, 1] (a few xor-shift-multiply rounds)."""
    h = (ix * _PRIMES[0]) ^ (iy * _PRIMES[1]) ^ (iz * _PRIMES[2])
    h = h & 0x7FFFFFFF
    h = ((h >> 13) ^ h) & 0x7FFFFFFF
    h = (h * 1274126177) & 0x7FFFFFFF
    h = ((h >> 16) ^ h) & 0xFFFF
    return h.to(torch.float32) / 65535.0


def value_noise(p: torch.Tensor, scale: float) -> torch.Tensor:
    """[..., 3] points → [...] smooth noise in [0, 1] (trilinear with smoothstep, one octave)."""
    q = p * scale
    base = torch.floor(q)
    f = q - base
    f = f * f * (3.0 - 2.0 * f)
    i = base.to(torch.int64)
    ix, iy, iz = i[..., 0], i[..., 1], i[..., 2]
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    out = torch.zeros_like(fx)
    for dx in (0, 1):
        wx = fx if dx else 1.0 - fx
        for dy in (0, 1):
            wy = fy if dy else 1.0 - fy
            for dz in (0, 1):
                wz = fz if dz else 1.0 - fz
                out = out + wx * wy * wz * _hash(ix + dx, iy + dy, iz + dz).to(p.dtype)
    return out


def fbm(p: torch.Tensor, scale: float, octaves: int = 3) -> torch.Tensor:
    """Fractal sum of value noise octaves, normalised to [0, 1]."""
    total = torch.zeros(p.shape[:-1], dtype=p.dtype, device=p.device)
    amp, norm = 1.0, 0.0
    for k in range(octaves):
        total = total + amp * value_noise(p + 17.0 * k, scale * (2.0**k))
        norm += amp
        amp *= 0.5
    return total / norm


def pattern_value(name: str, p: torch.Tensor, scale: float, stripe_axis: int = 2) -> torch.Tensor:
    """The named pattern (plain, checker, stripes, noise) at points ``p``; plain is all zeros."""
    if name == "plain":
        return torch.zeros(p.shape[:-1], dtype=p.dtype, device=p.device)
    if name == "checker":
        return checker(p, scale)
    if name == "stripes":
        return stripes(p, scale, stripe_axis)
    if name == "noise":
        return fbm(p, scale)
    raise ValueError(f"unknown texture pattern {name!r}; expected plain, checker, stripes or noise")
