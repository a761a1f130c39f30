"""An analytic toy world (wall + floating card, moving camera) with exact depth, for tests and demos.

Everything is ray-cast in closed form, so depth, points and cameras agree to float precision and the
card's silhouette gives real depth discontinuities for the flying-pixel filter.
"""

from __future__ import annotations

import numpy as np

from fantasy_world.camera.conventions import default_principal_point, intrinsics_matrix
from fantasy_world.geometry.world_data import WorldData

WALL_Z = 4.0
CARD_Z = 2.0
CARD_HALF = 0.5


def _yaw_c2w(yaw: float, centre: np.ndarray) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    pose = np.eye(4)
    pose[:3, :3] = [[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]]
    pose[:3, 3] = centre
    return pose


def synthetic_world(num_frames: int = 5, height: int = 32, width: int = 48, seed: int = 0) -> WorldData:
    """A world of ``num_frames`` frames: a camera trucking right and yawing slightly in front of a wall
    (z = 4) with a square card (z = 2, |x|, |y| ≤ 0.5); confidences are seeded noise ≥ 1."""
    rng = np.random.default_rng(seed)
    f = 0.9 * width
    cx, cy = default_principal_point(width, height)
    k = intrinsics_matrix(f, f, cx, cy)
    ts = np.linspace(0.0, 1.0, num_frames)
    c2w = np.stack([_yaw_c2w(0.1 * (t - 0.5), np.array([0.4 * (t - 0.5), 0.05 * t, 0.0])) for t in ts])
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    rays_cam = np.stack([(u - cx) / f, (v - cy) / f, np.ones_like(u)], axis=-1)
    depths, images = [], []
    for pose in c2w:
        rays = rays_cam @ pose[:3, :3].T
        origin = pose[:3, 3]
        t_wall = (WALL_Z - origin[2]) / rays[..., 2]
        t_card = (CARD_Z - origin[2]) / rays[..., 2]
        hit = origin + t_card[..., None] * rays
        on_card = (np.abs(hit[..., 0]) <= CARD_HALF) & (np.abs(hit[..., 1]) <= CARD_HALF)
        t = np.where(on_card, t_card, t_wall)  # z-component of rays_cam is 1, so t is z-depth
        p = origin + t[..., None] * rays
        checker = (np.floor(p[..., 0] * 4) + np.floor(p[..., 1] * 4)) % 2
        rgb = np.where(on_card[..., None], [230, 80, 40], [60, 120, 200]) * (0.6 + 0.4 * checker[..., None])
        depths.append(t)
        images.append(rgb.round().astype(np.uint8))
    conf = 1.0 + np.exp(rng.normal(size=(num_frames, height, width)))
    return WorldData.from_depth(
        np.stack(images),
        np.stack(depths),
        np.repeat(k[None], num_frames, axis=0),
        c2w,
        depth_conf=conf,
        requested_c2w=c2w,
        fps=16.0,
        meta={"prompt": "synthetic wall and card", "seed": seed},
    )
