"""Camera file formats: detection by content (then extension), reading and writing.

``native`` (our keyframed path JSON), ``worldscore`` (WorldScore / FantasyWorld ``camera_data.json``),
``re10k`` (RealEstate10K 19-value text) and ``nerfstudio`` (``camera_path.json``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fantasy_world.camera.formats import native, nerfstudio, re10k, worldscore
from fantasy_world.camera.formats.textio import (
    decode_text,
    dump_json,
    parse_json,
    read_text,
    write_text_atomic,
)
from fantasy_world.camera.path import CameraPath
from fantasy_world.camera.trajectory import CameraTrajectory
from fantasy_world.errors import CameraFormatError
from fantasy_world.limits import MAX_CAMERA_FILE_BYTES

FORMATS = ("native", "worldscore", "re10k", "nerfstudio")
_ALIASES = {
    "native": "native",
    "fantasyworld": "native",
    "fantasyworld_camera_path": "native",
    "path": "native",
    "worldscore": "worldscore",
    "camera_data": "worldscore",
    "re10k": "re10k",
    "realestate10k": "re10k",
    "txt": "re10k",
    "nerfstudio": "nerfstudio",
    "camera_path": "nerfstudio",
}


def normalize_format(fmt: str) -> str:
    key = str(fmt).strip().lower().replace("-", "_")
    if key not in _ALIASES:
        raise CameraFormatError(f"camera format {fmt!r}: unknown; expected one of {', '.join(FORMATS)}")
    return _ALIASES[key]


def detect_format(text: str, name: str) -> str:
    """Which format the text is: JSON by its keys, otherwise RealEstate10K text."""
    stripped = text.lstrip()
    if not stripped:
        raise CameraFormatError(f"camera file '{name}': is empty; expected a camera file")
    if stripped[0] in "{[" or str(name).lower().endswith(".json"):
        return _detect_json(parse_json(text, name), name)
    return "re10k"


def _detect_json(data: object, name: str) -> str:
    if not isinstance(data, dict):
        raise CameraFormatError(
            f"camera file '{name}': top level is {type(data).__name__}; expected a JSON object"
        )
    if "format" in data:
        if native.sniff(data):
            return "native"
        raise CameraFormatError(
            f"camera file '{name}': format={str(data['format'])[:40]!r}; expected '{native.FORMAT_TAG}'"
        )
    for mod in (nerfstudio, worldscore):
        if mod.sniff(data):
            return mod.NAME
    keys = ", ".join(sorted(str(k)[:20] for k in data)[:8])
    raise CameraFormatError(
        f"camera file '{name}': JSON keys [{keys}] match no camera format; expected cameras_interp (WorldScore), "
        "camera_path (nerfstudio) or format (FantasyWorld path)"
    )


def parse_camera_text(
    text: str, name: str, width: int | None = None, height: int | None = None
) -> CameraTrajectory | CameraPath:
    """Parse camera file text; a native path stays a :class:`CameraPath`, others are per-frame."""
    fmt = detect_format(text, name)
    if fmt == "re10k":
        return re10k.from_text(text, name, width, height)
    data = parse_json(text, name)
    if fmt == "native":
        path = native.from_json(data, name)
        if width is not None or height is not None:
            if width is None or height is None:
                raise CameraFormatError(f"{name}: give both width and height, or neither")
            path.settings.width, path.settings.height = width, height
            path.settings.validate(f"camera file '{name}'")
        return path
    return (nerfstudio if fmt == "nerfstudio" else worldscore).from_json(data, name, width, height)


def read_camera_bytes(
    data: bytes, name: str = "<upload>", width: int | None = None, height: int | None = None
) -> CameraTrajectory | CameraPath:
    """Same as :func:`read_camera_file` for bytes already in memory (app uploads)."""
    if len(data) > MAX_CAMERA_FILE_BYTES:
        raise CameraFormatError(f"camera file '{name}': {len(data)} bytes; expected at most 20 MiB")
    return parse_camera_text(decode_text(data, name), name, width, height)


def read_camera_file(
    path: str | Path, width: int | None = None, height: int | None = None
) -> CameraTrajectory | CameraPath:
    return parse_camera_text(read_text(path), str(path), width, height)


def load_camera_file(
    path: str | Path,
    width: int | None = None,
    height: int | None = None,
    *,
    allow_single_frame: bool = False,
) -> CameraTrajectory:
    """Per-frame cameras from any supported file (a native path is sampled at its settings).

    ``width``/``height`` choose the image size; otherwise the file's own, else 592×336.
    """
    loaded = read_camera_file(path, width, height)
    traj = loaded.sample() if isinstance(loaded, CameraPath) else loaded
    if len(traj) < 2 and not allow_single_frame:
        raise CameraFormatError(f"camera file '{path}': 1 camera; expected at least 2 for a camera path")
    return traj


def format_for_suffix(path: Path, obj: CameraTrajectory | CameraPath) -> str:
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return "re10k"
    if suffix == ".json":
        return "native" if isinstance(obj, CameraPath) else "worldscore"
    raise CameraFormatError(f"camera file '{path}': cannot tell the format from '{suffix}'; pass format=")


def dumps_camera(obj: CameraTrajectory | CameraPath, format: str) -> str:
    """Text of ``obj`` in ``format``; paths are sampled for per-frame formats, trajectories keyed per frame."""
    fmt = normalize_format(format)
    if fmt == "native":
        path = obj if isinstance(obj, CameraPath) else CameraPath.from_trajectory(obj)
        return dump_json(native.to_json(path))
    traj = obj.sample() if isinstance(obj, CameraPath) else obj
    if fmt == "re10k":
        return re10k.to_text(traj)
    if fmt == "worldscore":
        keys = np.stack([k.c2w for k in obj.keyframes]) if isinstance(obj, CameraPath) else None
        return dump_json(worldscore.to_json(traj, keys))
    if isinstance(obj, CameraPath):
        kfs = [(k.c2w, k.fov_y_deg) for k in obj.keyframes]
        return dump_json(nerfstudio.to_json(traj, kfs, obj.settings.loop, obj.settings.tension))
    return dump_json(nerfstudio.to_json(traj))


def save_camera_file(obj: CameraTrajectory | CameraPath, path: str | Path, format: str | None = None) -> Path:
    """Write ``obj``; without ``format`` the suffix decides (.txt → re10k; .json → native for a path,
    worldscore for per-frame cameras)."""
    if not isinstance(obj, (CameraTrajectory, CameraPath)):
        raise CameraFormatError(f"save {type(obj).__name__}: expected a CameraTrajectory or CameraPath")
    path = Path(path)
    fmt = normalize_format(format) if format is not None else format_for_suffix(path, obj)
    return write_text_atomic(path, dumps_camera(obj, fmt))


__all__ = [
    "FORMATS",
    "detect_format",
    "dumps_camera",
    "load_camera_file",
    "normalize_format",
    "parse_camera_text",
    "read_camera_bytes",
    "read_camera_file",
    "save_camera_file",
]
