"""The in-memory world: everything one generation produces, validated once so writers can trust it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fantasy_world.errors import InputError
from fantasy_world.geometry.unproject import depth_to_world_points


def _as_float32(name: str, value: Any) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu" or arr.dtype == bool:
        raise InputError(f"{name}: expected a real-valued array, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _check_shape(name: str, arr: np.ndarray, expected: tuple[int, ...]) -> None:
    if arr.shape != expected:
        raise InputError(f"{name}: expected shape {list(expected)}, got {list(arr.shape)}")


def _check_poses(name: str, c2w: np.ndarray) -> None:
    if not np.all(np.isfinite(c2w)):
        raise InputError(f"{name}: expected finite camera-to-world matrices")
    if not np.allclose(c2w[:, 3, :], [0.0, 0.0, 0.0, 1.0], atol=1e-5):
        raise InputError(f"{name}: expected the last row of every 4x4 c2w to be [0, 0, 0, 1]")


@dataclass
class WorldData:
    """Video, depth, points and cameras of one world (OpenCV frames, c2w, pixel intrinsics).

    The one result type from the pipeline to the bundle writer and the viewer (``WorldResult`` is its
    public name in the pipeline API). Arrays are converted to the bundle dtypes on construction (images
    uint8, the rest float32) and every shape is checked against ``images``' [N, H, W, 3], raising
    :class:`InputError` on mismatch. ``requested_intrinsics`` are the cameras the request asked for (None
    when there was no request, e.g. a reconstruction or a loaded file); ``timings`` are seconds per stage.
    """

    images: np.ndarray
    depths: np.ndarray
    depth_conf: np.ndarray
    points: np.ndarray
    points_conf: np.ndarray
    intrinsics: np.ndarray
    cam_c2w: np.ndarray
    requested_c2w: np.ndarray
    fps: float = 16.0
    meta: dict[str, Any] = field(default_factory=dict)
    requested_intrinsics: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        images = np.asarray(self.images)
        if images.dtype != np.uint8:
            raise InputError(f"images: expected dtype uint8, got {images.dtype}")
        if images.ndim != 4 or images.shape[-1] != 3 or min(images.shape[:3]) < 1:
            raise InputError(
                f"images: expected shape [N, H, W, 3] with N, H, W ≥ 1, got {list(images.shape)}"
            )
        self.images = np.ascontiguousarray(images)
        n, h, w = images.shape[:3]
        specs = {
            "depths": (n, h, w),
            "depth_conf": (n, h, w),
            "points": (n, h, w, 3),
            "points_conf": (n, h, w),
            "intrinsics": (n, 3, 3),
            "cam_c2w": (n, 4, 4),
            "requested_c2w": (n, 4, 4),
        }
        for name, shape in specs.items():
            arr = _as_float32(name, getattr(self, name))
            _check_shape(name, arr, shape)
            setattr(self, name, arr)
        if not np.all(np.isfinite(self.intrinsics)):
            raise InputError("intrinsics: expected finite values")
        if np.any(self.intrinsics[:, 0, 0] <= 0) or np.any(self.intrinsics[:, 1, 1] <= 0):
            raise InputError("intrinsics: expected positive focal lengths fx, fy")
        if self.requested_intrinsics is not None:
            k = _as_float32("requested_intrinsics", self.requested_intrinsics)
            _check_shape("requested_intrinsics", k, (n, 3, 3))
            self.requested_intrinsics = k
        _check_poses("cam_c2w", self.cam_c2w)
        _check_poses("requested_c2w", self.requested_c2w)
        if not (np.isfinite(self.fps) and self.fps > 0):
            raise InputError(f"fps: expected a positive number, got {self.fps}")
        self.fps = float(self.fps)
        if not isinstance(self.meta, dict):
            raise InputError(f"meta: expected a dict, got {type(self.meta).__name__}")
        if not isinstance(self.timings, dict):
            raise InputError(f"timings: expected a dict of seconds, got {type(self.timings).__name__}")

    def save(self, out_dir: str | Path, **options: Any) -> dict[str, Path]:
        """Write the output bundle into ``out_dir`` (options of :func:`~fantasy_world.geometry.write_bundle`)."""
        from fantasy_world.geometry.bundle import write_bundle

        return write_bundle(self, out_dir, **options)

    @property
    def num_frames(self) -> int:
        return int(self.images.shape[0])

    @property
    def height(self) -> int:
        return int(self.images.shape[1])

    @property
    def width(self) -> int:
        return int(self.images.shape[2])

    @classmethod
    def from_depth(
        cls,
        images: np.ndarray,
        depths: np.ndarray,
        intrinsics: np.ndarray,
        cam_c2w: np.ndarray,
        *,
        depth_conf: np.ndarray | None = None,
        requested_c2w: np.ndarray | None = None,
        fps: float = 16.0,
        meta: dict[str, Any] | None = None,
    ) -> WorldData:
        """Build a world from depth and cameras alone (e.g. a MegaSaM file): points are unprojected depth."""
        depths = _as_float32("depths", depths)
        intrinsics = _as_float32("intrinsics", intrinsics)
        cam_c2w = _as_float32("cam_c2w", cam_c2w)
        if depths.ndim != 3:
            raise InputError(f"depths: expected shape [N, H, W], got {list(depths.shape)}")
        n = depths.shape[0]
        _check_shape("intrinsics", intrinsics, (n, 3, 3))
        _check_shape("cam_c2w", cam_c2w, (n, 4, 4))
        with np.errstate(invalid="ignore"):
            points = depth_to_world_points(depths, intrinsics, cam_c2w)
        conf = np.ones_like(depths) if depth_conf is None else depth_conf
        return cls(
            images=images,
            depths=depths,
            depth_conf=conf,
            points=points,
            points_conf=np.array(conf, dtype=np.float32, copy=True),
            intrinsics=intrinsics,
            cam_c2w=cam_c2w,
            requested_c2w=cam_c2w.copy() if requested_c2w is None else requested_c2w,
            fps=fps,
            meta=dict(meta or {}),
        )
