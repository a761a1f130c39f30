"""The output bundle (file list in docs/ARCHITECTURE.md): one call writes every file, one call reads a world back."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np

from fantasy_world.errors import GeometryFormatError
from fantasy_world.geometry.cameras_json import write_cameras_json
from fantasy_world.geometry.colmap import write_colmap_text
from fantasy_world.geometry.depth_video import write_depth_video
from fantasy_world.geometry.glb import write_glb
from fantasy_world.geometry.images import frame_names, link_or_copy, write_frames
from fantasy_world.geometry.nerfstudio import write_transforms
from fantasy_world.geometry.npz import load_world_npz, save_world_npz
from fantasy_world.geometry.ply import write_ply
from fantasy_world.geometry.pointcloud import PointFilter, world_point_cloud
from fantasy_world.geometry.video import write_video
from fantasy_world.geometry.world_data import WorldData
from fantasy_world.utils.versions import package_versions

log = logging.getLogger(__name__)

MAX_FPS = 240.0  # video players and encoders refuse far less; nothing we write is faster
_OWN_META = ("frames", "height", "width", "fps", "num_points", "point_filter", "point_source", "depth_range")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"meta: value of type {type(obj).__name__} is not JSON-serialisable")


def write_bundle(
    data: WorldData,
    out_dir: str | Path,
    *,
    max_points: int | None = 1_000_000,
    conf_percentile: float = 0.0,
    conf_threshold: float | None = None,
    conf_above: float | None | Literal["model"] = "model",
    stride: int = 1,
    flying_threshold: float | None = 0.05,
    point_source: Literal["depth", "points"] = "depth",
    fps: float | None = None,
    meta: dict[str, Any] | None = None,
    seed: int = 0,
) -> dict[str, Path]:
    """Write video.mp4, depth.mp4, world.npz, points.ply, scene.glb, cameras.json, transforms.json + images/,
    colmap/{images, sparse/0/*.txt} and meta.json into ``out_dir``; returns relative name → path.

    The point cloud (PLY, GLB, points3D.txt) is ``point_source`` ("depth": unprojected depth with the
    predicted cameras, as the official exporter; "points": the point head) filtered per :class:`PointFilter`.
    ``conf_above="model"`` takes the generating model's default (``meta["point_conf_above"]``, e.g. 1.5
    for Wan2.2: keep ``depth_conf > 1.5``; none for the others). ``fps`` defaults to ``data.fps``; ``meta`` is merged over ``data.meta`` into meta.json, whose one
    ``timings`` entry holds the run's stage times (``data.timings``) and this export's.
    """
    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fps = data.fps if fps is None else float(fps)
    if conf_above == "model":
        model_default = data.meta.get("point_conf_above")
        conf_above = None if model_default is None else float(model_default)
    options = PointFilter(
        conf_threshold=conf_threshold,
        conf_above=conf_above,
        conf_percentile=conf_percentile,
        stride=stride,
        flying_threshold=flying_threshold,
        max_points=max_points,
        seed=seed,
    )
    n, h, w = data.num_frames, data.height, data.width
    files: dict[str, Path] = {}

    files["video.mp4"] = write_video(out / "video.mp4", data.images, fps=fps)
    files["depth.mp4"], (near, far) = write_depth_video(out / "depth.mp4", data.depths, fps=fps)
    files["world.npz"] = save_world_npz(out / "world.npz", data)

    cloud = world_point_cloud(data, options, source=point_source)
    files["points.ply"] = write_ply(out / "points.ply", cloud)
    files["scene.glb"] = write_glb(out / "scene.glb", cloud, data.intrinsics, data.cam_c2w, w, h)
    files["cameras.json"] = write_cameras_json(
        out / "cameras.json", data.intrinsics, data.cam_c2w, data.requested_c2w, w, h
    )

    names = frame_names(n)
    frames = write_frames(data.images, out / "images", names)
    files["images"] = out / "images"
    files["transforms.json"] = write_transforms(
        out / "transforms.json", data.intrinsics, data.cam_c2w, w, h, [f"images/{m}" for m in names]
    )
    link_or_copy(frames, out / "colmap" / "images")
    files["colmap/images"] = out / "colmap" / "images"
    colmap = write_colmap_text(
        out / "colmap" / "sparse" / "0", data.intrinsics, data.cam_c2w, w, h, names, cloud
    )
    for key, path in colmap.items():
        files[f"colmap/sparse/0/{key}.txt"] = path

    doc: dict[str, Any] = {**data.meta, **(meta or {})}
    doc.update(
        frames=n,
        height=h,
        width=w,
        fps=fps,
        num_points=len(cloud),
        point_source=point_source,
        point_filter={
            "conf_threshold": conf_threshold,
            "conf_above": conf_above,
            "conf_percentile": conf_percentile,
            "stride": stride,
            "flying_threshold": flying_threshold,
            "max_points": max_points,
            "seed": seed,
        },
        depth_range=[near, far],
    )
    doc.setdefault("versions", package_versions())
    timings = {**(doc.get("timings") or {}), **data.timings}
    timings["export"] = round(time.perf_counter() - start, 4)
    doc["timings"] = timings
    files["meta.json"] = out / "meta.json"
    files["meta.json"].write_text(json.dumps(doc, indent=2, default=_jsonable))
    log.info("wrote bundle (%d frames, %d points) to %s in %.2fs", n, len(cloud), out, timings["export"])
    return files


def load_bundle(path: str | Path, *, strict: bool = True, max_bytes: int | None = None) -> WorldData:
    """Load a world from a bundle folder (world.npz + meta.json) or a .npz file directly.

    For a bare .npz, fps is 16 and meta is empty; ``strict=False`` accepts MegaSaM-style files.
    ``max_bytes`` bounds the arrays' unpacked size, checked from the headers before decompressing.
    """
    path = Path(path)
    if path.is_dir():
        npz_path = path / "world.npz"
        if not npz_path.is_file():
            raise GeometryFormatError(f"{path}: expected a bundle folder containing world.npz")
        meta: dict[str, Any] = {}
        meta_path = path / "meta.json"
        if meta_path.is_file():
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
                raise GeometryFormatError(f"{meta_path}: cannot read meta.json ({exc})") from exc
            if not isinstance(meta, dict):
                raise GeometryFormatError(f"{meta_path}: expected a JSON object")
        fps = meta.get("fps", 16.0)
        if isinstance(fps, bool) or not isinstance(fps, int | float) or not 0 < fps <= MAX_FPS:
            raise GeometryFormatError(f"{meta_path}: 'fps' expected a number in (0, {MAX_FPS:g}]")
        user_meta = {k: v for k, v in meta.items() if k not in _OWN_META}
        return load_world_npz(npz_path, strict=strict, fps=float(fps), meta=user_meta, max_bytes=max_bytes)
    if path.is_file():
        return load_world_npz(path, strict=strict, max_bytes=max_bytes)
    raise GeometryFormatError(f"{path}: expected a bundle folder or a .npz file")
