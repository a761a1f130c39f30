"""Our own editable path file: keyframes + settings, versioned.

``{"format": "fantasyworld-camera-path", "version": 1, "settings": {...}, "keyframes": [{"c2w": 4x4
OpenCV, "fov_y_deg": deg, "time": null|number}], "preset": null|{"name", "params"}}``. A newer version
is refused with a message instead of being half-read.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from fantasy_world.camera.checks import as_bool, as_float, as_float_array, as_positive_int, is_number
from fantasy_world.camera.formats.common import num
from fantasy_world.camera.keyframes import Keyframe, PathSettings
from fantasy_world.camera.path import CameraPath
from fantasy_world.errors import CameraFormatError, FantasyWorldError
from fantasy_world.limits import MAX_CAMERA_FRAMES

logger = logging.getLogger(__name__)

NAME = "native"
FORMAT_TAG = "fantasyworld-camera-path"
VERSION = 1
_SETTING_KEYS = {"num_frames", "fps", "loop", "tension", "constant_speed", "width", "height"}


def sniff(data: Any) -> bool:
    return isinstance(data, dict) and data.get("format") == FORMAT_TAG


def from_json(data: Any, name: str) -> CameraPath:
    where = f"camera file '{name}'"
    if not isinstance(data, dict) or data.get("format") != FORMAT_TAG:
        raise CameraFormatError(f'{where}: expected a JSON object with "format": "{FORMAT_TAG}"')
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CameraFormatError(f"{where}: version={str(version)[:20]!r}; expected a positive integer")
    if version > VERSION:
        raise CameraFormatError(
            f"{where}: format version {version} is newer than this FantasyWorld build reads ({VERSION}); "
            "update FantasyWorld or re-export the path"
        )
    raw_settings = data.get("settings", {})
    if not isinstance(raw_settings, dict):
        raise CameraFormatError(f"{where}: settings must be a JSON object")
    settings = PathSettings()
    for key, value in raw_settings.items():
        if key not in _SETTING_KEYS:
            logger.debug("%s: ignoring unknown setting %r", name, key)
            continue
        sw = f"{where}: settings.{key}"
        if key in ("loop", "constant_speed"):
            value = as_bool(value, sw)
        elif key in ("num_frames",):
            value = as_positive_int(value, sw, MAX_CAMERA_FRAMES)
        elif key in ("width", "height"):
            value = as_positive_int(value, sw, 16_384)
        else:
            value = as_float(value, sw)
        setattr(settings, key, value)
    settings.validate(f"{where}: settings")
    raw_kfs = data.get("keyframes")
    if not isinstance(raw_kfs, list) or not 2 <= len(raw_kfs) <= MAX_CAMERA_FRAMES:
        count = len(raw_kfs) if isinstance(raw_kfs, list) else "no"
        raise CameraFormatError(f"{where}: {count} keyframes; expected a list of 2 to {MAX_CAMERA_FRAMES}")
    keyframes = []
    for i, item in enumerate(raw_kfs):
        kw = f"{where}: keyframes[{i}]"
        if not isinstance(item, dict) or "c2w" not in item:
            raise CameraFormatError(f"{kw}: expected an object with c2w (4x4), fov_y_deg and optional time")
        c2w = as_float_array(item["c2w"], (4, 4), f"{kw}.c2w")
        keyframes.append(Keyframe.checked(c2w, item.get("fov_y_deg", 60.0), item.get("time"), kw))
    path = CameraPath(keyframes, settings)
    preset = data.get("preset")
    if (
        isinstance(preset, dict)
        and isinstance(preset.get("name"), str)
        and isinstance(preset.get("params"), dict)
    ):
        params = preset["params"]
        if all(isinstance(k, str) and is_number(v) for k, v in params.items()):
            path.preset_name, path.preset_params = preset["name"], {k: float(v) for k, v in params.items()}
            _reattach_exact(path)
    return path


def _reattach_exact(path: CameraPath) -> None:
    """A saved, unedited preset samples as its exact move again when its keyframes still match it."""
    from fantasy_world.camera.presets import build_preset

    try:
        fresh = build_preset(path.preset_name or "", path.settings.num_frames, **path.preset_params)
    except FantasyWorldError:
        return
    same = len(fresh) == len(path) and all(
        np.allclose(a.c2w, b.c2w, atol=1e-6) and abs(a.fov_y_deg - b.fov_y_deg) < 1e-6 and b.time is None
        for a, b in zip(fresh.keyframes, path.keyframes)
    )
    if same:
        path.exact = fresh.exact


def to_json(path: CameraPath) -> dict[str, Any]:
    s = path.settings
    return {
        "format": FORMAT_TAG,
        "version": VERSION,
        "settings": {
            "num_frames": s.num_frames,
            "fps": num(s.fps),
            "loop": s.loop,
            "tension": num(s.tension),
            "constant_speed": s.constant_speed,
            "width": s.width,
            "height": s.height,
        },
        "keyframes": [
            {"c2w": [[num(v) for v in row] for row in k.c2w], "fov_y_deg": num(k.fov_y_deg), "time": k.time}
            for k in path.keyframes
        ],
        "preset": {"name": path.preset_name, "params": path.preset_params} if path.preset_name else None,
    }
