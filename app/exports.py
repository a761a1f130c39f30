"""Bundle files for the Downloads box: the whole bundle as a zip, each file, COLMAP as a zip.

Writing is the library's job (``write_bundle``); this module only picks what to offer and zips.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import zipfile
import zlib
from pathlib import Path

from app.files import safe_name
from app.limits import META_MAX_BYTES, WorldLimits, world_limits
from fantasy_world.errors import FantasyWorldError, GeometryFormatError
from fantasy_world.geometry import load_bundle
from fantasy_world.geometry.world_data import WorldData
from fantasy_world.limits import MAX_GUIDANCE, MAX_PROMPT_CHARS, MAX_STEPS, MAX_VIDEO_FRAMES

log = logging.getLogger(__name__)

SINGLE_FILES = (
    "video.mp4",
    "depth.mp4",
    "points.ply",
    "scene.glb",
    "cameras.json",
    "transforms.json",
    "world.npz",
    "meta.json",
)
MAX_ZIP_MEMBERS = 10_000
# meta.json numbers the exporters use, with the ranges a studio result can have.
META_NUMBERS = {
    "fps": (1.0, 240.0),
    "seed": (0, 2**63 - 1),
    "steps": (1, MAX_STEPS),
    "guidance": (0.0, MAX_GUIDANCE),
    "frames": (1, MAX_VIDEO_FRAMES),
    "height": (1, 8192),
    "width": (1, 8192),
}


def zip_folder(folder: Path, target: Path) -> Path:
    """Zip ``folder``'s contents (stored paths relative to it); mp4/npz are already compressed."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return target


def bundle_zip_name(world: WorldData) -> str:
    """``bundle_<prompt words>_seed<N>.zip``: recognisable, and safe whatever the prompt contains."""
    meta = getattr(world, "meta", None) or {}
    prompt = safe_name(str(meta.get("prompt", "")), "world", max_len=40)
    seed = meta.get("seed")
    suffix = f"_seed{int(seed)}" if isinstance(seed, int) and not isinstance(seed, bool) else ""
    return f"bundle_{prompt}{suffix}.zip"


def save_for_download(world: WorldData, run_dir: Path, max_points: int) -> list[Path]:
    """Write the bundle to ``run_dir/bundle`` and return the downloads: the bundle zip first, then each file."""
    bundle = run_dir / "bundle"
    world.save(bundle, max_points=max_points)
    files = [zip_folder(bundle, run_dir / bundle_zip_name(world))]
    files += [bundle / name for name in SINGLE_FILES if (bundle / name).is_file()]
    if (bundle / "colmap").is_dir():
        files.append(zip_folder(bundle / "colmap", run_dir / "colmap.zip"))
    return files


def open_upload(path: Path, scratch: Path, limits: WorldLimits | None = None) -> WorldData:
    """A world from an uploaded ``world.npz`` or a zipped bundle folder.

    Sizes are checked against ``limits`` (the largest world the studio makes) from the zip directory
    and the .npy headers before anything is inflated; members are streamed to disk, never read whole.
    """
    limits = limits or world_limits()
    if path.suffix.lower() == ".npz":
        return load_bundle(path, max_bytes=limits.max_npz_bytes)
    if path.suffix.lower() != ".zip":
        raise GeometryFormatError(f"{path.name}: expected a world.npz or a .zip of a bundle folder")
    try:
        with zipfile.ZipFile(path) as zf:
            members = zf.infolist()
            if len(members) > MAX_ZIP_MEMBERS:
                raise GeometryFormatError(
                    f"{path.name}: {len(members)} files in the zip; expected at most {MAX_ZIP_MEMBERS}"
                )
            npz = [m for m in members if Path(m.filename).name == "world.npz" and not m.is_dir()]
            if not npz:
                raise GeometryFormatError(f"{path.name}: expected a bundle zip containing world.npz")
            prefix = Path(npz[0].filename).parent
            wanted = {"world.npz": limits.max_npz_bytes, "meta.json": META_MAX_BYTES}
            infos = {name: _member(zf, (prefix / name).as_posix()) for name in wanted}
            for name, info in infos.items():
                if info is not None and info.file_size > wanted[name]:
                    raise GeometryFormatError(
                        f"{path.name}: {name} unpacks to {info.file_size / 1e6:.0f} MB; expected at most "
                        f"{wanted[name] / 1e6:.0f} MB (the largest world this studio makes)"
                    )
            target = scratch / "opened"
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            for name, info in infos.items():
                if info is not None:  # streamed; zipfile stops at the declared size and checks the CRC
                    with zf.open(info) as src, open(target / name, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
    except FantasyWorldError:
        raise
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        zlib.error,
        EOFError,
        RuntimeError,
        NotImplementedError,
    ):
        # corrupt members, encrypted members and unsupported compression all land here
        raise GeometryFormatError(f"{path.name}: not a readable zip file") from None
    except (OSError, ValueError) as exc:
        raise GeometryFormatError(f"{path.name}: not a readable zip file ({type(exc).__name__})") from None
    check_meta(target / "meta.json")
    return load_bundle(target, max_bytes=limits.max_npz_bytes)


def _member(zf: zipfile.ZipFile, name: str) -> zipfile.ZipInfo | None:
    try:
        info = zf.getinfo(name)
    except KeyError:
        return None
    return None if info.is_dir() else info


def check_meta(path: Path) -> None:
    """meta.json of a re-opened bundle: only sane values reach the exporters (fps, prompt, seed, sizes)."""
    if not path.is_file():
        return
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        raise GeometryFormatError("meta.json: not valid JSON; expected the bundle's own meta.json") from None
    if not isinstance(meta, dict):
        raise GeometryFormatError("meta.json: expected a JSON object")
    for key, (lo, hi) in META_NUMBERS.items():
        value = meta.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise GeometryFormatError(f"meta.json: {key!r} expected a number in [{lo:g}, {hi:g}]")
        if not lo <= value <= hi:
            raise GeometryFormatError(f"meta.json: {key}={value:g}; expected a number in [{lo:g}, {hi:g}]")
    for key in ("prompt", "negative_prompt", "model"):
        value = meta.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > MAX_PROMPT_CHARS):
            raise GeometryFormatError(
                f"meta.json: {key!r} expected text of at most {MAX_PROMPT_CHARS} characters"
            )
