"""WorldScore / FantasyWorld ``camera_data.json``.

Schema (as the official code reads it): ``focal_length`` (pixels, fx = fy, 500 if absent), ``scale`` (unused),
``cameras`` (keyframe c2w 4×4), ``cameras_interp`` (per-frame OpenCV c2w 4×4). We also write
``intrinsics`` ([N,3,3] pixels), ``image_size`` (``{width, height}``) and ``fps`` and use them when present, so our own
files round-trip exactly while official files still read as the official code reads them.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from fantasy_world.camera.checks import as_float, as_float_array, check_intrinsics, check_rigid_c2w
from fantasy_world.camera.formats.common import centred_intrinsics, choose_size, num
from fantasy_world.camera.trajectory import CameraTrajectory
from fantasy_world.errors import CameraFormatError
from fantasy_world.limits import MAX_CAMERA_FRAMES

logger = logging.getLogger(__name__)

NAME = "worldscore"
DEFAULT_FOCAL = 500.0


def sniff(data: Any) -> bool:
    return isinstance(data, dict) and any(k in data for k in ("cameras_interp", "cameras", "focal_length"))


def _pose_list(data: dict, key: str, name: str) -> np.ndarray:
    value = data[key]
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_CAMERA_FRAMES:
        got = f"{len(value)} entries" if isinstance(value, list) else type(value).__name__
        raise CameraFormatError(
            f"camera file '{name}': {key} has {got}; expected a list of 1 to {MAX_CAMERA_FRAMES} 4x4 poses"
        )
    out = np.empty((len(value), 4, 4))
    for i, item in enumerate(value):
        where = f"camera file '{name}': {key}[{i}]"
        out[i] = check_rigid_c2w(as_float_array(item, (4, 4), where), where)
    return out


def _file_size(data: dict, name: str) -> tuple[object, object]:
    """Image size from ``image_size: {width, height}`` (our bundle) or top-level width/height."""
    if "image_size" in data:
        size = data["image_size"]
        if not isinstance(size, dict):
            raise CameraFormatError(
                f"camera file '{name}': image_size must be an object with width and height"
            )
        return size.get("width"), size.get("height")
    return data.get("width"), data.get("height")


def from_json(data: Any, name: str, width: int | None = None, height: int | None = None) -> CameraTrajectory:
    if not isinstance(data, dict):
        raise CameraFormatError(
            f"camera file '{name}': top level is {type(data).__name__}; expected a JSON object"
        )
    focal = DEFAULT_FOCAL
    if "focal_length" in data:
        focal = as_float(
            data["focal_length"], f"camera file '{name}': focal_length", "a positive focal length in pixels"
        )
        if focal <= 0:
            raise CameraFormatError(
                f"camera file '{name}': focal_length={focal:g}; expected a positive value in pixels"
            )
    if "scale" in data:
        as_float(data["scale"], f"camera file '{name}': scale")
    keyframes = _pose_list(data, "cameras", name) if "cameras" in data else None
    if "cameras_interp" in data:
        c2w = _pose_list(data, "cameras_interp", name)
    elif keyframes is not None:
        logger.info("%s has no cameras_interp; using its %d keyframe cameras as frames", name, len(keyframes))
        c2w = keyframes
    else:
        raise CameraFormatError(
            f"camera file '{name}': no cameras_interp or cameras; expected per-frame 4x4 poses"
        )
    n = len(c2w)
    file_w, file_h = _file_size(data, name)
    fps = None
    if "fps" in data and data["fps"] is not None:
        fps = as_float(data["fps"], f"camera file '{name}': fps", "a positive frame rate")
        if fps <= 0:
            raise CameraFormatError(f"camera file '{name}': fps={fps:g}; expected a positive frame rate")
    if "intrinsics" in data:
        if file_w is None or file_h is None:
            raise CameraFormatError(f"camera file '{name}': intrinsics given without width and height")
        fw, fh = choose_size(name, None, None, file_w, file_h)
        k = as_float_array(data["intrinsics"], (n, 3, 3), f"camera file '{name}': intrinsics")
        for i in range(n):
            check_intrinsics(k[i], f"camera file '{name}': intrinsics[{i}]")
        traj = CameraTrajectory(c2w, k, fw, fh, fps=fps, source=f"camera file '{name}'")
        w, h = choose_size(name, width, height, fw, fh)
        return traj if (w, h) == (fw, fh) else traj.resized(w, h)
    w, h = choose_size(name, width, height, file_w, file_h)
    k = centred_intrinsics(np.full(n, focal), np.full(n, focal), w, h)
    return CameraTrajectory(c2w, k, w, h, fps=fps, source=f"camera file '{name}'")


def to_json(traj: CameraTrajectory, keyframes: np.ndarray | None = None) -> dict[str, Any]:
    """``keyframes`` [K,4,4] fills ``cameras``; without it the first and last frames stand in."""
    if keyframes is None:
        keyframes = traj.c2w[[0, -1]]

    def mats(a: np.ndarray) -> list:
        return [[[num(v) for v in row] for row in m] for m in a]

    out: dict[str, Any] = {
        "focal_length": num(traj.intrinsics[0, 1, 1]),
        "scale": 1,
        "cameras": mats(keyframes),
        "cameras_interp": mats(traj.c2w),
        "intrinsics": mats(traj.intrinsics),
        "image_size": {"width": traj.width, "height": traj.height},
    }
    if traj.fps:
        out["fps"] = num(traj.fps)
    return out
