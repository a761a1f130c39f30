"""COLMAP text models (cameras.txt, images.txt, points3D.txt): writer and strict reader.

COLMAP stores world-to-camera poses as a unit quaternion (qw qx qy qz) plus translation, and puts pixel
centres at +0.5 (the top-left pixel spans [0, 1]); we put them at integers, so the principal point is
shifted by +0.5 on export and back on import. Points carry an empty track: they come from depth, not
from triangulated features, which is all 3DGS-style trainers need to initialise from.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from fantasy_world.camera.conventions import invert_pose
from fantasy_world.errors import GeometryFormatError, InputError
from fantasy_world.geometry.pointcloud import PointCloud

log = logging.getLogger(__name__)

# Number of parameters per COLMAP camera model (src/colmap/sensor/models.h).
CAMERA_MODEL_PARAMS = {
    "SIMPLE_PINHOLE": 3, "PINHOLE": 4, "SIMPLE_RADIAL": 4, "RADIAL": 5, "OPENCV": 8,
    "OPENCV_FISHEYE": 8, "FULL_OPENCV": 12, "FOV": 5, "SIMPLE_RADIAL_FISHEYE": 4,
    "RADIAL_FISHEYE": 5, "THIN_PRISM_FISHEYE": 12,
}  # fmt: skip
PIXEL_CENTER_OFFSET = 0.5
_ROWS_PER_WRITE = 20_000


@dataclass
class ColmapCamera:
    camera_id: int
    model: str
    width: int
    height: int
    params: np.ndarray


@dataclass
class ColmapImage:
    image_id: int
    qvec: np.ndarray  # (qw, qx, qy, qz) of the world-to-camera rotation
    tvec: np.ndarray  # world-to-camera translation
    camera_id: int
    name: str
    xys: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    point3d_ids: np.ndarray = field(default_factory=lambda: np.zeros((0,), dtype=np.int64))

    def w2c(self) -> np.ndarray:
        out = np.eye(4)
        out[:3, :3] = qvec_to_rotmat(self.qvec)
        out[:3, 3] = self.tvec
        return out


@dataclass
class ColmapPoints:
    ids: np.ndarray  # int64 [M]
    xyz: np.ndarray  # float64 [M, 3]
    rgb: np.ndarray  # uint8 [M, 3]
    error: np.ndarray  # float64 [M]
    tracks: list[np.ndarray]  # per point int64 [T, 2] of (image_id, point2d_idx)


@dataclass
class ColmapModel:
    cameras: dict[int, ColmapCamera]
    images: dict[int, ColmapImage]
    points: ColmapPoints


def rotmat_to_qvec(rot: np.ndarray) -> np.ndarray:
    """3×3 rotation → unit quaternion (qw, qx, qy, qz) with qw ≥ 0 (COLMAP's order)."""
    x, y, z, w = Rotation.from_matrix(np.asarray(rot, dtype=np.float64)).as_quat()
    q = np.array([w, x, y, z])
    return -q if q[0] < 0 else q


def qvec_to_rotmat(qvec: np.ndarray) -> np.ndarray:
    """Quaternion (qw, qx, qy, qz), normalised first → 3×3 rotation."""
    w, x, y, z = np.asarray(qvec, dtype=np.float64)
    return Rotation.from_quat([x, y, z, w]).as_matrix()


def _num(x: float) -> str:
    return repr(float(x))


def write_colmap_text(
    sparse_dir: str | Path,
    intrinsics: np.ndarray,
    c2w: np.ndarray,
    width: int,
    height: int,
    names: list[str],
    cloud: PointCloud,
    *,
    shared_camera: bool | None = None,
) -> dict[str, Path]:
    """Write cameras.txt / images.txt / points3D.txt into ``sparse_dir`` (e.g. ``colmap/sparse/0``).

    One PINHOLE camera per frame, or a single shared one (``shared_camera``; default: shared when all
    intrinsics are equal). ``names`` are image file names relative to COLMAP's image folder.
    """
    intrinsics = np.asarray(intrinsics, dtype=np.float64)
    c2w = np.asarray(c2w, dtype=np.float64)
    n = len(names)
    if intrinsics.shape != (n, 3, 3) or c2w.shape != (n, 4, 4):
        raise InputError(f"colmap export: expected K [{n}, 3, 3] and c2w [{n}, 4, 4] for {n} image names")
    if any(not name or any(ch.isspace() for ch in name) for name in names):
        raise InputError("colmap export: image names must be non-empty and contain no whitespace")
    if shared_camera is None:
        shared_camera = bool(np.allclose(intrinsics, intrinsics[:1], rtol=0, atol=1e-9))
    sparse_dir = Path(sparse_dir)
    sparse_dir.mkdir(parents=True, exist_ok=True)

    cams = [intrinsics[0]] if shared_camera else list(intrinsics)
    lines = [
        "# Camera list with one line of data per camera:",
        "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]",
        f"# Number of cameras: {len(cams)}",
    ]
    for i, k in enumerate(cams, start=1):
        params = (k[0, 0], k[1, 1], k[0, 2] + PIXEL_CENTER_OFFSET, k[1, 2] + PIXEL_CENTER_OFFSET)
        lines.append(f"{i} PINHOLE {int(width)} {int(height)} " + " ".join(_num(p) for p in params))
    paths = {"cameras": sparse_dir / "cameras.txt"}
    paths["cameras"].write_text("\n".join(lines) + "\n")

    w2c = invert_pose(c2w)
    lines = [
        "# Image list with two lines of data per image:",
        "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
        "#   POINTS2D[] as (X, Y, POINT3D_ID)",
        f"# Number of images: {n}, mean observations per image: 0",
    ]
    for i in range(n):
        q = rotmat_to_qvec(w2c[i, :3, :3])
        vals = " ".join(_num(v) for v in (*q, *w2c[i, :3, 3]))
        lines.append(f"{i + 1} {vals} {1 if shared_camera else i + 1} {names[i]}")
        lines.append("")  # no 2-D observations: an empty POINTS2D line
    paths["images"] = sparse_dir / "images.txt"
    paths["images"].write_text("\n".join(lines) + "\n")

    lines = [
        "# 3D point list with one line of data per point:",
        "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)",
        f"# Number of points: {len(cloud)}, mean track length: 0",
    ]
    paths["points3D"] = sparse_dir / "points3D.txt"
    with open(paths["points3D"], "w") as f:
        f.write("\n".join(lines) + "\n")
        # 9 significant digits round-trip float32 exactly; ERROR 0 and an empty track end each line.
        table = np.column_stack([np.arange(1, len(cloud) + 1), cloud.points, cloud.colors]).astype(np.float64)
        row = "%d %.9g %.9g %.9g %d %d %d 0\n"
        for start in range(0, len(table), _ROWS_PER_WRITE):
            chunk = table[start : start + _ROWS_PER_WRITE]
            f.write((row * len(chunk)) % tuple(chunk.ravel().tolist()))  # one C-level format per chunk
    log.debug("wrote COLMAP model (%d images, %d points) to %s", n, len(cloud), sparse_dir)
    return paths


def _read_text(path: Path) -> list[str]:
    try:
        return path.read_bytes().decode("utf-8").split("\n")
    except OSError as exc:
        raise GeometryFormatError(f"{path}: cannot read COLMAP file ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise GeometryFormatError(f"{path}: expected UTF-8 text") from exc


def _finite(values: list[str], where: str) -> np.ndarray:
    try:
        arr = np.array([float(v) for v in values], dtype=np.float64)
    except ValueError as exc:
        raise GeometryFormatError(f"{where}: expected numbers, got {' '.join(values)[:60]!r}") from exc
    if not np.all(np.isfinite(arr)):
        raise GeometryFormatError(f"{where}: expected finite numbers")
    return arr


def _int(value: str, where: str, minimum: int | None = None) -> int:
    try:
        out = int(value)
    except ValueError as exc:
        raise GeometryFormatError(f"{where}: expected an integer, got {value[:30]!r}") from exc
    if minimum is not None and out < minimum:
        raise GeometryFormatError(f"{where}: expected an integer ≥ {minimum}, got {out}")
    return out


def read_cameras_text(path: str | Path) -> dict[int, ColmapCamera]:
    """Parse cameras.txt; checks the model name and its parameter count."""
    path = Path(path)
    cameras: dict[int, ColmapCamera] = {}
    for ln, line in enumerate(_read_text(path), start=1):
        tok = line.split()
        if not tok or tok[0].startswith("#"):
            continue
        where = f"{path}:{ln}"
        if len(tok) < 4 or tok[1] not in CAMERA_MODEL_PARAMS:
            raise GeometryFormatError(
                f"{where}: expected 'CAMERA_ID MODEL WIDTH HEIGHT PARAMS...' with a known model"
            )
        expected = CAMERA_MODEL_PARAMS[tok[1]]
        if len(tok) != 4 + expected:
            raise GeometryFormatError(
                f"{where}: model {tok[1]} expects {expected} params, got {len(tok) - 4}"
            )
        cam_id = _int(tok[0], where)
        if cam_id in cameras:
            raise GeometryFormatError(f"{where}: duplicate CAMERA_ID {cam_id}")
        cameras[cam_id] = ColmapCamera(
            cam_id, tok[1], _int(tok[2], where, 1), _int(tok[3], where, 1), _finite(tok[4:], where)
        )
    return cameras


def read_images_text(path: str | Path) -> dict[int, ColmapImage]:
    """Parse images.txt: an image line followed by its POINTS2D line (which may be empty)."""
    path = Path(path)
    lines = _read_text(path)
    images: dict[int, ColmapImage] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        tok = line.split()
        if not tok or tok[0].startswith("#"):
            continue
        where = f"{path}:{i}"
        if len(tok) != 10:
            raise GeometryFormatError(f"{where}: expected 'IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME'")
        image_id = _int(tok[0], where)
        if image_id in images:
            raise GeometryFormatError(f"{where}: duplicate IMAGE_ID {image_id}")
        nums = _finite(tok[1:8], where)
        norm = float(np.linalg.norm(nums[:4]))
        if not abs(norm - 1.0) < 1e-3:
            raise GeometryFormatError(f"{where}: expected a unit quaternion, got norm {norm:.6g}")
        obs = lines[i].split() if i < len(lines) else []
        i += 1
        if len(obs) % 3:
            raise GeometryFormatError(f"{path}:{i}: expected POINTS2D as triples (X, Y, POINT3D_ID)")
        table = np.array(obs, dtype=object).reshape(-1, 3)
        xys = _finite(list(table[:, :2].reshape(-1)), f"{path}:{i}").reshape(-1, 2)
        ids = np.array([_int(v, f"{path}:{i}", -1) for v in table[:, 2]], dtype=np.int64)
        images[image_id] = ColmapImage(
            image_id, nums[:4] / norm, nums[4:7], _int(tok[8], where), tok[9], xys, ids
        )
    return images


def read_points3d_text(path: str | Path) -> ColmapPoints:
    """Parse points3D.txt; tracks are (IMAGE_ID, POINT2D_IDX) pairs and may be empty."""
    path = Path(path)
    ids, xyz, rgb, err, tracks = [], [], [], [], []
    seen: set[int] = set()
    for ln, line in enumerate(_read_text(path), start=1):
        tok = line.split()
        if not tok or tok[0].startswith("#"):
            continue
        where = f"{path}:{ln}"
        if len(tok) < 8 or (len(tok) - 8) % 2:
            raise GeometryFormatError(
                f"{where}: expected 'POINT3D_ID X Y Z R G B ERROR (IMAGE_ID POINT2D_IDX)*'"
            )
        pid = _int(tok[0], where)
        if pid in seen:
            raise GeometryFormatError(f"{where}: duplicate POINT3D_ID {pid}")
        seen.add(pid)
        colour = [_int(t, where, 0) for t in tok[4:7]]
        if max(colour) > 255:
            raise GeometryFormatError(f"{where}: expected R G B in 0..255")
        ids.append(pid)
        xyz.append(_finite(tok[1:4], where))
        rgb.append(colour)
        err.append(_finite(tok[7:8], where)[0])
        tracks.append(np.array([_int(t, where) for t in tok[8:]], dtype=np.int64).reshape(-1, 2))
    return ColmapPoints(
        ids=np.array(ids, dtype=np.int64),
        xyz=np.array(xyz, dtype=np.float64).reshape(-1, 3),
        rgb=np.array(rgb, dtype=np.uint8).reshape(-1, 3),
        error=np.array(err, dtype=np.float64),
        tracks=tracks,
    )


def read_colmap_text(sparse_dir: str | Path) -> ColmapModel:
    """Read a text model folder and check that every image refers to a defined camera."""
    sparse_dir = Path(sparse_dir)
    cameras = read_cameras_text(sparse_dir / "cameras.txt")
    images = read_images_text(sparse_dir / "images.txt")
    for img in images.values():
        if img.camera_id not in cameras:
            raise GeometryFormatError(
                f"{sparse_dir / 'images.txt'}: image {img.name!r} refers to undefined CAMERA_ID {img.camera_id}"
            )
    return ColmapModel(cameras, images, read_points3d_text(sparse_dir / "points3D.txt"))


def _pinhole(cam: ColmapCamera) -> tuple[float, float, float, float]:
    p = cam.params
    if cam.model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL", "SIMPLE_RADIAL_FISHEYE", "RADIAL_FISHEYE"):
        fx = fy = p[0]
        cx, cy = p[1], p[2]
    else:
        fx, fy, cx, cy = p[:4]
    if cam.model not in ("SIMPLE_PINHOLE", "PINHOLE"):
        log.warning("COLMAP camera %d is %s; its distortion is ignored", cam.camera_id, cam.model)
    if fx <= 0 or fy <= 0:
        raise GeometryFormatError(f"cameras.txt: camera {cam.camera_id} has a non-positive focal length")
    return fx, fy, cx, cy


def colmap_to_arrays(model: ColmapModel) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Images in IMAGE_ID order → (names, K [N, 3, 3] in our pixel convention, OpenCV c2w [N, 4, 4],
    sizes [N, 2] as (width, height))."""
    ids = sorted(model.images)
    names, ks, c2ws, sizes = [], [], [], []
    for image_id in ids:
        img = model.images[image_id]
        cam = model.cameras[img.camera_id]
        fx, fy, cx, cy = _pinhole(cam)
        k = np.array([[fx, 0, cx - PIXEL_CENTER_OFFSET], [0, fy, cy - PIXEL_CENTER_OFFSET], [0, 0, 1.0]])
        names.append(img.name)
        ks.append(k)
        c2ws.append(invert_pose(img.w2c()))
        sizes.append((cam.width, cam.height))
    return (
        names,
        np.array(ks, dtype=np.float64).reshape(-1, 3, 3),
        np.array(c2ws, dtype=np.float64).reshape(-1, 4, 4),
        np.array(sizes, dtype=np.int64).reshape(-1, 2),
    )
