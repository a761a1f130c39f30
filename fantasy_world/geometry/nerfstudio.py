"""nerfstudio / instant-ngp ``transforms.json``: OpenGL c2w per frame with its own pinhole intrinsics.

nerfstudio casts rays through pixel centres at +0.5, so cx, cy are shifted by +0.5 on export and back
on import (see ``unproject``'s pixel convention). ``ply_file_path`` lets splatting trainers initialise
from our points, which live in the same world frame as the poses.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fantasy_world.camera.conventions import opencv_to_opengl_c2w, opengl_to_opencv_c2w
from fantasy_world.errors import GeometryFormatError, InputError

log = logging.getLogger(__name__)

PIXEL_CENTER_OFFSET = 0.5


@dataclass
class TransformsFrames:
    """Frames of a transforms.json in our conventions (OpenCV c2w, integer pixel centres)."""

    file_paths: list[str]
    intrinsics: np.ndarray  # [N, 3, 3]
    c2w: np.ndarray  # [N, 4, 4] OpenCV
    sizes: np.ndarray  # [N, 2] (width, height)
    ply_file_path: str | None


def write_transforms(
    path: str | Path,
    intrinsics: np.ndarray,
    c2w: np.ndarray,
    width: int,
    height: int,
    file_paths: list[str],
    *,
    ply_file_path: str | None = "points.ply",
) -> Path:
    """Write transforms.json; ``file_paths`` and ``ply_file_path`` are relative to its folder."""
    intrinsics = np.asarray(intrinsics, dtype=np.float64)
    c2w = np.asarray(c2w, dtype=np.float64)
    n = len(file_paths)
    if intrinsics.shape != (n, 3, 3) or c2w.shape != (n, 4, 4):
        raise InputError(f"transforms.json: expected K [{n}, 3, 3] and c2w [{n}, 4, 4] for {n} files")
    gl = opencv_to_opengl_c2w(c2w)
    frames = []
    for i in range(n):
        k = intrinsics[i]
        frames.append(
            {
                "file_path": file_paths[i],
                "transform_matrix": gl[i].tolist(),
                "fl_x": float(k[0, 0]),
                "fl_y": float(k[1, 1]),
                "cx": float(k[0, 2]) + PIXEL_CENTER_OFFSET,
                "cy": float(k[1, 2]) + PIXEL_CENTER_OFFSET,
                "w": int(width),
                "h": int(height),
            }
        )
    doc: dict = {"camera_model": "OPENCV"}
    if n:
        # Shared defaults for readers that ignore per-frame intrinsics (instant-ngp, older tools).
        doc.update({key: frames[0][key] for key in ("fl_x", "fl_y", "cx", "cy", "w", "h")})
        doc["camera_angle_x"] = float(2.0 * np.arctan(0.5 * width / intrinsics[0, 0, 0]))
    if ply_file_path is not None:
        doc["ply_file_path"] = ply_file_path
    doc["frames"] = frames
    path = Path(path)
    path.write_text(json.dumps(doc, indent=2))
    log.debug("wrote %d frames to %s", n, path)
    return path


def _frame_value(frame: dict, doc: dict, key: str, where: str) -> float:
    value = frame.get(key, doc.get(key))
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise GeometryFormatError(f"{where}: expected a finite number for {key!r}")
    return float(value)


def read_transforms(path: str | Path) -> TransformsFrames:
    """Read transforms.json (per-frame or shared intrinsics) back into our conventions."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise GeometryFormatError(f"{path}: cannot read transforms.json ({exc})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("frames"), list):
        raise GeometryFormatError(f"{path}: expected an object with a 'frames' list")
    names, ks, c2ws, sizes = [], [], [], []
    for i, frame in enumerate(doc["frames"]):
        where = f"{path}: frames[{i}]"
        if not isinstance(frame, dict) or not isinstance(frame.get("file_path"), str):
            raise GeometryFormatError(f"{where}: expected an object with a 'file_path' string")
        try:
            mat = np.array(frame.get("transform_matrix"), dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise GeometryFormatError(f"{where}: expected a numeric 4x4 'transform_matrix'") from exc
        if mat.shape != (4, 4) or not np.all(np.isfinite(mat)):
            raise GeometryFormatError(f"{where}: expected a finite 4x4 'transform_matrix'")
        fx, fy, cx, cy, w, h = (
            _frame_value(frame, doc, k, where) for k in ("fl_x", "fl_y", "cx", "cy", "w", "h")
        )
        names.append(frame["file_path"])
        ks.append([[fx, 0, cx - PIXEL_CENTER_OFFSET], [0, fy, cy - PIXEL_CENTER_OFFSET], [0, 0, 1.0]])
        c2ws.append(opengl_to_opencv_c2w(mat))
        sizes.append((int(w), int(h)))
    ply = doc.get("ply_file_path")
    return TransformsFrames(
        file_paths=names,
        intrinsics=np.array(ks, dtype=np.float64).reshape(-1, 3, 3),
        c2w=np.array(c2ws, dtype=np.float64).reshape(-1, 4, 4),
        sizes=np.array(sizes, dtype=np.int64).reshape(-1, 2),
        ply_file_path=ply if isinstance(ply, str) else None,
    )
