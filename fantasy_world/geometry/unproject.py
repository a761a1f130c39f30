"""Depth maps → 3-D points, and the inverse projection used to check them.

Pixel centres sit at integer coordinates (pixel (row i, column j) is at u=j, v=i), matching
``camera.conventions.default_principal_point``. Exporters to formats whose pixel centres sit at +0.5
(COLMAP, nerfstudio) shift the principal point themselves.

Every function accepts numpy arrays; the camera-space and world-space unprojections also accept torch
tensors (same device and dtype as the depth), so the pipeline can unproject on the GPU before copying.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fantasy_world.errors import InputError


def _is_torch(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def _check_batch(depth: Any, intrinsics: Any) -> None:
    if depth.ndim < 2:
        raise InputError(f"depth: expected [..., H, W], got shape {tuple(depth.shape)}")
    if tuple(intrinsics.shape[-2:]) != (3, 3):
        raise InputError(f"intrinsics: expected [..., 3, 3], got shape {tuple(intrinsics.shape)}")
    if tuple(intrinsics.shape[:-2]) != tuple(depth.shape[:-2]):
        raise InputError(
            f"intrinsics: batch shape {tuple(intrinsics.shape[:-2])} does not match depth "
            f"batch shape {tuple(depth.shape[:-2])}"
        )


def depth_to_camera_points(depth: Any, intrinsics: Any) -> Any:
    """[..., H, W] z-depth with [..., 3, 3] pinhole K → [..., H, W, 3] points in the OpenCV camera frame."""
    _check_batch(depth, intrinsics)
    h, w = depth.shape[-2], depth.shape[-1]
    fx = intrinsics[..., 0, 0][..., None, None]
    fy = intrinsics[..., 1, 1][..., None, None]
    cx = intrinsics[..., 0, 2][..., None, None]
    cy = intrinsics[..., 1, 2][..., None, None]
    if _is_torch(depth):
        import torch

        fx, fy, cx, cy = (t.to(depth) for t in (fx, fy, cx, cy))
        u = torch.arange(w, device=depth.device, dtype=depth.dtype)[None, :]
        v = torch.arange(h, device=depth.device, dtype=depth.dtype)[:, None]
        return torch.stack(((u - cx) / fx * depth, (v - cy) / fy * depth, depth), dim=-1)
    depth = np.asarray(depth)
    dtype = np.result_type(depth.dtype, np.float32)
    u = np.arange(w, dtype=dtype)[None, :]
    v = np.arange(h, dtype=dtype)[:, None]
    x = (u - cx) / fx * depth
    y = (v - cy) / fy * depth
    return np.stack((x, y, np.broadcast_to(depth, x.shape)), axis=-1).astype(dtype, copy=False)


def camera_to_world(points_cam: Any, c2w: Any) -> Any:
    """[..., H, W, 3] camera-frame points with [..., 4, 4] camera-to-world → world-frame points."""
    if tuple(c2w.shape[-2:]) != (4, 4):
        raise InputError(f"c2w: expected [..., 4, 4], got shape {tuple(c2w.shape)}")
    if tuple(c2w.shape[:-2]) != tuple(points_cam.shape[:-3]):
        raise InputError(
            f"c2w: batch shape {tuple(c2w.shape[:-2])} does not match points batch shape "
            f"{tuple(points_cam.shape[:-3])}"
        )
    if _is_torch(points_cam):
        c2w = c2w.to(points_cam)
        rot = c2w[..., None, None, :3, :3]
        trans = c2w[..., None, None, :3, 3]
        return (rot @ points_cam[..., None])[..., 0] + trans
    points_cam = np.asarray(points_cam)
    c2w = np.asarray(c2w)
    dtype = np.result_type(points_cam.dtype, np.float32)
    rot = c2w[..., :3, :3].astype(dtype)
    trans = c2w[..., :3, 3].astype(dtype)
    # Nine broadcast multiply-adds beat einsum/matmul with a 3×3 inner product by several times.
    rot = rot[..., None, None, :, :]
    x, y, z = (points_cam[..., i].astype(dtype, copy=False) for i in range(3))
    out = np.empty(points_cam.shape, dtype=dtype)
    for i in range(3):
        out[..., i] = x * rot[..., i, 0] + y * rot[..., i, 1] + z * rot[..., i, 2] + trans[..., None, None, i]
    return out


def depth_to_world_points(depth: Any, intrinsics: Any, c2w: Any) -> Any:
    """[..., H, W] depth, [..., 3, 3] K and [..., 4, 4] c2w → [..., H, W, 3] world points (OpenCV world)."""
    return camera_to_world(depth_to_camera_points(depth, intrinsics), c2w)


def project_points(
    points_world: np.ndarray, intrinsics: np.ndarray, c2w: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """[M, 3] world points through one camera → ([M, 2] pixel coordinates (u, v), [M] z-depth).

    Pixel coordinates follow this module's convention (pixel centres at integers).
    """
    points_world = np.asarray(points_world, dtype=np.float64)
    if points_world.ndim != 2 or points_world.shape[1] != 3:
        raise InputError(f"points_world: expected [M, 3], got shape {points_world.shape}")
    c2w = np.asarray(c2w, dtype=np.float64)
    k = np.asarray(intrinsics, dtype=np.float64)
    if c2w.shape != (4, 4) or k.shape != (3, 3):
        raise InputError(f"project_points: expected K [3, 3] and c2w [4, 4], got {k.shape} and {c2w.shape}")
    rot = c2w[:3, :3]
    cam = (points_world - c2w[:3, 3]) @ rot  # R^T (p - t), row-vector form
    z = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = (cam[:, :2] / z[:, None]) * np.array([k[0, 0], k[1, 1]]) + np.array([k[0, 2], k[1, 2]])
    return uv, z
