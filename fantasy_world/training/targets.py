"""Geometry ground truth in the model's units, and the Plücker maps of the ground-truth cameras.

The model predicts geometry in *scene units*: the mean distance of frame 0's valid points from camera 0
is 1. Camera paths given to the pipeline (presets, normalised files) use the same unit, so the cameras
that condition training (Plücker maps) are normalised by the same per-clip scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fantasy_world.camera.plucker import plucker_rays
from fantasy_world.geometry.unproject import depth_to_world_points
from fantasy_world.models.fantasy.pose_encoding import extri_intri_to_pose_encoding


@dataclass
class GeometryTargets:
    """Normalised ground truth for a batch (world = camera 0's OpenCV frame)."""

    depth: torch.Tensor  # [B, T, H, W]
    points: torch.Tensor  # [B, T, H, W, 3]
    valid: torch.Tensor  # [B, T, H, W] bool
    pose_enc: torch.Tensor  # [B, T, 9] of world-to-camera extrinsics
    c2w: torch.Tensor  # [B, T, 4, 4] with translations in scene units
    intrinsics: torch.Tensor  # [B, T, 3, 3]
    scale: torch.Tensor  # [B] metres per scene unit


def scene_scale(points0: torch.Tensor, valid0: torch.Tensor, trim_quantile: float = 1.0) -> torch.Tensor:
    """Mean distance from the origin of each sample's valid points ``points0`` [B, H, W, 3] → [B].

    With ``trim_quantile`` < 1 the farthest points beyond that quantile are ignored. A sample without a
    valid pixel gets scale 1 (its geometry losses are masked out anyway).
    """
    dist = torch.linalg.vector_norm(points0.float(), dim=-1).flatten(1)
    mask = valid0.flatten(1)
    if trim_quantile < 1.0:
        big = torch.where(mask, dist, torch.full_like(dist, float("nan")))
        cut = torch.nanquantile(big, trim_quantile, dim=1, keepdim=True)
        mask = mask & (dist <= cut)
    count = mask.sum(dim=1)
    mean = torch.where(mask, dist, torch.zeros_like(dist)).sum(dim=1) / count.clamp(min=1)
    return torch.where(count > 0, mean.clamp(min=1e-6), torch.ones_like(mean))


def build_targets(
    depth: torch.Tensor,
    valid: torch.Tensor,
    intrinsics: torch.Tensor,
    c2w: torch.Tensor,
    trim_quantile: float = 1.0,
) -> GeometryTargets:
    """Depth [B, T, H, W], valid, K [B, T, 3, 3] and c2w [B, T, 4, 4] (metres) → scene-unit targets."""
    depth, intrinsics, c2w = depth.float(), intrinsics.float(), c2w.float()
    height, width = depth.shape[-2:]
    points = depth_to_world_points(depth, intrinsics, c2w)
    points = torch.where(valid[..., None], points, torch.zeros_like(points))
    scale = scene_scale(points[:, 0], valid[:, 0], trim_quantile)
    s = scale.view(-1, 1, 1, 1)
    c2w_n = c2w.clone()
    c2w_n[..., :3, 3] = c2w[..., :3, 3] / scale.view(-1, 1, 1)
    w2c = torch.linalg.inv(c2w_n.double()).float()
    pose_enc = extri_intri_to_pose_encoding(w2c[..., :3, :4], intrinsics, (int(height), int(width)))
    return GeometryTargets(
        depth=depth / s,
        points=points / s[..., None],
        valid=valid,
        pose_enc=pose_enc,
        c2w=c2w_n,
        intrinsics=intrinsics,
        scale=scale,
    )


def batch_plucker(
    c2w: torch.Tensor, intrinsics: torch.Tensor, height: int, width: int, official: bool
) -> torch.Tensor:
    """Plücker maps [B, T, H, W, 6] (relative to each clip's first camera) for scene-unit cameras."""
    maps = [
        plucker_rays(c2w[b], intrinsics[b], height, width, official_double_scaled=official)
        for b in range(c2w.shape[0])
    ]
    return torch.stack(maps).to(c2w.device)
