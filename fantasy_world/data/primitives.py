"""Exact ray–primitive intersections in torch, in each primitive's local frame (z up, base at z = 0).

Every function takes ray origins ``o`` [P, 3] and directions ``d`` [P, 3] (not necessarily unit length:
the renderer uses directions whose camera-z component is 1, so the ray parameter *is* z-depth) and
returns the nearest ray parameter ``t`` > ``t_min`` ([P], +inf on a miss) and the outward unit normal
[P, 3] at the hit. All work is vectorised over rays; the torus alone is found by sphere tracing its
exact distance function followed by Newton steps.
"""

from __future__ import annotations

import torch

T_MIN = 1e-4
INF = float("inf")


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # Explicit components: a reduction over a last dimension of 3 is several times slower on CPU.
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def _normalize(v: torch.Tensor) -> torch.Tensor:
    return v / torch.sqrt(_dot(v, v)).clamp_min(1e-12)[..., None]


def _quadratic_roots(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Roots of a t² + 2 b t + c = 0 as (smaller, larger), NaN where none; stable against cancellation."""
    disc = b * b - a * c
    sq = torch.sqrt(disc.clamp_min(0.0))
    q = -(b + torch.where(b >= 0, sq, -sq))
    safe_q = torch.where(q == 0, torch.full_like(q, 1e-30), q)
    safe_a = torch.where(a.abs() < 1e-20, torch.full_like(a, 1e-20), a)
    r1 = torch.where(
        a.abs() < 1e-20, -c / (2.0 * torch.where(b == 0, torch.full_like(b, 1e-30), b)), q / safe_a
    )
    r2 = torch.where(a.abs() < 1e-20, r1, c / safe_q)
    lo, hi = torch.minimum(r1, r2), torch.maximum(r1, r2)
    none = disc < 0
    nan = torch.full_like(lo, float("nan"))
    return torch.where(none, nan, lo), torch.where(none, nan, hi)


def _first_valid(
    cands: list[tuple[torch.Tensor, torch.Tensor]], t_min: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Smallest candidate t > t_min among (t, valid) pairs; +inf where none is valid."""
    best = torch.full_like(cands[0][0], INF)
    for t, ok in cands:
        ok = ok & (t > t_min) & torch.isfinite(t)
        best = torch.where(ok & (t < best), t, best)
    return best, torch.isfinite(best)


def sphere(
    o: torch.Tensor, d: torch.Tensor, radius: float, t_min: float = T_MIN
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sphere resting on z = 0 (centre at z = radius)."""
    oc = o.clone()
    oc[:, 2] -= radius
    a = _dot(d, d)
    # Closest approach first, then the half chord: avoids b² − ac cancellation for far-away cameras.
    tc = -_dot(oc, d) / a
    pc = oc + tc[:, None] * d
    h2 = radius * radius - _dot(pc, pc)
    half = torch.sqrt(h2.clamp_min(0.0) / a)
    t0, t1 = tc - half, tc + half
    t, _ = _first_valid([(t0, h2 >= 0), (t1, h2 >= 0)], t_min)
    p = oc + torch.nan_to_num(t, posinf=0.0)[:, None] * d
    return t, _normalize(p)


def box(
    o: torch.Tensor, d: torch.Tensor, hx: float, hy: float, height: float, t_min: float = T_MIN
) -> tuple[torch.Tensor, torch.Tensor]:
    """Box with half-widths ``hx``, ``hy`` standing on z = 0 up to ``height`` (slab method)."""
    half = torch.tensor([hx, hy, 0.5 * height], dtype=o.dtype, device=o.device)
    oc = o.clone()
    oc[:, 2] -= 0.5 * height
    dd = torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)
    inv = 1.0 / dd
    t1 = (-half - oc) * inv
    t2 = (half - oc) * inv
    tn = torch.minimum(t1, t2)
    tf = torch.maximum(t1, t2)
    t_near, axis = tn.max(dim=-1)
    t_far = tf.min(dim=-1).values
    hit = (t_far >= t_near) & (t_far > t_min)
    inside = t_near <= t_min
    t = torch.where(hit & ~inside, t_near, torch.full_like(t_near, INF))
    # Camera inside a box never happens in our scenes; the far face is used then so shadow tests still work.
    t = torch.where(hit & inside, t_far, t)
    n = torch.zeros_like(o)
    n.scatter_(1, axis[:, None], -torch.sign(torch.gather(dd, 1, axis[:, None])))
    return t, n


def _cap_normal(p: torch.Tensor, height: float) -> torch.Tensor:
    n = torch.zeros_like(p)
    n[:, 2] = torch.where(p[:, 2] > 0.5 * height, 1.0, -1.0)
    return n


def cylinder(
    o: torch.Tensor, d: torch.Tensor, radius: float, height: float, t_min: float = T_MIN
) -> tuple[torch.Tensor, torch.Tensor]:
    """Capped vertical cylinder from z = 0 to ``height``."""
    a = d[:, 0] ** 2 + d[:, 1] ** 2
    b = o[:, 0] * d[:, 0] + o[:, 1] * d[:, 1]
    c = o[:, 0] ** 2 + o[:, 1] ** 2 - radius * radius
    s0, s1 = _quadratic_roots(a, b, c)
    t_side, _ = _first_valid([(s, _z_between(o, d, s, 0.0, height)) for s in (s0, s1)], t_min)
    dz = torch.where(d[:, 2].abs() < 1e-12, torch.full_like(d[:, 2], 1e-12), d[:, 2])
    caps = []
    for zc in (0.0, height):
        tc = (zc - o[:, 2]) / dz
        x, y = o[:, 0] + tc * d[:, 0], o[:, 1] + tc * d[:, 1]
        caps.append((tc, x * x + y * y <= radius * radius))
    t_cap, _ = _first_valid(caps, t_min)
    t = torch.minimum(t_side, t_cap)
    p = o + torch.nan_to_num(t, posinf=0.0)[:, None] * d
    side = _normalize(torch.stack([p[:, 0], p[:, 1], torch.zeros_like(p[:, 0])], dim=-1))
    return t, torch.where((t_side <= t_cap)[:, None], side, _cap_normal(p, height))


def _z_between(o: torch.Tensor, d: torch.Tensor, s: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    z = o[:, 2] + s * d[:, 2]
    return (z >= lo) & (z <= hi)


def cone(
    o: torch.Tensor, d: torch.Tensor, radius: float, height: float, t_min: float = T_MIN
) -> tuple[torch.Tensor, torch.Tensor]:
    """Upright cone: base disc of ``radius`` at z = 0, apex at z = ``height``."""
    k2 = (radius / height) ** 2
    w0 = height - o[:, 2]
    a = d[:, 0] ** 2 + d[:, 1] ** 2 - k2 * d[:, 2] ** 2
    b = o[:, 0] * d[:, 0] + o[:, 1] * d[:, 1] + k2 * w0 * d[:, 2]
    c = o[:, 0] ** 2 + o[:, 1] ** 2 - k2 * w0 * w0
    s0, s1 = _quadratic_roots(a, b, c)
    t_side, _ = _first_valid([(s, _z_between(o, d, s, 0.0, height)) for s in (s0, s1)], t_min)
    dz = torch.where(d[:, 2].abs() < 1e-12, torch.full_like(d[:, 2], 1e-12), d[:, 2])
    tb = -o[:, 2] / dz
    xb, yb = o[:, 0] + tb * d[:, 0], o[:, 1] + tb * d[:, 1]
    t_base, _ = _first_valid([(tb, xb * xb + yb * yb <= radius * radius)], t_min)
    t = torch.minimum(t_side, t_base)
    p = o + torch.nan_to_num(t, posinf=0.0)[:, None] * d
    side = _normalize(torch.stack([p[:, 0], p[:, 1], k2 * (height - p[:, 2])], dim=-1))
    return t, torch.where((t_side <= t_base)[:, None], side, _cap_normal(p, height))


def capsule(
    o: torch.Tensor, d: torch.Tensor, radius: float, height: float, t_min: float = T_MIN
) -> tuple[torch.Tensor, torch.Tensor]:
    """Vertical capsule of total ``height`` (two hemispherical caps of ``radius``) standing on z = 0."""
    z0, z1 = radius, max(height - radius, radius)
    a = d[:, 0] ** 2 + d[:, 1] ** 2
    b = o[:, 0] * d[:, 0] + o[:, 1] * d[:, 1]
    c = o[:, 0] ** 2 + o[:, 1] ** 2 - radius * radius
    s0, _ = _quadratic_roots(a, b, c)
    zs = o[:, 2] + s0 * d[:, 2]
    t_side, _ = _first_valid([(s0, (zs >= z0) & (zs <= z1))], t_min)
    best, normal = t_side, None
    p = o + torch.nan_to_num(t_side, posinf=0.0)[:, None] * d
    normal = _normalize(torch.stack([p[:, 0], p[:, 1], torch.zeros_like(p[:, 0])], dim=-1))
    for zc in (z0, z1):
        oc = o.clone()
        oc[:, 2] -= zc - radius  # sphere() puts its centre at z = radius
        ts, ns = sphere(oc, d, radius, t_min)
        closer = ts < best
        best = torch.where(closer, ts, best)
        normal = torch.where(closer[:, None], ns, normal)
    return best, normal


def _torus_sdf(p: torch.Tensor, major: float, minor: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Signed distance to a flat torus centred at z = minor, and its gradient (the unit normal)."""
    rho = torch.sqrt(p[:, 0] ** 2 + p[:, 1] ** 2).clamp_min(1e-12)
    qx = rho - major
    qz = p[:, 2] - minor
    qn = torch.sqrt(qx * qx + qz * qz).clamp_min(1e-12)
    grad = torch.stack([qx / qn * p[:, 0] / rho, qx / qn * p[:, 1] / rho, qz / qn], dim=-1)
    return qn - minor, grad


def torus(
    o: torch.Tensor, d: torch.Tensor, major: float, minor: float, t_min: float = T_MIN, steps: int = 48
) -> tuple[torch.Tensor, torch.Tensor]:
    """Torus lying flat on z = 0 (ring radius ``major``, tube radius ``minor``)."""
    # Only rays that enter the bounding sphere are traced; the rest miss.
    bound = major + minor
    tb, _ = sphere(
        o - torch.tensor([0.0, 0.0, minor - bound], dtype=o.dtype, device=o.device), d, bound, -INF
    )
    t_out = torch.full_like(tb, INF)
    n_out = torch.zeros_like(o)
    idx = torch.nonzero(torch.isfinite(tb)).squeeze(1)
    if idx.numel() == 0:
        return t_out, n_out
    oo, dd = o[idx], d[idx]
    dn = dd.norm(dim=-1)
    oc = oo.clone()
    oc[:, 2] -= minor
    b = _dot(oc, dd)
    a = _dot(dd, dd)
    disc = (b * b - a * (_dot(oc, oc) - bound * bound)).clamp_min(0.0)
    t_exit = (-b + torch.sqrt(disc)) / a
    t = ((-b - torch.sqrt(disc)) / a).clamp_min(t_min)
    for _ in range(steps):
        f, _ = _torus_sdf(oo + t[:, None] * dd, major, minor)
        t = t + f.clamp_min(0.0) / dn
    for _ in range(3):  # Newton on f(t) = sdf(o + t d): quadratic convergence near the surface
        f, g = _torus_sdf(oo + t[:, None] * dd, major, minor)
        slope = _dot(g, dd)
        step = torch.where(slope.abs() > 1e-6, f / slope, torch.zeros_like(f))
        t = t - step.clamp(-0.05, 0.05)
    f, g = _torus_sdf(oo + t[:, None] * dd, major, minor)
    hit = (f.abs() < 1e-4 * (1.0 + t * dn)) & (t <= t_exit + 1e-4) & (t > t_min)
    t_out[idx] = torch.where(hit, t, torch.full_like(t, INF))
    n_out[idx] = g
    return t_out, n_out
