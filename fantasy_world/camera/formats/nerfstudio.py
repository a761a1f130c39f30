"""nerfstudio ``camera_path.json`` (what ``ns-render camera-path`` and the nerfstudio viewer use).

Each ``camera_path`` entry holds ``camera_to_world`` (a row-major flattened 4×4 in the OpenGL camera
convention: x right, y up, z backward), ``fov`` (vertical, degrees) and ``aspect``. The file also has
``render_width``/``render_height``, ``fps``, ``seconds``, ``is_cycle``, ``smoothness_value`` and
``keyframes`` (``matrix``: the same OpenGL c2w, flattened). nerfstudio puts the principal point at the
image centre, so we read it as our centre ((W-1)/2, (H-1)/2 with integer pixel centres).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fantasy_world.camera.checks import as_float, check_fov_deg, check_rigid_c2w, is_number
from fantasy_world.camera.conventions import fov_to_focal, opencv_to_opengl_c2w, opengl_to_opencv_c2w
from fantasy_world.camera.formats.common import centred_intrinsics, choose_size, num, warn_if_lossy
from fantasy_world.camera.trajectory import CameraTrajectory
from fantasy_world.errors import CameraFormatError
from fantasy_world.limits import MAX_CAMERA_FRAMES

NAME = "nerfstudio"


def sniff(data: Any) -> bool:
    return isinstance(data, dict) and "camera_path" in data


def _matrix(value: Any, where: str) -> np.ndarray:
    """A flattened 16-vector (nerfstudio writes this) or a nested 4×4 list."""
    if isinstance(value, list) and len(value) == 16 and all(is_number(v) for v in value):
        flat = [as_float(v, where) for v in value]
    elif (
        isinstance(value, list)
        and len(value) == 4
        and all(isinstance(r, list) and len(r) == 4 for r in value)
    ):
        flat = [as_float(v, where) for row in value for v in row]
    else:
        raise CameraFormatError(f"{where}: expected 16 numbers (a row-major 4x4 camera-to-world matrix)")
    return check_rigid_c2w(np.asarray(flat).reshape(4, 4), where)


def from_json(data: Any, name: str, width: int | None = None, height: int | None = None) -> CameraTrajectory:
    if not isinstance(data, dict):
        raise CameraFormatError(
            f"camera file '{name}': top level is {type(data).__name__}; expected a JSON object"
        )
    cam_type = data.get("camera_type", "perspective")
    if cam_type != "perspective":
        raise CameraFormatError(
            f"camera file '{name}': camera_type={str(cam_type)[:30]!r}; expected 'perspective'"
        )
    entries = data["camera_path"]
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_CAMERA_FRAMES:
        raise CameraFormatError(
            f"camera file '{name}': camera_path must be a list of 1 to {MAX_CAMERA_FRAMES} cameras"
        )
    w, h = choose_size(name, width, height, data.get("render_width"), data.get("render_height"))
    c2w = np.empty((len(entries), 4, 4))
    fovs = np.empty(len(entries))
    for i, entry in enumerate(entries):
        where = f"camera file '{name}': camera_path[{i}]"
        if not isinstance(entry, dict) or "camera_to_world" not in entry or "fov" not in entry:
            raise CameraFormatError(f"{where}: expected an object with camera_to_world and fov")
        c2w[i] = opengl_to_opencv_c2w(_matrix(entry["camera_to_world"], f"{where}: camera_to_world"))
        fovs[i] = check_fov_deg(entry["fov"], f"{where}: fov")
    fps = None
    if data.get("fps") is not None:
        fps = as_float(data["fps"], f"camera file '{name}': fps", "a positive frame rate")
    f = np.asarray(fov_to_focal(np.radians(fovs), h))
    return CameraTrajectory(
        c2w, centred_intrinsics(f, f, w, h), w, h, fps=fps, source=f"camera file '{name}'"
    )


def to_json(
    traj: CameraTrajectory,
    keyframes: list[tuple[np.ndarray, float]] | None = None,
    loop: bool = False,
    tension: float = 0.0,
) -> dict[str, Any]:
    """``keyframes`` are (OpenCV c2w, vertical FoV) pairs; without them every frame is a keyframe."""
    warn_if_lossy(traj.intrinsics, traj.width, traj.height, "nerfstudio camera_path.json")
    fovs = traj.fov_y_deg
    aspect = traj.width / traj.height
    fps = float(traj.fps) if traj.fps else 16.0
    if keyframes is None:
        keyframes = [(traj.c2w[i], float(fovs[i])) for i in range(len(traj))]

    def flat(c2w_cv: np.ndarray) -> list:
        return [num(v) for v in opencv_to_opengl_c2w(c2w_cv).reshape(-1)]

    return {
        "camera_type": "perspective",
        "render_width": traj.width,
        "render_height": traj.height,
        "fps": num(fps),
        "seconds": len(traj) / fps,
        "is_cycle": bool(loop),
        "smoothness_value": float(tension),
        "default_fov": float(fovs[0]),
        "default_transition_sec": 1.0 / fps if len(keyframes) == len(traj) else len(traj) / fps / max(1, len(keyframes) - 1),
        "keyframes": [
            {"matrix": flat(m), "fov": float(fov), "aspect": aspect, "override_transition_enabled": False,
             "override_transition_sec": None}
            for m, fov in keyframes
        ],
        "camera_path": [
            {"camera_to_world": flat(traj.c2w[i]), "fov": float(fovs[i]), "aspect": aspect} for i in range(len(traj))
        ],
    }  # fmt: skip
