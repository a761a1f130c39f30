"""Per-frame PNG files shared by the nerfstudio and COLMAP layouts of a bundle."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from fantasy_world.errors import InputError

log = logging.getLogger(__name__)


def frame_names(num_frames: int, ext: str = "png") -> list[str]:
    """``frame_00000.png`` …: zero-padded so lexical order is frame order (COLMAP and nerfstudio sort)."""
    return [f"frame_{i:05d}.{ext}" for i in range(num_frames)]


def write_frames(images: np.ndarray, folder: str | Path, names: list[str] | None = None) -> list[Path]:
    """Write uint8 [N, H, W, 3] frames as lossless PNGs into ``folder``."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise InputError(f"images: expected uint8 [N, H, W, 3], got {images.dtype} {list(images.shape)}")
    names = frame_names(len(images)) if names is None else names
    if len(names) != len(images):
        raise InputError(f"names: expected {len(images)} file names, got {len(names)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for img, name in zip(images, names):
        path = folder / name
        Image.fromarray(img).save(path)
        out.append(path)
    return out


def link_or_copy(files: list[Path], folder: str | Path) -> list[Path]:
    """Place ``files`` in ``folder`` as hard links (no extra disk space), copying where links fail."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for src in files:
        dst = folder / src.name
        if dst.exists():
            dst.unlink()
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
        out.append(dst)
    return out
