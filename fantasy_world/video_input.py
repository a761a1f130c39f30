"""Fitting a user's video to what a model takes: 1+4k frames, sides multiple of 16, pixel cap."""

from __future__ import annotations

import math

import numpy as np

from fantasy_world.errors import InputError
from fantasy_world.validation import SizeLimits, check_frames


def fit_video(
    video: np.ndarray, limits: SizeLimits, frames: int | None = None, source: str = "video"
) -> np.ndarray:
    """Keep the first ``frames`` (or the most 1+4k frames that fit) and resize to the largest allowed size.

    The aspect ratio is kept up to the rounding of both sides down to a multiple of ``limits.multiple``.
    """
    from PIL import Image

    if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
        raise InputError(
            f"{source}: expected uint8 frames [T, H, W, 3], got {video.dtype} {list(video.shape)}"
        )
    total = video.shape[0]
    if frames is None:
        frames = 1 + 4 * ((min(total, limits.max_frames) - 1) // 4)
    check_frames(frames, limits)
    if frames > total:
        raise InputError(f"{source}: has {total} frames; --frames {frames} asks for more")
    h, w = video.shape[1:3]
    m = limits.multiple
    scale = min(1.0, math.sqrt(limits.max_pixels / float(h * w)))
    new_h = max(limits.min_side, int(h * scale) // m * m)
    new_w = max(limits.min_side, int(w * scale) // m * m)
    clip = video[:frames]
    if (new_h, new_w) == (h, w):
        return np.ascontiguousarray(clip)
    out = np.empty((frames, new_h, new_w, 3), dtype=np.uint8)
    for i, frame in enumerate(clip):
        out[i] = np.asarray(Image.fromarray(frame).resize((new_w, new_h), Image.BICUBIC))
    return out
