"""RGB and depth mp4s: decodable with the right frame count and size; stable depth colours."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fantasy_world.errors import GeometryFormatError, InputError
from fantasy_world.geometry.depth_video import colorize_depth, depth_range, write_depth_video
from fantasy_world.geometry.video import even_size, read_video, write_video


def _frames(n: int, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), np.full_like(xx, 128)], -1)
    return np.stack([np.roll(base, i, axis=1) for i in range(n)]).astype(np.uint8)


def test_rgb_video_round_trip(tmp_path: Path) -> None:
    frames = _frames(5, 32, 48)
    path = write_video(tmp_path / "v.mp4", frames, fps=16)
    video, fps = read_video(path)
    assert video.shape == frames.shape and fps == pytest.approx(16.0)
    # Lossy H.264 on a smooth gradient: small mean error.
    assert np.abs(video.astype(float) - frames).mean() < 6.0


def test_odd_size_padded_then_cropped(tmp_path: Path) -> None:
    frames = _frames(3, 31, 45)
    path = write_video(tmp_path / "odd.mp4", iter(frames), fps=8)
    padded, _ = read_video(path)
    assert padded.shape == (3, *even_size(45, 31)[::-1], 3) == (3, 32, 46, 3)
    cropped, fps = read_video(path, size=(45, 31))
    assert cropped.shape == frames.shape and fps == pytest.approx(8.0)


def test_bad_input_rejected(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="uint8"):
        write_video(tmp_path / "x.mp4", np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(InputError, match="at least one"):
        write_video(tmp_path / "x.mp4", np.zeros((0, 8, 8, 3), np.uint8))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(GeometryFormatError, match="bad.mp4"):
        read_video(bad)


def test_depth_range_uses_clip_percentiles() -> None:
    depth = np.linspace(1.0, 100.0, 10_000).reshape(4, 50, 50)
    depth[0, 0, 0] = np.nan
    depth[0, 0, 1] = -1.0
    near, far = depth_range(depth)
    valid = depth[np.isfinite(depth) & (depth > 0)]
    assert near == pytest.approx(np.percentile(valid, 2)) and far == pytest.approx(np.percentile(valid, 98))


def test_colours_stable_across_frames_and_ordered() -> None:
    # Frame 0 sees only near depths, frame 1 only far ones: with a clip-wide range the same depth value
    # keeps its colour whichever frame it appears in.
    depth = np.stack([np.full((4, 4), 2.0), np.full((4, 4), 8.0)])
    depth[0, 0, 0] = 8.0
    rgb = colorize_depth(depth, 1.0, 10.0)
    np.testing.assert_array_equal(rgb[0, 0, 0], rgb[1, 2, 2])
    assert not np.array_equal(rgb[0, 1, 1], rgb[1, 1, 1])
    invalid = colorize_depth(np.array([[np.nan, 0.0, 5.0]]), 1.0, 10.0)
    np.testing.assert_array_equal(invalid[0, :2], 0)
    assert invalid[0, 2].any()
    with pytest.raises(InputError, match="near"):
        colorize_depth(depth, 5.0, 1.0)


def test_depth_video_frame_count_and_size(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    depth = rng.uniform(1, 5, size=(6, 32, 48)).astype(np.float32)
    path, (near, far) = write_depth_video(tmp_path / "d.mp4", depth, fps=16)
    video, _ = read_video(path)
    assert video.shape == (6, 32, 48, 3)
    assert 1.0 <= near < far <= 5.0
