"""Keyframes and path settings: the editable state behind a :class:`CameraPath`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fantasy_world.camera.checks import (
    MAX_COORDINATE,
    as_float,
    as_positive_int,
    check_fov_deg,
    check_rigid_c2w,
)
from fantasy_world.errors import CameraFormatError
from fantasy_world.limits import MAX_CAMERA_FRAMES, MAX_CAMERA_IMAGE_SIDE

DEFAULT_FOV_DEG = 60.0
DEFAULT_WIDTH = 592
DEFAULT_HEIGHT = 336
DEFAULT_FPS = 16.0


@dataclass
class Keyframe:
    """One camera the path must pass through.

    ``c2w`` is an OpenCV camera-to-world 4×4; ``fov_y_deg`` the vertical field of view. ``time`` is
    optional and in any increasing unit (seconds are natural): when every keyframe has one, frames
    are spread evenly in time between the first and last keyframe instead of by distance travelled.
    """

    c2w: np.ndarray
    fov_y_deg: float = DEFAULT_FOV_DEG
    time: float | None = None

    def __post_init__(self) -> None:
        self.validate("keyframe")

    @classmethod
    def checked(cls, c2w: object, fov_y_deg: object, time: object, where: str) -> Keyframe:
        """Build from untrusted values, naming ``where`` (file and entry) in any error."""
        kf = cls.__new__(cls)
        kf.c2w, kf.fov_y_deg, kf.time = c2w, fov_y_deg, time  # type: ignore[assignment]
        kf.validate(where)
        return kf

    def validate(self, where: str) -> None:
        try:
            mat = np.array(self.c2w, dtype=np.float64)
        except (TypeError, ValueError):
            raise CameraFormatError(f"{where}: c2w is not a 4x4 array of numbers") from None
        self.c2w = check_rigid_c2w(mat, where)
        self.fov_y_deg = check_fov_deg(self.fov_y_deg, f"{where}: fov_y_deg")
        if self.time is not None:
            self.time = as_float(self.time, f"{where}: time")
            if abs(self.time) > MAX_COORDINATE:
                raise CameraFormatError(f"{where}: time {self.time:g}; expected within ±{MAX_COORDINATE:g}")

    @property
    def position(self) -> np.ndarray:
        return self.c2w[:3, 3].copy()

    @property
    def rotation(self) -> np.ndarray:
        return self.c2w[:3, :3].copy()

    def copy(self) -> Keyframe:
        return Keyframe(self.c2w.copy(), self.fov_y_deg, self.time)


@dataclass
class PathSettings:
    """How a path is turned into frames.

    ``tension`` is the Kochanek–Bartels tension in [0, 1] (0 = Catmull-Rom, 1 = straight segments
    that stop at keyframes). ``constant_speed`` spreads frames by distance travelled (position, plus
    rotation and FoV change so pure pans also move evenly) rather than evenly per keyframe.
    """

    num_frames: int = 33
    fps: float = DEFAULT_FPS
    loop: bool = False
    tension: float = 0.0
    constant_speed: bool = True
    width: int = DEFAULT_WIDTH
    height: int = DEFAULT_HEIGHT

    def __post_init__(self) -> None:
        self.validate("path settings")

    def validate(self, where: str) -> None:
        self.num_frames = as_positive_int(self.num_frames, f"{where}: num_frames", MAX_CAMERA_FRAMES)
        self.fps = as_float(self.fps, f"{where}: fps", "a positive frame rate")
        if not 0.0 < self.fps <= 1000.0:
            raise CameraFormatError(f"{where}: fps={self.fps:g}; expected a frame rate in (0, 1000]")
        self.tension = as_float(self.tension, f"{where}: tension", "a number in [0, 1]")
        if not 0.0 <= self.tension <= 1.0:
            raise CameraFormatError(f"{where}: tension={self.tension:g}; expected a number in [0, 1]")
        if not isinstance(self.loop, bool) or not isinstance(self.constant_speed, bool):
            raise CameraFormatError(f"{where}: loop and constant_speed must be true or false")
        self.width = as_positive_int(self.width, f"{where}: width", MAX_CAMERA_IMAGE_SIDE)
        self.height = as_positive_int(self.height, f"{where}: height", MAX_CAMERA_IMAGE_SIDE)

    @property
    def duration(self) -> float:
        """Seconds of video at ``fps``."""
        return self.num_frames / self.fps

    def set_duration(self, seconds: float) -> None:
        """Change the length in seconds, keeping fps (frame count rounds to the nearest frame)."""
        seconds = as_float(seconds, "duration", "a positive number of seconds")
        frames = max(1, int(math.floor(seconds * self.fps + 0.5)))
        self.num_frames = as_positive_int(frames, "duration", MAX_CAMERA_FRAMES)
