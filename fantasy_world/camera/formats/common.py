"""Helpers shared by the format modules: image size choice and number formatting."""

from __future__ import annotations

import logging

import numpy as np

from fantasy_world.camera.checks import check_image_size
from fantasy_world.camera.keyframes import DEFAULT_HEIGHT, DEFAULT_WIDTH
from fantasy_world.errors import CameraFormatError

logger = logging.getLogger(__name__)


def choose_size(
    name: str, width: int | None, height: int | None, file_width: object = None, file_height: object = None
) -> tuple[int, int]:
    """Caller's size wins, then the file's, then the official default 592×336."""
    if (width is None) != (height is None):
        raise CameraFormatError(f"{name}: give both width and height, or neither")
    if width is not None:
        return check_image_size(width, height, name)
    if file_width is not None or file_height is not None:
        return check_image_size(file_width, file_height, f"{name}: image size")
    return DEFAULT_WIDTH, DEFAULT_HEIGHT


def centred_intrinsics(fx: np.ndarray, fy: np.ndarray, width: int, height: int) -> np.ndarray:
    """[N,3,3] with the principal point at the image centre (pixel centres at integer coordinates)."""
    n = len(fx)
    k = np.zeros((n, 3, 3))
    k[:, 0, 0], k[:, 1, 1] = fx, fy
    k[:, 0, 2], k[:, 1, 2] = (width - 1) / 2.0, (height - 1) / 2.0
    k[:, 2, 2] = 1.0
    return k


def warn_if_lossy(traj_k: np.ndarray, width: int, height: int, fmt: str) -> None:
    """Formats that store only a FoV lose non-square pixels and off-centre principal points: say so."""
    fx, fy = traj_k[:, 0, 0], traj_k[:, 1, 1]
    off = np.maximum(np.abs(traj_k[:, 0, 2] - (width - 1) / 2), np.abs(traj_k[:, 1, 2] - (height - 1) / 2))
    if np.any(np.abs(fx - fy) > 1e-6 * fy) or np.any(off > 1e-6):
        logger.warning(
            "%s stores only a vertical field of view: fx != fy or off-centre principal points are not kept",
            fmt,
        )


def num(x: float) -> float | int:
    """JSON number: ints stay ints so integral values read back exactly and look tidy."""
    x = float(x)
    return int(x) if x.is_integer() and abs(x) < 2**53 else x
