"""Per-frame cameras: what the pipeline consumes and what every file format reads and writes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fantasy_world.camera.checks import as_float, check_image_size, check_intrinsics, check_rigid_c2w
from fantasy_world.camera.conventions import focal_to_fov, invert_pose
from fantasy_world.errors import CameraFormatError
from fantasy_world.limits import MAX_CAMERA_FRAMES


@dataclass
class CameraTrajectory:
    """N cameras: OpenCV camera-to-world poses and pixel intrinsics for a ``width`` × ``height`` image.

    ``timestamps`` (optional, any unit; RealEstate10K uses microseconds) and ``fps`` are carried so
    that format round trips keep them.
    """

    c2w: np.ndarray
    intrinsics: np.ndarray
    width: int
    height: int
    fps: float | None = None
    timestamps: np.ndarray | None = field(default=None)
    source: str = "trajectory"

    def __post_init__(self) -> None:
        self.c2w = np.array(self.c2w, dtype=np.float64)
        self.intrinsics = np.array(self.intrinsics, dtype=np.float64)
        where = self.source
        if self.c2w.ndim != 3 or self.c2w.shape[1:] != (4, 4):
            raise CameraFormatError(f"{where}: c2w has shape {self.c2w.shape}; expected [N, 4, 4]")
        n = self.c2w.shape[0]
        if not 1 <= n <= MAX_CAMERA_FRAMES:
            raise CameraFormatError(f"{where}: {n} cameras; expected 1 to {MAX_CAMERA_FRAMES}")
        if self.intrinsics.shape == (3, 3):
            self.intrinsics = np.repeat(self.intrinsics[None], n, axis=0)
        if self.intrinsics.shape != (n, 3, 3):
            raise CameraFormatError(
                f"{where}: intrinsics have shape {self.intrinsics.shape}; expected [{n}, 3, 3] to match the poses"
            )
        self.width, self.height = check_image_size(self.width, self.height, where)
        for i in range(n):
            check_rigid_c2w(self.c2w[i], f"{where}: camera {i}")
            check_intrinsics(self.intrinsics[i], f"{where}: camera {i}")
        if self.fps is not None:
            self.fps = as_float(self.fps, f"{where}: fps", "a frame rate in (0, 1000]")
            if not 0.0 < self.fps <= 1000.0:
                raise CameraFormatError(f"{where}: fps={self.fps:g}; expected a frame rate in (0, 1000]")
        if self.timestamps is not None:
            self.timestamps = np.array(self.timestamps, dtype=np.float64).reshape(-1)
            if self.timestamps.shape != (n,) or not np.all(np.isfinite(self.timestamps)):
                raise CameraFormatError(f"{where}: timestamps must be {n} finite numbers")

    def __len__(self) -> int:
        return int(self.c2w.shape[0])

    @property
    def num_frames(self) -> int:
        return len(self)

    @property
    def w2c(self) -> np.ndarray:
        """[N, 4, 4] world-to-camera (OpenCV), the extrinsics most projection code wants."""
        return invert_pose(self.c2w)

    @property
    def fov_y_deg(self) -> np.ndarray:
        """[N] vertical field of view in degrees, from fy and the image height."""
        return np.degrees(focal_to_fov(self.intrinsics[:, 1, 1], self.height))

    @property
    def fov_x_deg(self) -> np.ndarray:
        return np.degrees(focal_to_fov(self.intrinsics[:, 0, 0], self.width))

    @property
    def positions(self) -> np.ndarray:
        """[N, 3] camera centres in world coordinates."""
        return self.c2w[:, :3, 3].copy()

    def relative_to_first(self) -> CameraTrajectory:
        """Same cameras expressed in the first camera's frame (frame 0 becomes the identity)."""
        return self.with_poses(invert_pose(self.c2w[0])[None] @ self.c2w)

    def with_poses(self, c2w: np.ndarray) -> CameraTrajectory:
        return CameraTrajectory(
            c2w, self.intrinsics.copy(), self.width, self.height, self.fps, self._copy_ts(), self.source
        )

    def resized(self, width: int, height: int) -> CameraTrajectory:
        """Intrinsics rescaled for another image size (same field of view; pixel-centre convention kept)."""
        width, height = check_image_size(width, height, self.source)
        k = self.intrinsics.copy()
        sx, sy = width / self.width, height / self.height
        k[:, 0, 0] *= sx
        k[:, 1, 1] *= sy
        # Pixel centres sit at integer coordinates, so the image spans [-0.5, size - 0.5].
        k[:, 0, 2] = (k[:, 0, 2] + 0.5) * sx - 0.5
        k[:, 1, 2] = (k[:, 1, 2] + 0.5) * sy - 0.5
        return CameraTrajectory(self.c2w.copy(), k, width, height, self.fps, self._copy_ts(), self.source)

    def _copy_ts(self) -> np.ndarray | None:
        return None if self.timestamps is None else self.timestamps.copy()
