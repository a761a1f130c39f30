"""cameras.json: the WorldScore / FantasyWorld camera schema plus what it lacks (per-frame K, image size).

``cameras_interp`` holds the per-frame OpenCV c2w the world's geometry was predicted with (what official
FantasyWorld reads as its camera input, so the file can be fed back), ``cameras`` the requested path, and
``focal_length`` the first frame's fx, as the original schema has one focal for all frames.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fantasy_world.errors import InputError


def write_cameras_json(
    path: str | Path,
    intrinsics: np.ndarray,
    cam_c2w: np.ndarray,
    requested_c2w: np.ndarray,
    width: int,
    height: int,
) -> Path:
    """Write the schema's keys: focal_length, cameras, cameras_interp, intrinsics, image_size."""
    intrinsics = np.asarray(intrinsics, dtype=np.float64)
    cam_c2w = np.asarray(cam_c2w, dtype=np.float64)
    requested_c2w = np.asarray(requested_c2w, dtype=np.float64)
    n = intrinsics.shape[0]
    if intrinsics.shape != (n, 3, 3) or cam_c2w.shape != (n, 4, 4) or requested_c2w.shape != (n, 4, 4):
        raise InputError("cameras.json: expected K [N, 3, 3] and two c2w [N, 4, 4] with the same N")
    doc = {
        "focal_length": float(intrinsics[0, 0, 0]) if n else 500.0,
        "scale": 1,
        "convention": "opencv_c2w",
        "cameras": requested_c2w.tolist(),
        "cameras_interp": cam_c2w.tolist(),
        "intrinsics": intrinsics.tolist(),
        "image_size": {"width": int(width), "height": int(height)},
    }
    path = Path(path)
    path.write_text(json.dumps(doc, indent=1))
    return path
