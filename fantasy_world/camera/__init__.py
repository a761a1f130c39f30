"""Camera paths, presets, file formats and Plücker ray maps (OpenCV c2w, pixel intrinsics)."""

from __future__ import annotations

from fantasy_world.camera.formats import (
    FORMATS,
    detect_format,
    load_camera_file,
    read_camera_bytes,
    read_camera_file,
    save_camera_file,
)
from fantasy_world.camera.keyframes import Keyframe, PathSettings
from fantasy_world.camera.normalize import (
    normalize_trajectory,
    relative_to_first,
    scale_translations,
    scene_scale_from_depth,
)
from fantasy_world.camera.path import CameraPath
from fantasy_world.camera.plucker import plucker_rays
from fantasy_world.camera.presets import PRESETS, PresetParam, PresetSpec, describe_presets
from fantasy_world.camera.resolve import CameraSource, as_camera_path, resolve_camera
from fantasy_world.camera.trajectory import CameraTrajectory

CameraFrames = CameraTrajectory

__all__ = [
    "FORMATS",
    "PRESETS",
    "CameraFrames",
    "CameraPath",
    "CameraSource",
    "CameraTrajectory",
    "Keyframe",
    "as_camera_path",
    "PathSettings",
    "PresetParam",
    "PresetSpec",
    "describe_presets",
    "detect_format",
    "load_camera_file",
    "normalize_trajectory",
    "plucker_rays",
    "read_camera_bytes",
    "read_camera_file",
    "relative_to_first",
    "resolve_camera",
    "save_camera_file",
    "scale_translations",
    "scene_scale_from_depth",
]
