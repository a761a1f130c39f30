"""world.npz: the raw arrays of a world under MegaSaM-compatible names (images, depths, intrinsic, cam_c2w).

Loading never unpickles: every member's .npy header is checked (dtype, shape, byte count) before any array
is read, object arrays are refused, and ``np.load`` runs with ``allow_pickle=False``.
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from fantasy_world.errors import GeometryFormatError, InputError
from fantasy_world.geometry.world_data import WorldData

log = logging.getLogger(__name__)

NPZ_KEYS = (
    "images",
    "depths",
    "depth_conf",
    "points",
    "points_conf",
    "intrinsic",
    "cam_c2w",
    "requested_c2w",
)
MEGASAM_KEYS = ("images", "depths", "intrinsic", "cam_c2w")
_MAX_HEADER = 10_000
_MAX_MEMBERS = 64  # a world has 8 arrays; thousands of members are only there to cost time


def save_world_npz(path: str | Path, data: WorldData, *, compress: bool = False) -> Path:
    """Write exactly :data:`NPZ_KEYS` (uncompressed by default: float maps barely compress, and it is faster)."""
    path = Path(path)
    arrays = {
        "images": data.images,
        "depths": data.depths,
        "depth_conf": data.depth_conf,
        "points": data.points,
        "points_conf": data.points_conf,
        "intrinsic": data.intrinsics,
        "cam_c2w": data.cam_c2w,
        "requested_c2w": data.requested_c2w,
    }
    with open(path, "wb") as f:
        (np.savez_compressed if compress else np.savez)(f, **arrays)
    log.debug("wrote %s", path)
    return path


def _read_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Member name (without .npy) → (shape, dtype), validated without reading array data."""
    headers: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            if len(zf.infolist()) > _MAX_MEMBERS:
                raise GeometryFormatError(
                    f"{path}: {len(zf.infolist())} members; expected at most {_MAX_MEMBERS} arrays"
                )
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                key = info.filename[:-4]
                with zf.open(info) as fp:
                    major, _ = np.lib.format.read_magic(fp)
                    if major == 1:
                        shape, _, dtype = np.lib.format.read_array_header_1_0(fp, max_header_size=_MAX_HEADER)
                    elif major in (2, 3):
                        shape, _, dtype = np.lib.format.read_array_header_2_0(fp, max_header_size=_MAX_HEADER)
                    else:
                        raise ValueError(f"unsupported .npy version {major}")
                    header_len = fp.tell()
                if dtype.hasobject:
                    raise GeometryFormatError(f"{path}: {key!r} is an object array (pickled data is refused)")
                nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if header_len + nbytes > info.file_size:
                    raise GeometryFormatError(
                        f"{path}: {key!r} is truncated ({info.file_size} bytes for {shape})"
                    )
                headers[key] = (tuple(shape), dtype)
    except GeometryFormatError:
        raise
    except OSError as exc:
        raise GeometryFormatError(f"{path}: cannot read .npz ({exc})") from exc
    except Exception as exc:  # zipfile/numpy raise many types on corrupt input; all mean "malformed".
        raise GeometryFormatError(f"{path}: not a valid .npz archive ({type(exc).__name__}: {exc})") from exc
    return headers


def _expected_shapes(headers: dict[str, tuple[tuple[int, ...], np.dtype]], path: Path) -> dict[str, tuple]:
    shape = headers["images"][0]
    if len(shape) != 4 or shape[-1] != 3 or min(shape) < 1:
        raise GeometryFormatError(f"{path}: 'images' expected shape [N, H, W, 3], got {list(shape)}")
    n, h, w = shape[:3]
    return {
        "images": (n, h, w, 3),
        "depths": (n, h, w),
        "depth_conf": (n, h, w),
        "points": (n, h, w, 3),
        "points_conf": (n, h, w),
        "intrinsic": (n, 3, 3),
        "cam_c2w": (n, 4, 4),
        "requested_c2w": (n, 4, 4),
    }


def _validate(headers: dict, path: Path, strict: bool) -> None:
    required = NPZ_KEYS if strict else MEGASAM_KEYS
    missing = [k for k in required if k not in headers]
    if missing:
        raise GeometryFormatError(
            f"{path}: missing key(s) {', '.join(missing)}; expected {', '.join(required)}"
        )
    expected = _expected_shapes(headers, path)
    for key, exp in expected.items():
        if key not in headers:
            continue
        shape, dtype = headers[key]
        if key == "images" and dtype != np.uint8:
            raise GeometryFormatError(f"{path}: 'images' expected dtype uint8, got {dtype}")
        if key != "images" and dtype.kind != "f":
            raise GeometryFormatError(f"{path}: {key!r} expected a float dtype, got {dtype}")
        megasam_k = not strict and key == "intrinsic" and shape == (3, 3)
        if shape != exp and not megasam_k:
            raise GeometryFormatError(f"{path}: {key!r} expected shape {list(exp)}, got {list(shape)}")


def load_world_npz(
    path: str | Path,
    *,
    strict: bool = True,
    fps: float = 16.0,
    meta: dict[str, Any] | None = None,
    max_bytes: int | None = None,
) -> WorldData:
    """Load a world.npz. ``strict=False`` also accepts MegaSaM outputs (images, depths, intrinsic, cam_c2w;
    a single [3, 3] intrinsic is repeated), filling confidences with ones and points by unprojection.

    ``max_bytes`` bounds the unpacked size of the arrays that are loaded; it is checked from the .npy
    headers, so a small compressed file claiming gigabytes is refused before anything is inflated.
    """
    path = Path(path)
    headers = _read_headers(path)
    _validate(headers, path, strict)
    if max_bytes is not None:
        unpacked = sum(
            int(np.prod(shape, dtype=object)) * dtype.itemsize for shape, dtype in headers.values()
        )
        if unpacked > max_bytes:
            raise GeometryFormatError(
                f"{path.name}: arrays unpack to {unpacked / 1e6:.0f} MB; expected at most "
                f"{max_bytes / 1e6:.0f} MB (the largest world this studio makes)"
            )
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: np.asarray(npz[k]) for k in NPZ_KEYS if k in headers}
    except Exception as exc:  # corrupt compressed streams, CRC errors, ...: all mean "malformed".
        raise GeometryFormatError(f"{path}: cannot read arrays ({type(exc).__name__}: {exc})") from exc
    try:
        n = arrays["images"].shape[0]
        if arrays["intrinsic"].shape == (3, 3):
            arrays["intrinsic"] = np.repeat(arrays["intrinsic"][None], n, axis=0)
        if all(k in arrays for k in NPZ_KEYS):
            return WorldData(
                images=arrays["images"],
                depths=arrays["depths"],
                depth_conf=arrays["depth_conf"],
                points=arrays["points"],
                points_conf=arrays["points_conf"],
                intrinsics=arrays["intrinsic"],
                cam_c2w=arrays["cam_c2w"],
                requested_c2w=arrays["requested_c2w"],
                fps=fps,
                meta=dict(meta or {}),
            )
        data = WorldData.from_depth(
            arrays["images"],
            arrays["depths"],
            arrays["intrinsic"],
            arrays["cam_c2w"],
            depth_conf=arrays.get("depth_conf"),
            requested_c2w=arrays.get("requested_c2w"),
            fps=fps,
            meta=meta,
        )
        if "points" in arrays:
            data.points = np.ascontiguousarray(arrays["points"], dtype=np.float32)
        if "points_conf" in arrays:
            data.points_conf = np.ascontiguousarray(arrays["points_conf"], dtype=np.float32)
        return data
    except InputError as exc:
        raise GeometryFormatError(f"{path}: {exc}") from exc
