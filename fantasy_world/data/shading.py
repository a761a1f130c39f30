"""Materials, lighting and sky: Lambert + Blinn-Phong under a sun with shadows, hemispheric ambient, fog.

Colours are display RGB in [0, 1]; the lit side of a surface facing the sun gets about 1.0 × albedo in
every sky type, so the attribute checker sees palette colours at their nominal brightness.
"""

from __future__ import annotations

import torch

from fantasy_world.data.raytrace import CODE_FIRST_OBJECT, CODE_GROUND, CODE_WALL, SceneTracer
from fantasy_world.data.scene import Lighting
from fantasy_world.data.textures import fbm, pattern_value


def _vec(values: tuple[float, ...], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, dtype=like.dtype, device=like.device)


def sky_colour(d: torch.Tensor, light: Lighting) -> torch.Tensor:
    """[P, 3] directions (scene frame) → [P, 3] sky radiance: zenith/horizon gradient, sun disc and glow."""
    v = d / d.norm(dim=-1, keepdim=True)
    zen, hor = _vec(light.zenith_rgb, v), _vec(light.horizon_rgb, v)
    up = v[:, 2:3].clamp(0.0, 1.0)
    col = hor + (zen - hor) * torch.sqrt(up)
    col = torch.where(v[:, 2:3] < 0, hor * 0.92, col)
    if light.sun_disc:
        sun = _vec(light.sun_rgb, v)
        cosang = (v @ _vec(light.sun_dir, v)).clamp_min(0.0)[:, None]
        glow = 0.5 if light.sky == "dusk" else 0.25
        col = col + sun * (glow * cosang**12 + 2.0 * (cosang > 0.99995).to(v.dtype))
    return col.clamp(0.0, 1.0)


def material(
    tracer: SceneTracer, code: torch.Tensor, p: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Albedo [P, 3], specular strength [P] and shininess [P] at hit points ``p`` with hit ``code``."""
    scene = tracer.scene
    env = scene.environment
    albedo = torch.zeros_like(p)
    ks = torch.zeros_like(p[:, 0])
    shin = torch.full_like(p[:, 0], 8.0)
    g = code == CODE_GROUND
    if g.any():
        pg = p[g]
        flat = torch.cat([pg[:, :2], torch.zeros_like(pg[:, :1])], dim=-1)
        axis = 0 if env.ground_pattern == "stripes" else 2
        src = pg if env.ground_pattern == "noise" else flat
        val = pattern_value(env.ground_pattern, src, env.pattern_scale, stripe_axis=axis)[:, None]
        a, b = _vec(env.ground_rgb, p), _vec(env.ground_rgb2, p)
        albedo[g] = a + (b - a) * val
        ks[g] = 0.08 if env.setting == "snowy field" else 0.0
    w = code == CODE_WALL
    if w.any():
        albedo[w] = _vec(env.wall_rgb, p) * (0.9 + 0.1 * fbm(p[w], 2.0))[:, None]
    for k, obj in enumerate(scene.objects):
        m = code == CODE_FIRST_OBJECT + k
        if not m.any():
            continue
        local = tracer.to_local(k, p[m])
        scale = 1.25 / max(obj.radius, 0.05)
        val = pattern_value(obj.pattern, local, scale)
        shade = 1.0 - 0.35 * val if obj.pattern != "noise" else 0.8 + 0.2 * val
        albedo[m] = _vec(obj.rgb, p) * shade[:, None]
        ks[m] = 0.5 if obj.glossy else 0.04
        shin[m] = 48.0 if obj.glossy else 8.0
    return albedo, ks, shin


def shade(
    albedo: torch.Tensor,
    ks: torch.Tensor,
    shininess: torch.Tensor,
    normal: torch.Tensor,
    view_dir: torch.Tensor,
    visible: torch.Tensor,
    light: Lighting,
) -> torch.Tensor:
    """Lambert diffuse + Blinn-Phong specular from the sun (times shadow visibility) + hemispheric ambient."""
    ldir = _vec(light.sun_dir, normal)
    sun = _vec(light.sun_rgb, normal)
    amb = _vec(light.ambient_rgb, normal)
    v = -view_dir / view_dir.norm(dim=-1, keepdim=True)
    ndl = (normal @ ldir).clamp_min(0.0)
    vis = visible.to(normal.dtype) * (ndl > 0).to(normal.dtype)
    half = ldir + v
    half = half / half.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    spec = ks * (normal * half).sum(dim=-1).clamp_min(0.0) ** shininess
    hemi = 0.7 + 0.3 * (0.5 + 0.5 * normal[:, 2:3])
    col = albedo * (amb * hemi + sun * (ndl * vis)[:, None]) + sun * (spec * vis)[:, None]
    return col


def apply_fog(col: torch.Tensor, distance: torch.Tensor, light: Lighting) -> torch.Tensor:
    """Fade towards the horizon colour with distance, so far ground meets the sky without a seam."""
    f = 1.0 - torch.exp(-distance / light.fog_distance)
    return col + (_vec(light.horizon_rgb, col) * 0.92 - col) * f[:, None]
