"""Colourised depth video: one perceptual colormap with a single near/far range for the whole clip,
so a surface keeps its colour as the camera moves (per-frame normalisation would make colours flicker)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import colormaps

from fantasy_world.errors import InputError
from fantasy_world.geometry.filtering import valid_depth_mask
from fantasy_world.geometry.video import write_video

_MAX_SAMPLES = 2_000_000


def depth_range(depths: np.ndarray, low: float = 2.0, high: float = 98.0) -> tuple[float, float]:
    """Robust (near, far) from the ``low``/``high`` percentiles of all valid depths of the clip.

    Large clips are sampled with a fixed stride (deterministic) to bound the cost of the percentile.
    """
    depths = np.asarray(depths)
    valid = depths[valid_depth_mask(depths)]
    if valid.size == 0:
        return 0.0, 1.0
    step = max(1, valid.size // _MAX_SAMPLES)
    near, far = np.percentile(valid[::step], [low, high])
    if not far > near:
        far = near + max(abs(near) * 1e-3, 1e-6)
    return float(near), float(far)


def colorize_depth(
    depths: np.ndarray, near: float | None = None, far: float | None = None, cmap: str = "turbo"
) -> np.ndarray:
    """[..., H, W] depth → uint8 [..., H, W, 3]; near is the warm end, far the cool end, invalid is black.

    Values are mapped in inverse depth between near and far, which spends more colours close to the
    camera, where the eye looks for detail.
    """
    depths = np.asarray(depths, dtype=np.float64)
    if near is None or far is None:
        near, far = depth_range(depths)
    if not (0 < near < far):
        raise InputError(f"depth range: expected 0 < near < far, got near={near}, far={far}")
    valid = valid_depth_mask(depths)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = (1.0 / np.where(valid, depths, far) - 1.0 / far) / (1.0 / near - 1.0 / far)
    t = np.clip(np.nan_to_num(inv), 0.0, 1.0)
    lut = (colormaps[cmap](np.linspace(0.0, 1.0, 256))[:, :3] * 255).round().astype(np.uint8)
    rgb = lut[np.round(t * 255).astype(np.int64)]
    rgb[~valid] = 0
    return rgb


def write_depth_video(
    path: str | Path, depths: np.ndarray, fps: float = 16.0, cmap: str = "turbo"
) -> tuple[Path, tuple[float, float]]:
    """Write depth.mp4 with one clip-wide range; returns the path and the (near, far) used."""
    depths = np.asarray(depths)
    if depths.ndim != 3:
        raise InputError(f"depths: expected [N, H, W], got shape {list(depths.shape)}")
    near, far = depth_range(depths)
    if near <= 0:
        near = far * 1e-3
    frames = (colorize_depth(d, near, far, cmap) for d in depths)
    return write_video(path, frames, fps=fps), (near, far)
