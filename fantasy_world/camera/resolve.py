"""One place that turns "a preset name, a camera file, a path or per-frame cameras" into what is needed.

The pipeline, the CLI's ``camera`` command and the studio all call these, so a camera given in any form
gives the same frames everywhere.
"""

from __future__ import annotations

from pathlib import Path

from fantasy_world.camera.formats import read_camera_file
from fantasy_world.camera.path import CameraPath
from fantasy_world.camera.trajectory import CameraTrajectory
from fantasy_world.errors import InputError

CAMERA_FILE_SUFFIXES = frozenset({".json", ".txt"})

CameraSource = str | Path | CameraPath | CameraTrajectory


def is_camera_file(camera: object) -> bool:
    """A :class:`Path`, or a string ending in a camera-file suffix; any other string is a preset name."""
    return isinstance(camera, Path) or (
        isinstance(camera, str) and Path(camera).suffix.lower() in CAMERA_FILE_SUFFIXES
    )


def resolve_camera(camera: CameraSource, frames: int, width: int, height: int) -> CameraTrajectory:
    """``frames`` cameras at ``width``×``height`` from a preset name, camera file, path or trajectory.

    A trajectory with another frame count is re-sampled along a path through its frames, and its
    intrinsics are rescaled to the output size (same field of view).
    """
    if isinstance(camera, CameraTrajectory):
        traj = camera if (camera.width, camera.height) == (width, height) else camera.resized(width, height)
        if len(traj) == frames:
            return traj
        return CameraPath.from_trajectory(traj).sample(frames, width, height)
    if isinstance(camera, CameraPath):
        return camera.sample(frames, width, height)
    if is_camera_file(camera):
        return resolve_camera(read_camera_file(camera, width=width, height=height), frames, width, height)
    if isinstance(camera, str):
        return CameraPath.preset(camera, num_frames=frames).sample(frames, width, height)
    raise InputError(
        "camera: expected a preset name, a camera file, a CameraPath or a CameraTrajectory, "
        f"got {type(camera).__name__}"
    )


def as_camera_path(camera: CameraPath | CameraTrajectory) -> CameraPath:
    """An editable path: a path as it is, per-frame cameras as one keyframe per frame."""
    return camera if isinstance(camera, CameraPath) else CameraPath.from_trajectory(camera)
