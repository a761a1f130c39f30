"""Ray intersections with the environment in the scene frame: flat ground, smooth terrain, walls.

The terrain is a sum of Gaussian bumps, so its height and normal are analytic; a ray's first crossing
is bracketed by uniform samples inside the terrain's height slab and refined by bisection, giving the
surface point to float precision (the depth is exact for that surface, so views stay consistent).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fantasy_world.data.primitives import INF, T_MIN


@dataclass
class TerrainTensors:
    """Bumps as plain floats (x, y, amplitude, 1 / (2 sigma²)) plus a tight height range of the terrain.

    Scalars rather than tensors: each bump is a handful of fused elementwise ops on any device.
    """

    bumps: list[tuple[float, float, float, float]]
    h_min: float
    h_max: float

    @classmethod
    def build(cls, bumps: np.ndarray) -> TerrainTensors:
        rows = [
            (float(x), float(y), float(a), 1.0 / (2.0 * float(s) ** 2)) for x, y, a, s in np.asarray(bumps)
        ]
        # Height range from a dense grid over the bumps' support, widened by a margin for grid misses.
        lo = np.asarray(bumps)[:, :2].min(axis=0) - 3.0 * np.asarray(bumps)[:, 3].max()
        hi = np.asarray(bumps)[:, :2].max(axis=0) + 3.0 * np.asarray(bumps)[:, 3].max()
        gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 256), np.linspace(lo[1], hi[1], 256))
        h = np.zeros_like(gx)
        for x, y, a, k in rows:
            h += a * np.exp(-((gx - x) ** 2 + (gy - y) ** 2) * k)
        amps = np.asarray(bumps)[:, 2]
        margin = 0.02 * float(np.abs(amps).sum()) + 1e-3
        h_max = min(float(h.max()) + margin, float(amps.clip(min=0).sum()) + 1e-3)
        h_min = max(min(float(h.min()), 0.0) - margin, float(amps.clip(max=0).sum()) - 1e-3)
        return cls(rows, h_min, h_max)

    def height(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Terrain height at scene-frame (x, y) (any matching shapes)."""
        h = torch.zeros_like(x)
        for bx, by, a, k in self.bumps:
            dx, dy = x - bx, y - by
            h = h + a * torch.exp((dx * dx + dy * dy) * -k)
        return h

    def normal(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """[P] x, y → [P, 3] unit normal of z = h(x, y)."""
        gx, gy = torch.zeros_like(x), torch.zeros_like(x)
        for bx, by, a, k in self.bumps:
            dx, dy = x - bx, y - by
            e = (-2.0 * a * k) * torch.exp((dx * dx + dy * dy) * -k)
            gx, gy = gx + e * dx, gy + e * dy
        n = torch.stack([-gx, -gy, torch.ones_like(gx)], dim=-1)
        return n / torch.sqrt(gx * gx + gy * gy + 1.0)[:, None]

    def slope_along(self, p: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """d/dt of z − h(x, y) along rays at points ``p`` [P, 3] with directions ``d`` [P, 3]."""
        gx, gy = torch.zeros_like(p[:, 0]), torch.zeros_like(p[:, 0])
        for bx, by, a, k in self.bumps:
            dx, dy = p[:, 0] - bx, p[:, 1] - by
            e = (-2.0 * a * k) * torch.exp((dx * dx + dy * dy) * -k)
            gx, gy = gx + e * dx, gy + e * dy
        return d[:, 2] - gx * d[:, 0] - gy * d[:, 1]


def ground_plane(o: torch.Tensor, d: torch.Tensor, t_min: float = T_MIN) -> tuple[torch.Tensor, torch.Tensor]:
    """The plane z = 0 seen from above."""
    dz = d[:, 2]
    t = torch.where(
        dz < -1e-12, -o[:, 2] / torch.where(dz < -1e-12, dz, -torch.ones_like(dz)), torch.full_like(dz, INF)
    )
    t = torch.where(t > t_min, t, torch.full_like(t, INF))
    n = torch.zeros_like(o)
    n[:, 2] = 1.0
    return t, n


def _slab_interval(o: torch.Tensor, d: torch.Tensor, ter: TerrainTensors, far: float, t_min: float):
    """Ray parameters where each ray is inside the terrain's height slab, and the rays that enter it."""
    dz = torch.where(d[:, 2].abs() < 1e-12, torch.full_like(d[:, 2], -1e-12), d[:, 2])
    t_a = (ter.h_max - o[:, 2]) / dz
    t_b = (ter.h_min - o[:, 2]) / dz
    t0 = torch.minimum(t_a, t_b).clamp_min(t_min)
    t1 = torch.maximum(t_a, t_b).clamp(max=far)
    return t0, t1, torch.nonzero(t1 > t0).squeeze(1)


def terrain_blocks(
    o: torch.Tensor, d: torch.Tensor, ter: TerrainTensors, far: float, samples: int = 8, t_min: float = T_MIN
) -> torch.Tensor:
    """[P] bool: the ray dips under the terrain somewhere before ``far`` (cheap test for shadow rays)."""
    t0, t1, idx = _slab_interval(o, d, ter, far, t_min)
    out = torch.zeros(o.shape[0], dtype=torch.bool, device=o.device)
    if idx.numel() == 0:
        return out
    oo, dd, a, b = o[idx], d[idx], t0[idx], t1[idx]
    steps = torch.linspace(0.0, 1.0, samples + 1, dtype=o.dtype, device=o.device)[1:]
    ts = a[:, None] + (b - a)[:, None] * steps[None, :]
    px = oo[:, None, 0] + ts * dd[:, None, 0]
    py = oo[:, None, 1] + ts * dd[:, None, 1]
    pz = oo[:, None, 2] + ts * dd[:, None, 2]
    out[idx] = ((pz - ter.height(px, py)) < 0).any(dim=1)
    return out


def terrain(
    o: torch.Tensor,
    d: torch.Tensor,
    ter: TerrainTensors,
    far: float,
    samples: int = 20,
    bisections: int = 8,
    t_min: float = T_MIN,
) -> tuple[torch.Tensor, torch.Tensor]:
    """First crossing of z = h(x, y) along each ray before ``far``; normal from the analytic gradient.

    Uniform samples inside the terrain's height slab bracket the first crossing, a few bisections shrink
    the bracket and Newton steps (kept inside it) finish: the hit lies on the surface to float precision.
    """
    t0, t1, idx = _slab_interval(o, d, ter, far, t_min)
    t_out = torch.full_like(t0, INF)
    n_out = torch.zeros_like(o)
    if idx.numel() == 0:
        return t_out, n_out
    oo, dd, a, b = o[idx], d[idx], t0[idx], t1[idx]
    steps = torch.linspace(0.0, 1.0, samples, dtype=o.dtype, device=o.device)
    ts = a[:, None] + (b - a)[:, None] * steps[None, :]
    px = oo[:, None, 0] + ts * dd[:, None, 0]
    py = oo[:, None, 1] + ts * dd[:, None, 1]
    pz = oo[:, None, 2] + ts * dd[:, None, 2]
    below = (pz - ter.height(px, py)) <= 0
    first = torch.argmax(below.to(torch.uint8), dim=1)
    # A ray whose first sample is already under the surface starts inside the ground: not a visible hit.
    has = below.any(dim=1) & (first > 0)
    hi = torch.gather(ts, 1, first[:, None]).squeeze(1)
    lo = torch.gather(ts, 1, (first - 1).clamp_min(0)[:, None]).squeeze(1)
    for _ in range(bisections):
        mid = 0.5 * (lo + hi)
        p = oo + mid[:, None] * dd
        under = (p[:, 2] - ter.height(p[:, 0], p[:, 1])) <= 0
        hi = torch.where(under, mid, hi)
        lo = torch.where(under, lo, mid)
    t = 0.5 * (lo + hi)
    for _ in range(3):
        p = oo + t[:, None] * dd
        f = p[:, 2] - ter.height(p[:, 0], p[:, 1])
        slope = ter.slope_along(p, dd)
        step = torch.where(slope < -1e-9, f / slope, torch.zeros_like(f))
        t = torch.minimum(torch.maximum(t - step, lo), hi)
    p = oo + t[:, None] * dd
    t_out[idx] = torch.where(has, t, torch.full_like(t, INF))
    n_out[idx] = ter.normal(p[:, 0], p[:, 1])
    return t_out, n_out


def walls(
    o: torch.Tensor,
    d: torch.Tensor,
    half_x: float,
    half_y: float,
    height: float,
    base: float = -1.0,
    t_min: float = T_MIN,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Four thin vertical walls at x = ±half_x, y = ±half_y from z = ``base`` to ``height``; normals face inwards."""
    best = torch.full_like(o[:, 0], INF)
    normal = torch.zeros_like(o)
    for axis, half, other_half in ((0, half_x, half_y), (1, half_y, half_x)):
        other = 1 - axis
        da = torch.where(d[:, axis].abs() < 1e-12, torch.full_like(d[:, axis], 1e-12), d[:, axis])
        for sign in (-1.0, 1.0):
            t = (sign * half - o[:, axis]) / da
            p_other = o[:, other] + t * d[:, other]
            z = o[:, 2] + t * d[:, 2]
            ok = (t > t_min) & (p_other.abs() <= other_half) & (z >= base) & (z <= height)
            closer = ok & (t < best)
            best = torch.where(closer, t, best)
            n = torch.zeros_like(o)
            n[:, axis] = -sign
            normal = torch.where(closer[:, None], n, normal)
    return best, normal
