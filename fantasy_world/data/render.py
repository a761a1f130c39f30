"""Render a scene from a batch of cameras: RGB, exact z-depth, world points, validity and object ids.

Rays are built per pixel with the camera-frame direction K⁻¹ [u, v, 1] (pixel centres at integer
coordinates, as everywhere in the project), so the ray parameter of a hit *is* its OpenCV z-depth, and
world points are ray origin + depth × direction in the world frame of the poses (camera 0's frame for
our clips). Sky (no hit, or a hit beyond ``far``) has ``valid = False``, depth 0 and points 0.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from fantasy_world.data.raytrace import CODE_FIRST_OBJECT, SceneTracer, TraceConfig
from fantasy_world.data.scene import Scene
from fantasy_world.data.shading import apply_fog, material, shade, sky_colour

logger = logging.getLogger(__name__)


@dataclass
class RenderConfig:
    """Renderer settings: accuracy (``trace``), shadows, and how many rays go through at once."""

    trace: TraceConfig = field(default_factory=TraceConfig)
    shadows: bool = True
    shadow_bias: float = 2e-3
    chunk_rays: int | None = None  # None: 2^22 on CUDA (one launch sequence per clip), 2^18 on CPU
    dtype: torch.dtype = torch.float32

    def chunk_for(self, device: torch.device) -> int:
        if self.chunk_rays is not None:
            return max(1, int(self.chunk_rays))
        return 1 << 22 if device.type == "cuda" else 1 << 18


@dataclass
class RenderOutput:
    """Per-view maps: ``rgb`` float [T, H, W, 3] in [0, 1]; ``depth`` [T, H, W] (0 on sky); ``points``
    [T, H, W, 3] world frame (0 on sky); ``valid`` bool; ``object_ids`` int16 (k + 1 for object k, 0 for
    ground, walls and sky)."""

    rgb: torch.Tensor
    depth: torch.Tensor
    points: torch.Tensor
    valid: torch.Tensor
    object_ids: torch.Tensor


def camera_rays(
    c2w: torch.Tensor, intrinsics: torch.Tensor, height: int, width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """[T, 4, 4] c2w and [T, 3, 3] K → origins and directions [T, H, W, 3] with camera-z component 1."""
    dev, dt = c2w.device, c2w.dtype
    v, u = torch.meshgrid(
        torch.arange(height, device=dev, dtype=dt), torch.arange(width, device=dev, dtype=dt), indexing="ij"
    )
    fx, fy = intrinsics[:, 0, 0, None, None], intrinsics[:, 1, 1, None, None]
    cx, cy = intrinsics[:, 0, 2, None, None], intrinsics[:, 1, 2, None, None]
    d_cam = torch.stack([(u - cx) / fx, (v - cy) / fy, torch.ones_like(u).expand_as((u - cx) / fx)], dim=-1)
    rot = c2w[:, None, None, :3, :3]
    d = (rot @ d_cam[..., None])[..., 0]
    o = c2w[:, None, None, :3, 3].expand_as(d)
    return o, d


def _render_chunk(
    tracer: SceneTracer, o_s: torch.Tensor, d_s: torch.Tensor, cfg: RenderConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scene-frame rays → (rgb [P, 3], t [P] (inf on sky), code [P])."""
    light = tracer.scene.lighting
    hit = tracer.closest(o_s, d_s)
    dist = hit.t * d_s.norm(dim=-1)
    valid = torch.isfinite(hit.t) & (dist <= cfg.trace.far)
    rgb = sky_colour(d_s, light)
    idx = torch.nonzero(valid).squeeze(1)
    if idx.numel():
        t, n, code = hit.t[idx], hit.normal[idx], hit.code[idx]
        p = o_s[idx] + t[:, None] * d_s[idx]
        albedo, ks, shin = material(tracer, code, p)
        ldir = torch.tensor(light.sun_dir, dtype=p.dtype, device=p.device)
        lit = (n @ ldir) > 0
        visible = lit.clone()
        if cfg.shadows:
            li = torch.nonzero(lit).squeeze(1)
            if li.numel():
                start = p[li] + n[li] * cfg.shadow_bias * (1.0 + 0.01 * dist[idx][li, None])
                visible[li] = ~tracer.occluded(start, ldir.expand(li.numel(), 3).contiguous())
        col = shade(albedo, ks, shin, n, d_s[idx], visible, light)
        rgb[idx] = apply_fog(col, dist[idx], light).clamp(0.0, 1.0)
    t_out = torch.where(valid, hit.t, torch.full_like(hit.t, float("inf")))
    return rgb, t_out, torch.where(valid, hit.code, torch.zeros_like(hit.code))


def render_views(
    scene: Scene,
    c2w: np.ndarray | torch.Tensor,
    intrinsics: np.ndarray | torch.Tensor,
    height: int,
    width: int,
    device: torch.device | str = "cpu",
    cfg: RenderConfig | None = None,
) -> RenderOutput:
    """Render ``scene`` from T cameras given in the world frame (``scene.anchor`` maps world → scene)."""
    cfg = cfg or RenderConfig()
    dev, dt = torch.device(device), cfg.dtype
    c2w64 = np.asarray(torch.as_tensor(c2w).cpu().numpy(), dtype=np.float64)
    k64 = np.asarray(torch.as_tensor(intrinsics).cpu().numpy(), dtype=np.float64)
    scene_c2w = np.asarray(scene.anchor, dtype=np.float64)[None] @ c2w64
    o_w, d_w = camera_rays(
        torch.as_tensor(c2w64, dtype=dt, device=dev),
        torch.as_tensor(k64, dtype=dt, device=dev),
        height,
        width,
    )
    o_s, d_s = camera_rays(
        torch.as_tensor(scene_c2w, dtype=dt, device=dev),
        torch.as_tensor(k64, dtype=dt, device=dev),
        height,
        width,
    )
    tracer = SceneTracer(scene, dev, dt, cfg.trace)
    shape = o_w.shape[:-1]
    o_s, d_s = o_s.reshape(-1, 3), d_s.reshape(-1, 3)
    n = o_s.shape[0]
    rgb = torch.empty(n, 3, dtype=dt, device=dev)
    t = torch.empty(n, dtype=dt, device=dev)
    code = torch.empty(n, dtype=torch.int32, device=dev)
    chunk = cfg.chunk_for(dev)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        rgb[s:e], t[s:e], code[s:e] = _render_chunk(tracer, o_s[s:e], d_s[s:e], cfg)
    t = t.reshape(shape)
    valid = torch.isfinite(t)
    depth = torch.where(valid, t, torch.zeros_like(t))
    points = torch.where(valid[..., None], o_w + depth[..., None] * d_w, torch.zeros_like(o_w))
    code = code.reshape(shape)
    ids = torch.where(code >= CODE_FIRST_OBJECT, code - (CODE_FIRST_OBJECT - 1), torch.zeros_like(code))
    return RenderOutput(rgb.reshape(*shape, 3), depth, points, valid, ids.to(torch.int16))
