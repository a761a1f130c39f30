"""Real clips in a RealEstate10K-style folder layout (see ``fantasy_world/data/README.md``).

``root/<clip>/`` holds ``video.mp4`` (or ``frames/*.png`` / ``*.jpg``), ``cameras.txt`` (19-value
RealEstate10K lines, one per frame) and optionally ``depth.npy`` [T, H, W], ``points.npy`` [T, H, W, 3]
and ``caption.txt``. Every problem is reported as a project error naming the clip folder and what was
expected, so one broken sample in a large folder is easy to find.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from fantasy_world.camera.conventions import invert_pose
from fantasy_world.camera.formats.re10k import from_text
from fantasy_world.camera.formats.textio import read_text
from fantasy_world.data.clip import Clip
from fantasy_world.data.resize import crop_resize
from fantasy_world.errors import CameraFormatError, GeometryFormatError, InputError
from fantasy_world.geometry.unproject import depth_to_world_points
from fantasy_world.geometry.video import read_video

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass
class RealClipConfig:
    """How real clips are cut and sized. ``num_frames`` (1 + 4k) takes the first frames after ``stride``;
    ``height``/``width`` centre-crop and resize (None keeps the stored size). ``relative_to_first``
    re-expresses poses and points in camera 0's frame, like synthetic clips."""

    num_frames: int | None = None
    height: int | None = None
    width: int | None = None
    stride: int = 1
    relative_to_first: bool = True

    def __post_init__(self) -> None:
        n = self.num_frames
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1 or (n - 1) % 4):
            raise InputError(f"num_frames={n!r}: expected 1 + 4k frames (1, 5, 9, ...)")
        if (self.height is None) != (self.width is None):
            raise InputError("height and width: give both or neither")
        if not isinstance(self.stride, int) or self.stride < 1:
            raise InputError(f"stride={self.stride!r}: expected a positive integer")


def _read_frames(folder: Path) -> np.ndarray:
    video = folder / "video.mp4"
    if video.is_file():
        try:
            frames, _ = read_video(video)
        except GeometryFormatError:
            # The decoder's own message spans many lines of ffmpeg output; one line is what users need.
            raise GeometryFormatError(
                f"{folder}: video.mp4 cannot be decoded; expected a readable mp4 video"
            ) from None
        return frames
    frame_dir = folder / "frames"
    files = (
        sorted(p for p in frame_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if frame_dir.is_dir()
        else []
    )
    if not files:
        raise GeometryFormatError(f"{folder}: no video.mp4 and no frames/*.png; expected one of them")
    out = []
    for p in files:
        try:
            with Image.open(p) as im:
                out.append(np.asarray(im.convert("RGB")))
        except (OSError, UnidentifiedImageError) as exc:
            raise GeometryFormatError(f"{folder}: frame {p.name} cannot be read ({exc})") from None
        if out[-1].shape != out[0].shape:
            raise GeometryFormatError(
                f"{folder}: frame {p.name} is {out[-1].shape[1]}x{out[-1].shape[0]}; "
                f"expected {out[0].shape[1]}x{out[0].shape[0]} like the first frame"
            )
    return np.stack(out)


def _load_array(path: Path, shape: tuple[int, ...], folder: Path) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise GeometryFormatError(f"{folder}: {path.name} cannot be read as a .npy array ({exc})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiu":
        raise GeometryFormatError(
            f"{folder}: {path.name} has dtype {getattr(arr, 'dtype', '?')}; expected floats"
        )
    if arr.shape != shape:
        raise GeometryFormatError(
            f"{folder}: {path.name} has shape {list(arr.shape)}; expected {list(shape)}"
        )
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise GeometryFormatError(f"{folder}: {path.name} contains NaN or infinity; expected finite values")
    return arr


def load_re10k_clip(
    folder: str | Path, cfg: RealClipConfig | None = None, device: torch.device | str = "cpu"
) -> Clip:
    """Load and validate one clip folder into a :class:`Clip`."""
    cfg = cfg or RealClipConfig()
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: clip folder not found")
    frames = _read_frames(folder)
    t, h, w = frames.shape[:3]
    cam_path = folder / "cameras.txt"
    if not cam_path.is_file():
        raise CameraFormatError(f"{folder}: cameras.txt missing; expected one RealEstate10K line per frame")
    traj = from_text(read_text(cam_path), str(cam_path), width=w, height=h)
    if len(traj) != t:
        raise CameraFormatError(
            f"{folder}: cameras.txt has {len(traj)} cameras but the video has {t} frames; expected one per frame"
        )
    c2w, k = traj.c2w, traj.intrinsics
    depth = _load_array(folder / "depth.npy", (t, h, w), folder) if (folder / "depth.npy").is_file() else None
    points = (
        _load_array(folder / "points.npy", (t, h, w, 3), folder)
        if (folder / "points.npy").is_file()
        else None
    )
    if points is not None and depth is None:
        raise GeometryFormatError(f"{folder}: points.npy without depth.npy; expected both or depth alone")
    caption = (
        (folder / "caption.txt").read_text(encoding="utf-8").strip()
        if (folder / "caption.txt").is_file()
        else ""
    )

    sel = np.arange(0, t, cfg.stride)
    if cfg.num_frames is not None:
        if len(sel) < cfg.num_frames:
            raise InputError(
                f"{folder}: {len(sel)} frames at stride {cfg.stride}; expected at least {cfg.num_frames}"
            )
        sel = sel[: cfg.num_frames]
    frames, c2w, k = frames[sel], c2w[sel], k[sel]
    valid = None
    if depth is not None:
        depth = depth[sel]
        valid = depth > 0
        points = (
            points[sel] if points is not None else depth_to_world_points(depth, k, c2w).astype(np.float32)
        )
    if cfg.relative_to_first:
        first_inv = invert_pose(c2w[0])
        c2w = first_inv[None] @ c2w
        if points is not None:
            points = (points @ first_inv[:3, :3].T.astype(np.float32)) + first_inv[:3, 3].astype(np.float32)
    fit = crop_resize(frames, k, cfg.height, cfg.width, depth, points, valid)
    return Clip.from_numpy(
        fit.frames, fit.intrinsics, c2w, caption, fit.depth, fit.points, fit.valid, str(folder), device
    )


class Re10kStyleDataset(Dataset):
    """Every sub-folder of ``root`` with a ``cameras.txt`` is one clip (sorted by name)."""

    def __init__(
        self, root: str | Path, config: RealClipConfig | None = None, device: torch.device | str = "cpu"
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"{self.root}: dataset folder not found")
        self.folders = sorted(p for p in self.root.iterdir() if (p / "cameras.txt").is_file())
        if not self.folders:
            raise InputError(
                f"{self.root}: no clip folders with cameras.txt; expected root/<clip>/cameras.txt"
            )
        self.config = config or RealClipConfig()
        self.device = device

    def __len__(self) -> int:
        return len(self.folders)

    def __getitem__(self, index: int) -> Clip:
        return load_re10k_clip(self.folders[index], self.config, self.device)
