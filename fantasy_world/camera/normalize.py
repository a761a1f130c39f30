"""Scene-scale normalisation and first-frame-relative poses (as the official inference code prepares cameras).

The model was trained with translations in units where the first frame's content sits about one unit
away, so camera paths and presets use that unit and real trajectories are divided by the scale measured
from a first-frame depth map.
"""

from __future__ import annotations

import numpy as np
import torch

from fantasy_world.camera.conventions import invert_pose
from fantasy_world.camera.trajectory import CameraTrajectory
from fantasy_world.errors import InputError

MIN_SCALE = 1e-6
MAX_SCALE = 1e6


def relative_to_first(c2w: np.ndarray) -> np.ndarray:
    """[N,4,4] c2w expressed in the first camera's frame: c2w_0⁻¹ · c2w_i (frame 0 becomes identity)."""
    c2w = np.asarray(c2w, dtype=np.float64)
    return invert_pose(c2w[0])[None] @ c2w


def scale_translations(c2w: np.ndarray, scale: float) -> np.ndarray:
    """Divide camera positions by ``scale`` (rotations unchanged)."""
    if not np.isfinite(scale) or scale <= 0:
        raise InputError(f"scale={scale!r}: expected a positive finite number")
    out = np.array(c2w, dtype=np.float64)
    out[..., :3, 3] /= scale
    return out


def scene_scale_from_depth(
    depth: np.ndarray | torch.Tensor, intrinsics: np.ndarray | torch.Tensor, quantile: float = 0.95
) -> float:
    """Mean distance of first-frame points from the camera, ignoring points beyond the ``quantile``.

    ``depth`` [H, W] (z-depth along the optical axis; a leading/trailing singleton axis is accepted);
    pixels with non-finite or non-positive depth are skipped. Clamped to [1e-6, 1e6] as the official code.
    """
    d = (
        depth.detach().cpu().double().numpy()
        if isinstance(depth, torch.Tensor)
        else np.asarray(depth, np.float64)
    )
    k = (
        intrinsics.detach().cpu().double().numpy()
        if isinstance(intrinsics, torch.Tensor)
        else np.asarray(intrinsics, np.float64)
    )
    d = np.squeeze(d)
    if d.ndim != 2:
        raise InputError(f"depth: shape {np.shape(depth)}; expected [H, W]")
    if k.shape != (3, 3) or not np.all(np.isfinite(k)) or k[0, 0] <= 0 or k[1, 1] <= 0:
        raise InputError("intrinsics: expected a 3x3 pinhole with positive focal lengths")
    if not 0.0 < quantile <= 1.0:
        raise InputError(f"quantile={quantile!r}: expected a number in (0, 1]")
    h, w = d.shape
    v, u = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    valid = np.isfinite(d) & (d > 0)
    if not np.any(valid):
        raise InputError("depth: no finite positive values; expected a depth map of the first frame")
    z = d[valid]
    x = (u[valid] - k[0, 2]) / k[0, 0] * z
    y = (v[valid] - k[1, 2]) / k[1, 1] * z
    dist = np.sqrt(x * x + y * y + z * z)
    kept = dist[dist <= np.quantile(dist, quantile)]
    return float(np.clip(np.mean(kept), MIN_SCALE, MAX_SCALE))


def normalize_trajectory(traj: CameraTrajectory, scale: float) -> CameraTrajectory:
    """First-frame-relative poses with translations divided by ``scale`` (the official conditioning)."""
    return traj.with_poses(scale_translations(relative_to_first(traj.c2w), scale))
