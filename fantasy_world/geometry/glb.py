"""scene.glb: the fused point cloud plus one wireframe frustum per camera, for any glTF viewer.

glTF is y-up, while our world follows the first camera's OpenCV frame (y down, z forward), so by default
the whole scene is turned 180° about x (``GLTF_FROM_WORLD``); viewers then show it upright.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import trimesh
from matplotlib import colormaps

from fantasy_world.errors import InputError
from fantasy_world.geometry.pointcloud import PointCloud

log = logging.getLogger(__name__)

GLTF_FROM_WORLD = np.diag([1.0, -1.0, -1.0, 1.0])

# Segments of the wireframe over vertices [apex, top-left, top-right, bottom-right, bottom-left, up-tip].
_FRUSTUM_EDGES = np.array(
    [[0, 1], [0, 2], [0, 3], [0, 4], [1, 2], [2, 3], [3, 4], [4, 1], [1, 5], [5, 2]], dtype=np.int64
)


def frustum_vertices(
    intrinsics: np.ndarray, c2w: np.ndarray, width: int, height: int, scale: float
) -> np.ndarray:
    """World-space [6, 3] vertices of one frustum: apex, the image corners at depth ``scale``, an up-tip.

    The up-tip is a small triangle above the top edge (towards -y in the camera), to show the roll.
    """
    k = np.asarray(intrinsics, dtype=np.float64)
    fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    us = np.array([-0.5, width - 0.5, width - 0.5, -0.5])
    vs = np.array([-0.5, -0.5, height - 0.5, height - 0.5])
    corners = np.stack([(us - cx) / fx, (vs - cy) / fy, np.ones(4)], axis=-1) * scale
    top_mid = 0.5 * (corners[0] + corners[1])
    tip = top_mid + np.array([0.0, -0.3 * abs(corners[2, 1] - corners[0, 1]), 0.0])
    local = np.concatenate([np.zeros((1, 3)), corners, tip[None]], axis=0)
    c2w = np.asarray(c2w, dtype=np.float64)
    return local @ c2w[:3, :3].T + c2w[:3, 3]


def _auto_scale(points: np.ndarray, centres: np.ndarray) -> float:
    """A frustum size that reads well: 5 % of the robust scene extent (or of the camera path)."""
    sample = points if len(points) >= 2 else centres
    if len(sample) >= 2:
        lo, hi = np.percentile(sample, [2, 98], axis=0)
        extent = float(np.linalg.norm(hi - lo))
        if np.isfinite(extent) and extent > 0:
            return 0.05 * extent
    return 0.1


def build_scene(
    cloud: PointCloud,
    intrinsics: np.ndarray,
    c2w: np.ndarray,
    width: int,
    height: int,
    *,
    frustum_scale: float | None = None,
    y_up: bool = True,
) -> trimesh.Scene:
    """A trimesh scene with node ``points`` and nodes ``camera_000``…, coloured from early (dark) to late."""
    intrinsics = np.asarray(intrinsics, dtype=np.float64)
    c2w = np.asarray(c2w, dtype=np.float64)
    if intrinsics.ndim != 3 or c2w.shape != (intrinsics.shape[0], 4, 4):
        raise InputError(
            f"cameras: expected K [N, 3, 3] and c2w [N, 4, 4], got {intrinsics.shape}, {c2w.shape}"
        )
    to_gltf = GLTF_FROM_WORLD if y_up else np.eye(4)
    scale = frustum_scale if frustum_scale is not None else _auto_scale(cloud.points, c2w[:, :3, 3])
    scene = trimesh.Scene()
    if len(cloud) > 0:
        pts = cloud.points.astype(np.float64) @ to_gltf[:3, :3].T
        rgba = np.concatenate([cloud.colors, np.full((len(cloud), 1), 255, np.uint8)], axis=1)
        scene.add_geometry(trimesh.PointCloud(pts, colors=rgba), node_name="points", geom_name="points")
    cmap = colormaps["viridis"]
    n = c2w.shape[0]
    for i in range(n):
        verts = frustum_vertices(intrinsics[i], c2w[i], width, height, scale) @ to_gltf[:3, :3].T
        path = trimesh.load_path(verts[_FRUSTUM_EDGES])
        colour = (np.array(cmap(i / max(n - 1, 1))) * 255).round().astype(np.uint8)
        path.colors = np.tile(colour, (len(path.entities), 1))
        name = f"camera_{i:03d}"
        scene.add_geometry(path, node_name=name, geom_name=name)
    return scene


def write_glb(
    path: str | Path,
    cloud: PointCloud,
    intrinsics: np.ndarray,
    c2w: np.ndarray,
    width: int,
    height: int,
    *,
    frustum_scale: float | None = None,
    y_up: bool = True,
) -> Path:
    """Write the point cloud and camera frustums as a binary glTF (.glb)."""
    path = Path(path)
    scene = build_scene(cloud, intrinsics, c2w, width, height, frustum_scale=frustum_scale, y_up=y_up)
    path.write_bytes(scene.export(file_type="glb"))
    log.debug("wrote %d points and %d frustums to %s", len(cloud), len(c2w), path)
    return path
