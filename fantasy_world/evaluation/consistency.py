"""Multi-view consistency of generated geometry: does frame i's depth land on frame j's surface?

Frame i's depth is unprojected with its requested camera, moved into frame j's requested camera and
projected; at the pixels it lands on, its z is compared with frame j's own depth there. A video whose
depth and camera motion agree gives a small relative error (occlusions and disocclusions make up the
rest, hence the median).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np


def reprojected_depth_error(
    depth_i: np.ndarray,
    depth_j: np.ndarray,
    k_i: np.ndarray,
    k_j: np.ndarray,
    c2w_i: np.ndarray,
    c2w_j: np.ndarray,
    valid_i: np.ndarray | None = None,
) -> np.ndarray:
    """Relative errors |z_i→j − d_j(u, v)| / d_j(u, v) for the pixels of frame i that land inside frame j."""
    h, w = depth_i.shape
    v, u = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    d = np.asarray(depth_i, np.float64)
    m = np.isfinite(d) & (d > 0)
    if valid_i is not None:
        m &= np.asarray(valid_i, bool)
    cam = np.stack([(u - k_i[0, 2]) / k_i[0, 0] * d, (v - k_i[1, 2]) / k_i[1, 1] * d, d], -1)[m]
    world = cam @ np.asarray(c2w_i, np.float64)[:3, :3].T + np.asarray(c2w_i, np.float64)[:3, 3]
    w2c_j = np.linalg.inv(np.asarray(c2w_j, np.float64))
    pj = world @ w2c_j[:3, :3].T + w2c_j[:3, 3]
    z = pj[:, 2]
    front = z > 1e-6
    uj = k_j[0, 0] * pj[front, 0] / z[front] + k_j[0, 2]
    vj = k_j[1, 1] * pj[front, 1] / z[front] + k_j[1, 2]
    # bilinear lookup of frame j's depth; a sample needs all four neighbours to carry depth
    x0, y0 = np.floor(uj).astype(np.int64), np.floor(vj).astype(np.int64)
    inside = (x0 >= 0) & (x0 + 1 < w) & (y0 >= 0) & (y0 + 1 < h)
    x0, y0, fx, fy = x0[inside], y0[inside], (uj - np.floor(uj))[inside], (vj - np.floor(vj))[inside]
    dj = np.asarray(depth_j, np.float64)
    corners = np.stack([dj[y0, x0], dj[y0, x0 + 1], dj[y0 + 1, x0], dj[y0 + 1, x0 + 1]])
    weights = np.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy])
    target = (corners * weights).sum(axis=0)
    zi = z[front][inside]
    ok = np.all(np.isfinite(corners) & (corners > 0), axis=0)
    return np.abs(zi[ok] - target[ok]) / target[ok]


def default_pairs(frames: int) -> list[tuple[int, int]]:
    """Consecutive frames, and the first frame with every later one."""
    pairs = {(i, i + 1) for i in range(frames - 1)} | {(0, j) for j in range(1, frames)}
    return sorted(pairs)


def multiview_consistency(
    depths: np.ndarray,
    intrinsics: np.ndarray,
    c2w: np.ndarray,
    pairs: Iterable[tuple[int, int]] | None = None,
    valid: np.ndarray | None = None,
) -> dict[str, float]:
    """Median (and mean of per-pair medians) of the reprojected relative depth error over ``pairs``."""
    pairs = list(pairs) if pairs is not None else default_pairs(depths.shape[0])
    errors, medians = [], []
    for i, j in pairs:
        e = reprojected_depth_error(
            depths[i],
            depths[j],
            intrinsics[i],
            intrinsics[j],
            c2w[i],
            c2w[j],
            None if valid is None else valid[i],
        )
        if e.size:
            errors.append(e)
            medians.append(float(np.median(e)))
    if not errors:
        return {"median_rel_error": math.nan, "mean_pair_median": math.nan, "pairs": 0}
    return {
        "median_rel_error": float(np.median(np.concatenate(errors))),
        "mean_pair_median": float(np.mean(medians)),
        "pairs": len(medians),
    }
