"""Centre-crop and resize a clip's frames and geometry together, keeping intrinsics consistent.

Pixel centres sit at integer coordinates (project convention). Cropping by (x0, y0) moves the principal
point by (−x0, −y0); scaling by s maps a pixel coordinate u to (u + 0.5)·s − 0.5. Frames are resampled
with a bicubic (antialiased) filter; depth, points and validity with nearest neighbour so no depth value
is ever blended across an edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass
class Fitted:
    """Arrays after :func:`crop_resize` (geometry entries stay None when not given)."""

    frames: np.ndarray  # uint8 [T, h, w, 3]
    intrinsics: np.ndarray  # float64 [T, 3, 3]
    depth: np.ndarray | None = None
    points: np.ndarray | None = None
    valid: np.ndarray | None = None


def _nearest_index(out_size: int, in_size: int) -> np.ndarray:
    src = np.floor((np.arange(out_size) + 0.5) * in_size / out_size).astype(np.int64)
    return np.clip(src, 0, in_size - 1)


def crop_resize(
    frames: np.ndarray,
    intrinsics: np.ndarray,
    height: int | None,
    width: int | None,
    depth: np.ndarray | None = None,
    points: np.ndarray | None = None,
    valid: np.ndarray | None = None,
) -> Fitted:
    """Centre-crop to the target aspect ratio, then resize to ``height`` × ``width`` (None keeps the size)."""
    t, h, w = frames.shape[:3]
    k = np.array(intrinsics, dtype=np.float64, copy=True)
    if height is None or width is None or (height, width) == (h, w):
        return Fitted(frames, k, depth, points, valid)
    # Largest crop with the target aspect ratio, centred.
    if w * height > h * width:
        ch, cw = h, max(1, round(h * width / height))
    else:
        ch, cw = max(1, round(w * height / width)), w
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    k[:, 0, 2] -= x0
    k[:, 1, 2] -= y0
    sx, sy = width / cw, height / ch
    k[:, 0, 0] *= sx
    k[:, 1, 1] *= sy
    k[:, 0, 2] = (k[:, 0, 2] + 0.5) * sx - 0.5
    k[:, 1, 2] = (k[:, 1, 2] + 0.5) * sy - 0.5
    out = np.empty((t, height, width, 3), dtype=np.uint8)
    for i in range(t):
        crop = frames[i, y0 : y0 + ch, x0 : x0 + cw]
        out[i] = np.asarray(Image.fromarray(crop).resize((width, height), Image.BICUBIC))
    rows = y0 + _nearest_index(height, ch)
    cols = x0 + _nearest_index(width, cw)

    def pick(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else np.ascontiguousarray(a[:, rows][:, :, cols])

    return Fitted(out, k, pick(depth), pick(points), pick(valid))
