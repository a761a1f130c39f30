"""Turn a world (or a live preview) into small per-frame payloads for the 3-D view.

Pure numpy, no viser: the viewer sends what this module returns. Payloads are built once per frame
(float16 positions, uint8 colours, a capped point count) so playback only toggles visibility.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.spatial.transform import Rotation

from fantasy_world.geometry import (
    PointFilter,
    build_point_cloud,
    colorize_depth,
    conf_percentile_mask,
    depth_to_world_points,
    valid_depth_mask,
)
from fantasy_world.geometry.world_data import WorldData

THUMB_SIDE = 96  # longest side of a frustum texture: enough to recognise the frame, a few KB as JPEG


@dataclass(frozen=True)
class ViewOptions:
    """What the user controls in the viewer: confidence percentile, global point cap, point size."""

    conf_percentile: float = 10.0
    max_points: int = 200_000
    point_size: float = 0.01

    def per_frame_cap(self, num_frames: int) -> int:
        """The global cap split evenly over frames, so the fused view never exceeds it."""
        return max(1, int(self.max_points) // max(1, num_frames))


@dataclass
class FramePayload:
    """One frame as the viewer draws it."""

    index: int
    points: np.ndarray  # float16 [M, 3]
    colors: np.ndarray  # uint8 [M, 3]
    wxyz: np.ndarray  # camera rotation, scalar-first quaternion (OpenCV camera frame)
    position: np.ndarray  # camera centre
    fov_y: float  # radians
    aspect: float
    thumbnail: np.ndarray  # uint8 [h, w, 3]

    @property
    def nbytes(self) -> int:
        return int(self.points.nbytes + self.colors.nbytes + self.thumbnail.nbytes)


def pose_to_wxyz_position(c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A 4x4 c2w → (wxyz quaternion, position); viser frustums use the same OpenCV camera frame."""
    xyzw = Rotation.from_matrix(np.asarray(c2w, dtype=np.float64)[:3, :3]).as_quat()
    return np.array([xyzw[3], xyzw[0], xyzw[1], xyzw[2]]), np.asarray(c2w, dtype=np.float64)[:3, 3].copy()


def wxyz_position_to_pose(wxyz: np.ndarray, position: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pose_to_wxyz_position`: gizmo and client-camera state back to a c2w."""
    w, x, y, z = (float(v) for v in wxyz)
    pose = np.eye(4)
    pose[:3, :3] = Rotation.from_quat([x, y, z, w]).as_matrix()
    pose[:3, 3] = np.asarray(position, dtype=np.float64)
    return pose


def vertical_fov(intrinsics: np.ndarray, height: int) -> float:
    """Vertical FoV in radians from the true focal length (not an approximation)."""
    return float(2.0 * np.arctan(0.5 * height / float(intrinsics[1, 1])))


def thumbnail(image: np.ndarray, side: int = THUMB_SIDE) -> np.ndarray:
    """Downscale a frame for a frustum texture (keeps messages small)."""
    h, w = image.shape[:2]
    scale = side / max(h, w)
    if scale >= 1.0:
        return np.ascontiguousarray(image)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))


def clip_conf_mask(conf: np.ndarray, depths: np.ndarray, percentile: float) -> np.ndarray:
    """Drop the lowest ``percentile`` % confidences of the whole clip (one cutoff, so frames agree)."""
    return conf_percentile_mask(conf, float(percentile), valid=valid_depth_mask(depths))


def world_frame_points(world: WorldData) -> np.ndarray:
    """World points per pixel from depth and predicted cameras (same source as the exported PLY)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return np.asarray(depth_to_world_points(world.depths, world.intrinsics, world.cam_c2w), np.float32)


def build_frame_payloads(
    world: WorldData, options: ViewOptions, points: np.ndarray | None = None
) -> list[FramePayload]:
    """Every frame of ``world`` filtered by one clip-wide confidence cutoff and capped per frame."""
    pts = world_frame_points(world) if points is None else points
    keep = clip_conf_mask(world.depth_conf, world.depths, options.conf_percentile)
    cap = options.per_frame_cap(world.num_frames)
    h, w = world.height, world.width
    out = []
    for i in range(world.num_frames):
        frame_pts = np.where(keep[i][..., None], pts[i], np.float32(np.nan))
        cloud = build_point_cloud(
            frame_pts, world.images[i], None, world.depths[i], PointFilter(max_points=cap, seed=i)
        )
        wxyz, pos = pose_to_wxyz_position(world.cam_c2w[i])
        out.append(
            FramePayload(
                index=i,
                points=cloud.points.astype(np.float16),
                colors=cloud.colors,
                wxyz=wxyz,
                position=pos,
                fov_y=vertical_fov(world.intrinsics[i], h),
                aspect=w / h,
                thumbnail=thumbnail(world.images[i]),
            )
        )
    return out


def preview_cloud(
    points: np.ndarray, depths: np.ndarray, conf: np.ndarray, max_points: int
) -> tuple[np.ndarray, np.ndarray]:
    """A live-preview cloud: no decoded video yet, so points are coloured by depth (turbo)."""
    valid = np.isfinite(depths) & (depths > 0)
    colors = np.zeros((*depths.shape, 3), np.uint8)
    if valid.any():
        colors = colorize_depth(np.where(valid, depths, np.nan))
    cloud = build_point_cloud(
        points, colors, conf, None, PointFilter(flying_threshold=None, max_points=max_points)
    )
    return cloud.points.astype(np.float16), cloud.colors


def scene_extent(positions: np.ndarray, points: np.ndarray | None = None) -> float:
    """A robust size of the scene, used to scale frustums and points so any world looks right."""
    chunks = [np.asarray(positions, np.float64).reshape(-1, 3)]
    if points is not None and len(points):
        chunks.append(np.asarray(points, np.float64).reshape(-1, 3))
    allp = np.concatenate(chunks)
    allp = allp[np.all(np.isfinite(allp), axis=1)]
    if len(allp) < 2:
        return 1.0
    lo, hi = np.percentile(allp, [5, 95], axis=0)
    ext = float(np.linalg.norm(hi - lo))
    return ext if ext > 1e-6 else 1.0
