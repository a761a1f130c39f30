"""RealEstate10K / CameraCtrl camera text: one camera per line, 19 numbers.

``timestamp fx fy cx cy k1 k2 r00 r01 r02 t0 r10 r11 r12 t1 r20 r21 r22 t2`` with fx, cx divided by
the image width and fy, cy by the height, and a row-major 3×4 OpenCV world-to-camera matrix. Raw
RE10K files start with a video URL line; we accept that or a ``#`` comment as the first line, and write
``# fantasyworld re10k width=W height=H fps=F`` so our own files remember the image size. Normalised
intrinsics are scaled by the size directly (cx_px = cx · W), with no half-pixel shift.
"""

from __future__ import annotations

import logging
import math
import re

import numpy as np

from fantasy_world.camera.checks import check_rigid_c2w
from fantasy_world.camera.conventions import invert_pose
from fantasy_world.camera.formats.common import choose_size
from fantasy_world.camera.trajectory import CameraTrajectory
from fantasy_world.errors import CameraFormatError
from fantasy_world.limits import MAX_CAMERA_FRAMES

logger = logging.getLogger(__name__)

NAME = "re10k"
VALUES_PER_LINE = 19
HEADER_TAG = "# fantasyworld re10k"
_HEADER_KEYS = re.compile(r"\b(width|height|fps)=(\S+)")


def _is_number_token(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True


def _header_values(line: str, where: str) -> dict[str, float]:
    """Image size and fps from our own header line; other first lines (URLs, comments) carry nothing."""
    if not line.startswith(HEADER_TAG):
        return {}
    out = {}
    for key, value in _HEADER_KEYS.findall(line):
        try:
            out[key] = float(value)
        except ValueError:
            raise CameraFormatError(f"{where}: header {key}={value[:20]!r}; expected a number") from None
        if not math.isfinite(out[key]):
            raise CameraFormatError(f"{where}: header {key}={value[:20]!r}; expected a finite number")
    return out


def from_text(text: str, name: str, width: int | None = None, height: int | None = None) -> CameraTrajectory:
    rows: list[np.ndarray] = []
    header: dict[str, float] = {}
    first_content = True
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        tokens = line.split()
        if line.startswith("#") or (first_content and not _is_number_token(tokens[0])):
            if first_content:
                header = _header_values(line, f"camera file '{name}': line {lineno}")
            first_content = False
            continue
        first_content = False
        where = f"camera file '{name}': line {lineno}"
        if len(tokens) != VALUES_PER_LINE:
            raise CameraFormatError(
                f"{where}: {len(tokens)} values; expected {VALUES_PER_LINE} "
                "(timestamp fx fy cx cy k1 k2 and a row-major 3x4 world-to-camera matrix)"
            )
        try:
            vals = np.array([float(t) for t in tokens], dtype=np.float64)
        except ValueError:
            bad = next(t for t in tokens if not _is_number_token(t))
            raise CameraFormatError(
                f"{where}: {bad[:30]!r} is not a number; expected {VALUES_PER_LINE} numbers"
            ) from None
        if not np.all(np.isfinite(vals)):
            raise CameraFormatError(f"{where}: contains NaN or infinity; expected finite numbers")
        if vals[1] <= 0 or vals[2] <= 0:
            raise CameraFormatError(
                f"{where}: fx={vals[1]:g}, fy={vals[2]:g}; expected positive focal lengths divided by width/height"
            )
        if max(vals[1], vals[2]) > 1e4:
            raise CameraFormatError(
                f"{where}: fx={vals[1]:g}, fy={vals[2]:g}; expected focal lengths divided by width/height (below 1e4)"
            )
        if max(abs(vals[3]), abs(vals[4])) > 10.0:  # a principal point 10 images away means pixel units
            raise CameraFormatError(
                f"{where}: fx fy cx cy = {' '.join(f'{v:g}' for v in vals[1:5])} look like pixels; "
                "expected values divided by the image width (fx, cx) and height (fy, cy)"
            )
        check_rigid_c2w(
            np.vstack([vals[7:].reshape(3, 4), [0.0, 0.0, 0.0, 1.0]]), where
        )  # same checks for w2c
        rows.append(vals)
        if len(rows) > MAX_CAMERA_FRAMES:
            raise CameraFormatError(
                f"camera file '{name}': more than {MAX_CAMERA_FRAMES} cameras; expected at most that"
            )
    if not rows:
        raise CameraFormatError(
            f"camera file '{name}': no camera lines; expected lines of {VALUES_PER_LINE} numbers"
        )
    data = np.stack(rows)
    file_w, file_h = header.get("width"), header.get("height")
    w, h = choose_size(name, width, height, file_w, file_h)
    if np.any(data[:, 5:7] != 0):
        logger.warning("%s: lens distortion k1/k2 is ignored (pinhole cameras only)", name)
    w2c = np.tile(np.eye(4), (len(data), 1, 1))
    w2c[:, :3, :] = data[:, 7:].reshape(-1, 3, 4)
    k = np.zeros((len(data), 3, 3))
    k[:, 0, 0], k[:, 1, 1] = data[:, 1] * w, data[:, 2] * h
    k[:, 0, 2], k[:, 1, 2] = data[:, 3] * w, data[:, 4] * h
    k[:, 2, 2] = 1.0
    fps = header.get("fps")
    if fps is not None and not 0 < fps <= 1000:
        raise CameraFormatError(
            f"camera file '{name}': header fps={fps:g}; expected a frame rate in (0, 1000]"
        )
    return CameraTrajectory(
        invert_pose(w2c), k, w, h, fps=fps, timestamps=data[:, 0], source=f"camera file '{name}'"
    )


def _fmt(x: float) -> str:
    x = float(x)
    return str(int(x)) if x.is_integer() and abs(x) < 2**53 else repr(x)


def to_text(traj: CameraTrajectory) -> str:
    w, h = traj.width, traj.height
    if traj.timestamps is not None:
        stamps = traj.timestamps
    elif traj.fps:
        # RE10K timestamps are microseconds.
        stamps = np.array([math.floor(i * 1e6 / traj.fps + 0.5) for i in range(len(traj))], dtype=np.float64)
    else:
        stamps = np.arange(len(traj), dtype=np.float64)
    header = f"{HEADER_TAG} width={w} height={h}"
    if traj.fps:
        header += f" fps={float(traj.fps)!r}"
    lines = [header]
    w2c = traj.w2c
    for i in range(len(traj)):
        k = traj.intrinsics[i]
        vals = [
            stamps[i],
            k[0, 0] / w,
            k[1, 1] / h,
            k[0, 2] / w,
            k[1, 2] / h,
            0.0,
            0.0,
            *w2c[i, :3, :].reshape(-1),
        ]
        lines.append(" ".join(_fmt(v) for v in vals))
    return "\n".join(lines) + "\n"
