"""Fused, filtered, capped world point cloud: what points.ply, scene.glb and points3D.txt contain."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from fantasy_world.errors import InputError
from fantasy_world.geometry.filtering import (
    cap_indices,
    conf_percentile_mask,
    conf_threshold_mask,
    flying_pixel_mask,
    stride_mask,
    valid_depth_mask,
)
from fantasy_world.geometry.unproject import depth_to_world_points
from fantasy_world.geometry.world_data import WorldData


@dataclass
class PointCloud:
    """Unstructured points: xyz float32 [M, 3], rgb uint8 [M, 3], optional confidence float32 [M]."""

    points: np.ndarray
    colors: np.ndarray
    confidence: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.points = np.ascontiguousarray(self.points, dtype=np.float32).reshape(-1, 3)
        colors = np.asarray(self.colors)
        if colors.dtype != np.uint8:
            raise InputError(f"colors: expected dtype uint8, got {colors.dtype}")
        self.colors = np.ascontiguousarray(colors).reshape(-1, 3)
        if self.colors.shape[0] != self.points.shape[0]:
            raise InputError(f"colors: expected {self.points.shape[0]} rows, got {self.colors.shape[0]}")
        if self.confidence is not None:
            self.confidence = np.ascontiguousarray(self.confidence, dtype=np.float32).reshape(-1)
            if self.confidence.shape[0] != self.points.shape[0]:
                raise InputError(
                    f"confidence: expected {self.points.shape[0]} values, got {self.confidence.shape[0]}"
                )

    def __len__(self) -> int:
        return int(self.points.shape[0])


@dataclass(frozen=True)
class PointFilter:
    """How dense maps become a cloud. Defaults keep everything finite except flying pixels, capped at 1 M.

    ``conf_percentile`` drops that percentage of the lowest-confidence points (VGGT-demo semantics);
    ``conf_threshold`` is an absolute minimum confidence (kept: ``conf >= conf_threshold``, the official
    Wan2.1 exporter); ``conf_above`` keeps ``conf > conf_above`` (strictly, the official Wan2.2 exporter's
    ``depth_conf > 1.5``); ``flying_threshold`` is the relative depth
    jump to a neighbour beyond which a pixel is treated as a flying pixel (None disables the test).
    """

    conf_threshold: float | None = None
    conf_above: float | None = None
    conf_percentile: float = 0.0
    stride: int = 1
    flying_threshold: float | None = 0.05
    max_points: int | None = 1_000_000
    seed: int = 0

    def __post_init__(self) -> None:
        # Checked up front so a bad option fails before any file of a bundle is written.
        if int(self.stride) != self.stride or self.stride < 1:
            raise InputError(f"stride: expected a positive integer, got {self.stride}")
        if not 0.0 <= self.conf_percentile <= 100.0:
            raise InputError(f"conf_percentile: expected a value in [0, 100], got {self.conf_percentile}")
        if self.max_points is not None and (int(self.max_points) != self.max_points or self.max_points < 0):
            raise InputError(f"max_points: expected a non-negative integer or None, got {self.max_points}")
        if self.flying_threshold is not None and not self.flying_threshold > 0:
            raise InputError(
                f"flying_threshold: expected a positive number or None, got {self.flying_threshold}"
            )


def build_point_cloud(
    points: np.ndarray,
    colors: np.ndarray,
    conf: np.ndarray | None = None,
    depth: np.ndarray | None = None,
    options: PointFilter = PointFilter(),
) -> PointCloud:
    """Select pixels of [..., H, W, 3] ``points`` (with matching colours, confidence and depth) per ``options``.

    Order: finite points ∧ valid depth ∧ not flying ∧ stride ∧ absolute threshold, then the percentile
    among the survivors, then the deterministic cap.
    """
    points = np.asarray(points)
    if points.ndim < 3 or points.shape[-1] != 3:
        raise InputError(f"points: expected [..., H, W, 3], got shape {list(points.shape)}")
    grid = points.shape[:-1]
    colors = np.asarray(colors)
    if colors.shape != points.shape:
        raise InputError(f"colors: expected shape {list(points.shape)}, got {list(colors.shape)}")
    keep = np.all(np.isfinite(points), axis=-1) & stride_mask(grid, options.stride)
    if depth is not None:
        depth = np.asarray(depth)
        if depth.shape != grid:
            raise InputError(f"depth: expected shape {list(grid)}, got {list(depth.shape)}")
        keep &= valid_depth_mask(depth)
        if options.flying_threshold is not None:
            keep &= flying_pixel_mask(depth, options.flying_threshold)
    if conf is not None:
        conf = np.asarray(conf, dtype=np.float32)
        if conf.shape != grid:
            raise InputError(f"conf: expected shape {list(grid)}, got {list(conf.shape)}")
        if options.conf_threshold is not None:
            keep &= conf_threshold_mask(conf, options.conf_threshold)
        if options.conf_above is not None:
            with np.errstate(invalid="ignore"):
                keep &= conf > options.conf_above
        if options.conf_percentile > 0:
            keep = conf_percentile_mask(conf, options.conf_percentile, valid=keep)
    elif options.conf_threshold is not None or options.conf_above is not None or options.conf_percentile > 0:
        raise InputError("conf: confidence filtering was requested but no confidence map was given")
    idx = np.flatnonzero(keep)
    idx = idx[cap_indices(idx.size, options.max_points, options.seed)]
    return PointCloud(
        points=points.reshape(-1, 3)[idx],
        colors=colors.reshape(-1, 3)[idx],
        confidence=None if conf is None else conf.reshape(-1)[idx],
    )


def world_point_cloud(
    data: WorldData,
    options: PointFilter = PointFilter(),
    source: Literal["depth", "points"] = "depth",
) -> PointCloud:
    """The world's fused cloud from unprojected depth (as the official exporter) or the point head."""
    if source == "depth":
        with np.errstate(invalid="ignore"):
            pts = depth_to_world_points(data.depths, data.intrinsics, data.cam_c2w)
        return build_point_cloud(pts, data.images, data.depth_conf, data.depths, options)
    if source == "points":
        # The point head has no depth map of its own; its camera-space z gives the flying-pixel test.
        rot = data.cam_c2w[:, :3, :3]
        trans = data.cam_c2w[:, :3, 3]
        z = np.einsum("nj,nhwj->nhw", rot[:, :, 2], data.points - trans[:, None, None, :])
        return build_point_cloud(data.points, data.images, data.points_conf, z, options)
    raise InputError(f"source: expected 'depth' or 'points', got {source!r}")
