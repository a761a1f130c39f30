"""Checks shared by every camera reader, writer and path.

Camera files come from users and other tools, so every value is type-checked before numpy sees it:
a string, a bool or a ragged list must become a one-line :class:`CameraFormatError` that says where
the bad value is, never a ``TypeError`` from deep inside numpy.
"""

from __future__ import annotations

import math

import numpy as np

from fantasy_world.errors import CameraFormatError
from fantasy_world.limits import CAMERA_FOV_DEG, MAX_CAMERA_IMAGE_SIDE

ROTATION_TOL = 1e-4
MIN_FOV_DEG, MAX_FOV_DEG = CAMERA_FOV_DEG
MAX_COORDINATE = 1e8  # larger positions or times only come from corrupt files and overflow the maths


def is_number(value: object) -> bool:
    """True for JSON numbers (int or float) but not for bools, which Python counts as ints."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def as_float(value: object, where: str, what: str = "a finite number") -> float:
    """A finite float from a JSON value, or CameraFormatError naming ``where``."""
    if not is_number(value):
        raise CameraFormatError(f"{where}: got {_describe(value)}; expected {what}")
    try:
        out = float(value)
    except OverflowError:
        raise CameraFormatError(f"{where}: number too large; expected {what}") from None
    if not math.isfinite(out):
        raise CameraFormatError(f"{where}: got {out}; expected {what}")
    return out


def as_positive_int(value: object, where: str, upper: int) -> int:
    """A positive integer no larger than ``upper`` (integral floats such as 336.0 are accepted)."""
    if is_number(value) and isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= upper:
        raise CameraFormatError(f"{where}: got {_describe(value)}; expected an integer from 1 to {upper}")
    return value


def as_bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise CameraFormatError(f"{where}: got {_describe(value)}; expected true or false")
    return value


def as_float_array(value: object, shape: tuple[int, ...], where: str) -> np.ndarray:
    """A finite float64 array of exactly ``shape`` from nested JSON lists of numbers."""
    flat: list[float] = []
    _flatten(value, shape, where, flat, "a " + "x".join(str(s) for s in shape) + " list of finite numbers")
    return np.asarray(flat, dtype=np.float64).reshape(shape)


def _flatten(value: object, shape: tuple[int, ...], where: str, out: list[float], expected: str) -> None:
    if not shape:
        out.append(as_float(value, where, expected))
        return
    if not isinstance(value, list) or len(value) != shape[0]:
        got = f"a list of {len(value)}" if isinstance(value, list) else _describe(value)
        raise CameraFormatError(f"{where}: got {got} where {shape[0]} entries belong; expected {expected}")
    for item in value:
        _flatten(item, shape[1:], where, out, expected)


def check_rigid_c2w(mat: np.ndarray, where: str, tol: float = ROTATION_TOL) -> np.ndarray:
    """Reject non-finite, non-rigid or non-homogeneous 4×4 poses; return the matrix as float64."""
    mat = np.asarray(mat, dtype=np.float64)
    if mat.shape != (4, 4):
        raise CameraFormatError(f"{where}: pose has shape {mat.shape}; expected a 4x4 matrix")
    if not np.all(np.isfinite(mat)):
        raise CameraFormatError(f"{where}: pose contains NaN or infinity; expected finite numbers")
    if np.max(np.abs(mat[3] - np.array([0.0, 0.0, 0.0, 1.0]))) > tol:
        raise CameraFormatError(f"{where}: bottom row is {mat[3].tolist()}; expected [0, 0, 0, 1]")
    check_rotation(mat[:3, :3], where, tol)
    if np.max(np.abs(mat[:3, 3])) > MAX_COORDINATE:
        raise CameraFormatError(
            f"{where}: position {mat[:3, 3].tolist()}; expected coordinates within ±{MAX_COORDINATE:g}"
        )
    return mat


def check_rotation(rot: np.ndarray, where: str, tol: float = ROTATION_TOL) -> None:
    """A rotation must be orthonormal with determinant +1 (no scale, shear or mirror)."""
    if np.max(np.abs(rot)) > 1.0 + tol:  # also keeps absurd values from overflowing below
        raise CameraFormatError(
            f"{where}: rotation is not orthonormal (entries beyond ±1); expected a rigid pose"
        )
    err = float(np.max(np.abs(rot.T @ rot - np.eye(3))))
    if err > tol:
        raise CameraFormatError(
            f"{where}: rotation is not orthonormal (error {err:.2g} > {tol:g}); expected a rigid pose"
        )
    det = float(np.linalg.det(rot))
    if abs(det - 1.0) > tol:
        raise CameraFormatError(f"{where}: rotation has determinant {det:.4g}; expected +1 (no mirroring)")


def check_intrinsics(k: np.ndarray, where: str) -> np.ndarray:
    """A pinhole in pixels: finite, positive focal lengths, no skew, last row [0, 0, 1]."""
    k = np.asarray(k, dtype=np.float64)
    if k.shape != (3, 3):
        raise CameraFormatError(f"{where}: intrinsics have shape {k.shape}; expected 3x3")
    if not np.all(np.isfinite(k)):
        raise CameraFormatError(f"{where}: intrinsics contain NaN or infinity; expected finite numbers")
    if k[0, 0] <= 0 or k[1, 1] <= 0:
        raise CameraFormatError(
            f"{where}: focal lengths fx={k[0, 0]:g}, fy={k[1, 1]:g}; expected positive values in pixels"
        )
    if abs(k[0, 1]) > 1e-9 or abs(k[1, 0]) > 1e-9 or np.max(np.abs(k[2] - [0.0, 0.0, 1.0])) > 1e-9:
        raise CameraFormatError(f"{where}: intrinsics {k.tolist()}; expected [[fx,0,cx],[0,fy,cy],[0,0,1]]")
    return k


def check_fov_deg(value: object, where: str) -> float:
    fov = as_float(value, where, f"a vertical field of view in degrees in [{MIN_FOV_DEG}, {MAX_FOV_DEG}]")
    if not MIN_FOV_DEG <= fov <= MAX_FOV_DEG:
        raise CameraFormatError(
            f"{where}: field of view {fov:g} degrees; expected {MIN_FOV_DEG} to {MAX_FOV_DEG}"
        )
    return fov


def check_image_size(width: object, height: object, where: str) -> tuple[int, int]:
    w = as_positive_int(width, f"{where}: width", MAX_CAMERA_IMAGE_SIDE)
    h = as_positive_int(height, f"{where}: height", MAX_CAMERA_IMAGE_SIDE)
    return w, h


def _describe(value: object) -> str:
    if isinstance(value, (list, dict)):
        return f"a {type(value).__name__} of {len(value)}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
