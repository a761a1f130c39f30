"""RE10K-style folders and world.npz bundles load into clips; broken samples raise errors naming the clip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fantasy_world.camera.conventions import invert_pose
from fantasy_world.data.bundle_dataset import BundleDataset
from fantasy_world.data.re10k_dataset import Re10kStyleDataset, RealClipConfig, load_re10k_clip
from fantasy_world.errors import FantasyWorldError
from fantasy_world.geometry.npz import save_world_npz
from fantasy_world.geometry.video import write_video
from fantasy_world.geometry.world_data import WorldData

T, H, W = 5, 32, 48


def _poses(n: int) -> np.ndarray:
    c2w = np.repeat(np.eye(4)[None], n, axis=0)
    c2w[:, 0, 3] = np.linspace(0.0, 0.4, n) + 1.0
    c2w[:, 2, 3] = 2.0
    return c2w


def _camera_lines(c2w: np.ndarray, fx=40.0, fy=40.0) -> list[str]:
    lines = []
    for i, pose in enumerate(c2w):
        w2c = invert_pose(pose)[:3].reshape(-1)
        vals = [i * 33333, fx / W, fy / H, 0.5, 0.5, 0.0, 0.0, *w2c]
        lines.append(" ".join(f"{v:.9g}" for v in vals))
    return lines


def _frames(n: int = T) -> np.ndarray:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (1, H // 8, W // 8, 3), dtype=np.uint8)
    return np.repeat(np.repeat(np.repeat(base, n, 0), 8, 1), 8, 2)


def _write_clip(folder: Path, frames: int = T, cams: int = T, png: bool = False) -> Path:
    folder.mkdir(parents=True)
    video = _frames(frames)
    if png:
        from PIL import Image

        (folder / "frames").mkdir()
        for i, f in enumerate(video):
            Image.fromarray(f).save(folder / "frames" / f"{i:04d}.png")
    else:
        write_video(folder / "video.mp4", video, fps=10)
    (folder / "cameras.txt").write_text(
        "https://example.invalid/video\n" + "\n".join(_camera_lines(_poses(cams))) + "\n"
    )
    depth = np.full((frames, H, W), 3.0, np.float32)
    depth[:, :4] = 0.0  # no depth in the top rows
    np.save(folder / "depth.npy", depth)
    (folder / "caption.txt").write_text("a grey corridor\n")
    return folder


def test_re10k_folder_loads(tmp_path: Path) -> None:
    _write_clip(tmp_path / "clip_a")
    _write_clip(tmp_path / "clip_b", png=True)
    ds = Re10kStyleDataset(tmp_path)
    assert len(ds) == 2
    for clip in (ds[0], ds[1]):
        assert clip.frames.shape == (T, 3, H, W) and clip.caption == "a grey corridor"
        assert torch.allclose(clip.c2w[0], torch.eye(4), atol=1e-5)  # relative to the first camera
        assert clip.intrinsics[0, 0, 0] == pytest.approx(40.0) and clip.intrinsics[0, 0, 2] == pytest.approx(
            W / 2
        )
        assert not clip.valid[:, :4].any() and clip.valid[:, 4:].all()
        # Points are the unprojected depth in camera 0's frame: z = 3 everywhere valid (pure x translation).
        assert torch.allclose(clip.points[clip.valid][:, 2], torch.tensor(3.0), atol=1e-4)
    png = ds[1].frames_uint8().numpy()
    assert np.array_equal(png, _frames())


def test_resize_scales_intrinsics_and_depth(tmp_path: Path) -> None:
    folder = _write_clip(tmp_path / "clip")
    clip = load_re10k_clip(folder, RealClipConfig(num_frames=5, height=16, width=16))
    assert clip.frames.shape == (5, 3, 16, 16) and clip.depth.shape == (5, 16, 16)
    # Centre crop 32x32 from 48 wide (x0 = 8), then scale by 0.5.
    k = clip.intrinsics[0]
    assert float(k[0, 0]) == pytest.approx(20.0)
    assert float(k[0, 2]) == pytest.approx((W / 2 - 8 + 0.5) * 0.5 - 0.5)
    assert float(k[1, 2]) == pytest.approx((H / 2 + 0.5) * 0.5 - 0.5)
    assert set(np.unique(clip.depth.numpy())) <= {0.0, 3.0}  # nearest: no blended depth


def _expect_error(tmp_path: Path, match: str) -> None:
    with pytest.raises(FantasyWorldError, match=match) as info:
        load_re10k_clip(tmp_path / "bad")
    assert "bad" in str(info.value)  # the message names the clip folder


def test_wrong_camera_count(tmp_path: Path) -> None:
    _write_clip(tmp_path / "bad", cams=T - 1)
    _expect_error(tmp_path, "4 cameras but the video has 5 frames")


def test_nan_in_cameras(tmp_path: Path) -> None:
    folder = _write_clip(tmp_path / "bad")
    lines = (folder / "cameras.txt").read_text().splitlines()
    parts = lines[2].split()
    parts[9] = "nan"
    lines[2] = " ".join(parts)
    (folder / "cameras.txt").write_text("\n".join(lines) + "\n")
    _expect_error(tmp_path, "NaN")


def test_nan_and_bad_shape_in_depth(tmp_path: Path) -> None:
    folder = _write_clip(tmp_path / "bad")
    depth = np.load(folder / "depth.npy")
    depth[1, 5, 5] = np.nan
    np.save(folder / "depth.npy", depth)
    _expect_error(tmp_path, "NaN")
    np.save(folder / "depth.npy", depth[:, :10])
    _expect_error(tmp_path, "shape")


def test_unreadable_video_and_missing_frames(tmp_path: Path) -> None:
    folder = _write_clip(tmp_path / "bad")
    (folder / "video.mp4").write_bytes(b"not a video at all")
    _expect_error(tmp_path, "cannot be decoded")
    (folder / "video.mp4").unlink()
    _expect_error(tmp_path, "no video.mp4")


def test_too_few_frames_for_request(tmp_path: Path) -> None:
    _write_clip(tmp_path / "bad")
    with pytest.raises(FantasyWorldError, match="bad"):
        load_re10k_clip(tmp_path / "bad", RealClipConfig(num_frames=9))


def _world(n: int = T) -> WorldData:
    depth = np.full((n, H, W), 2.0, np.float32)
    conf = np.ones_like(depth)
    conf[:, :, :3] = 0.0
    return WorldData.from_depth(
        _frames(n),
        depth,
        np.repeat(np.array([[[30.0, 0, 23.5], [0, 30.0, 15.5], [0, 0, 1]]]), n, 0),
        _poses(n),
        depth_conf=conf,
    )


def test_bundle_dataset_loads_with_prompt(tmp_path: Path) -> None:
    for name in ("b0", "b1"):
        (tmp_path / name).mkdir()
        save_world_npz(tmp_path / name / "world.npz", _world())
    (tmp_path / "b0" / "meta.json").write_text(json.dumps({"prompt": "a red ball in a courtyard", "seed": 1}))
    ds = BundleDataset(tmp_path)
    assert len(ds) == 2
    clip = ds[0]
    assert clip.caption == "a red ball in a courtyard" and ds[1].caption == ""
    assert clip.frames.shape == (T, 3, H, W)
    assert not clip.valid[:, :, :3].any() and clip.valid[:, :, 3:].all()
    assert torch.allclose(clip.c2w[0], torch.eye(4), atol=1e-6)
    assert torch.allclose(clip.points[clip.valid][:, 2], torch.tensor(2.0), atol=1e-5)
    assert clip.meta["requested_c2w"].shape == (T, 4, 4)
    single = BundleDataset(tmp_path / "b1")
    assert len(single) == 1


def test_broken_bundle_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    np.savez(tmp_path / "broken" / "world.npz", images=np.zeros((2, 4, 4, 3), np.uint8))
    with pytest.raises(FantasyWorldError, match="broken"):
        BundleDataset(tmp_path)[0]
