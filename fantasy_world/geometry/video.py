"""RGB mp4 writing and reading through imageio-ffmpeg's bundled ffmpeg (H.264, yuv420p).

yuv420p needs even width and height, so odd sizes are padded by one replicated edge row/column instead
of letting ffmpeg rescale; ``read_video(..., size=(w, h))`` crops the padding back off.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from fantasy_world.errors import GeometryFormatError, InputError

log = logging.getLogger(__name__)


def _ffmpeg():  # noqa: ANN202 - the imageio_ffmpeg module
    """imageio-ffmpeg, imported on first use so that geometry code runs where no video is written."""
    import imageio_ffmpeg

    return imageio_ffmpeg


def even_size(width: int, height: int) -> tuple[int, int]:
    """The (width, height) a frame of this size is stored at in our mp4s."""
    return width + width % 2, height + height % 2


def _pad_even(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def write_video(
    path: str | Path, frames: np.ndarray | Iterable[np.ndarray], fps: float = 16.0, quality: float = 8.0
) -> Path:
    """Encode uint8 [H, W, 3] frames as H.264 yuv420p (quality 0–10 as imageio; the official code uses 8)."""
    if not (np.isfinite(fps) and fps > 0):
        raise InputError(f"fps: expected a positive number, got {fps}")
    path = Path(path)
    writer = None
    count = 0
    size: tuple[int, int] | None = None
    try:
        for frame in frames:
            frame = np.asarray(frame)
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
                raise InputError(
                    f"video frame {count}: expected uint8 [H, W, 3], got {frame.dtype} {list(frame.shape)}"
                )
            if size is None:
                size = (frame.shape[1], frame.shape[0])
                writer = _ffmpeg().write_frames(
                    str(path),
                    even_size(*size),
                    fps=float(fps),
                    codec="libx264",
                    pix_fmt_out="yuv420p",
                    quality=quality,
                    macro_block_size=1,
                    ffmpeg_log_level="error",
                )
                writer.send(None)
            elif (frame.shape[1], frame.shape[0]) != size:
                raise InputError(
                    f"video frame {count}: expected size {size}, got {(frame.shape[1], frame.shape[0])}"
                )
            writer.send(np.ascontiguousarray(_pad_even(frame)).tobytes())
            count += 1
    finally:
        if writer is not None:
            writer.close()
    if count == 0:
        raise InputError(f"{path}: expected at least one video frame")
    log.debug("wrote %d frames to %s", count, path)
    return path


def read_video(path: str | Path, size: tuple[int, int] | None = None) -> tuple[np.ndarray, float]:
    """Decode an mp4 → (uint8 [N, H, W, 3], fps); ``size=(w, h)`` crops encoder padding away."""
    path = Path(path)
    if not path.is_file():
        raise GeometryFormatError(f"{path}: video file not found")
    try:
        reader = _ffmpeg().read_frames(str(path), pix_fmt="rgb24")
        meta = next(reader)
        w, h = meta["size"]
        frames = [np.frombuffer(buf, dtype=np.uint8).reshape(h, w, 3) for buf in reader]
    except (RuntimeError, OSError, ValueError, KeyError, StopIteration) as exc:
        raise GeometryFormatError(f"{path}: cannot decode video ({exc})") from exc
    if not frames:
        raise GeometryFormatError(f"{path}: video has no frames")
    video = np.stack(frames)
    if size is not None:
        video = video[:, : size[1], : size[0]]
    return video, float(meta.get("fps", 0.0))
