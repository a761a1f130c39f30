"""Bundle files for the Downloads box: the whole bundle as a zip, each file, COLMAP as a zip.

Writing is the library's job (``write_bundle``); this module only picks what to offer and zips.
"""

from __future__ import annotations

import logging
import shutil
import zipfile
import zlib
from pathlib import Path

from app.files import safe_name
from fantasy_world.errors import FantasyWorldError, GeometryFormatError
from fantasy_world.geometry import load_bundle
from fantasy_world.geometry.world_data import WorldData

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
MAX_UNZIPPED_BYTES = 2 << 30


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


def open_upload(path: Path, scratch: Path) -> WorldData:
    """A world from an uploaded ``world.npz`` or a zipped bundle folder (checked before extracting)."""
    if path.suffix.lower() == ".npz":
        return load_bundle(path)
    if path.suffix.lower() != ".zip":
        raise GeometryFormatError(f"{path.name}: expected a world.npz or a .zip of a bundle folder")
    try:
        with zipfile.ZipFile(path) as zf:
            members = zf.infolist()
            if len(members) > MAX_ZIP_MEMBERS or sum(m.file_size for m in members) > MAX_UNZIPPED_BYTES:
                raise GeometryFormatError(f"{path.name}: zip too large to open")
            npz = [m for m in members if Path(m.filename).name == "world.npz" and not m.is_dir()]
            if not npz:
                raise GeometryFormatError(f"{path.name}: expected a bundle zip containing world.npz")
            if npz[0].file_size > MAX_UNZIPPED_BYTES:
                raise GeometryFormatError(f"{path.name}: world.npz too large to open")
            target = scratch / "opened"
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            prefix = Path(npz[0].filename).parent
            for name in ("world.npz", "meta.json"):
                inner = (prefix / name).as_posix()
                if inner in zf.namelist():
                    (target / name).write_bytes(zf.read(inner))
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
    return load_bundle(target)
