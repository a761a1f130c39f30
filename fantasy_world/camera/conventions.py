"""Camera conventions in one place.

Internally every pose is an OpenCV camera-to-world matrix (x right, y down, z forward) and every
intrinsic matrix is a pinhole in pixels. OpenGL / nerfstudio / three.js / viser use x right, y up,
z backward; the two camera frames differ by a flip of the y and z axes, applied on the right of c2w.
"""

from __future__ import annotations

import math

import numpy as np

# Right-multiplying a c2w by this swaps between OpenCV and OpenGL camera frames (it is its own inverse).
CV_GL_FLIP = np.diag([1.0, -1.0, -1.0, 1.0])


def opencv_to_opengl_c2w(c2w: np.ndarray) -> np.ndarray:
    """[..., 4, 4] OpenCV camera-to-world → OpenGL camera-to-world (same world frame)."""
    return np.asarray(c2w, dtype=np.float64) @ CV_GL_FLIP


def opengl_to_opencv_c2w(c2w: np.ndarray) -> np.ndarray:
    """[..., 4, 4] OpenGL camera-to-world → OpenCV camera-to-world (same world frame)."""
    return np.asarray(c2w, dtype=np.float64) @ CV_GL_FLIP


def invert_pose(pose: np.ndarray) -> np.ndarray:
    """Invert rigid [..., 4, 4] transforms exactly (R^T, -R^T t) rather than by a general inverse."""
    pose = np.asarray(pose, dtype=np.float64)
    rot = pose[..., :3, :3]
    trans = pose[..., :3, 3:]
    out = np.zeros_like(pose)
    rot_t = np.swapaxes(rot, -1, -2)
    out[..., :3, :3] = rot_t
    out[..., :3, 3:] = -rot_t @ trans
    out[..., 3, 3] = 1.0
    return out


def fov_to_focal(fov_rad: float | np.ndarray, size_px: float | np.ndarray) -> float | np.ndarray:
    """Field of view (radians) spanning ``size_px`` pixels → focal length in pixels."""
    return 0.5 * np.asarray(size_px, dtype=np.float64) / np.tan(0.5 * np.asarray(fov_rad, dtype=np.float64))


def focal_to_fov(focal_px: float | np.ndarray, size_px: float | np.ndarray) -> float | np.ndarray:
    """Focal length in pixels over ``size_px`` pixels → field of view in radians."""
    return 2.0 * np.arctan(
        0.5 * np.asarray(size_px, dtype=np.float64) / np.asarray(focal_px, dtype=np.float64)
    )


def intrinsics_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """3×3 pinhole matrix in pixels."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)


def default_principal_point(width: int, height: int) -> tuple[float, float]:
    """Principal point of the pixel grid, with pixel centres at integer coordinates (as the official code)."""
    return (width - 1) / 2.0, (height - 1) / 2.0


def intrinsics_from_vfov(vfov_deg: float, width: int, height: int) -> np.ndarray:
    """Square-pixel pinhole for a vertical field of view in degrees."""
    f = float(fov_to_focal(math.radians(vfov_deg), height))
    cx, cy = default_principal_point(width, height)
    return intrinsics_matrix(f, f, cx, cy)
