"""Synthetic clips: determinism by seed, dataset indexing and resuming, split guard, camera placement."""

from __future__ import annotations

from itertools import islice

import numpy as np
import pytest
import torch

from fantasy_world.data.camera_sampling import CameraConfig, camera_positions_ok, sample_camera_path
from fantasy_world.data.scene_sampling import sample_scene
from fantasy_world.data.splits import EVAL_SEEDS, TRAIN_SEEDS, SeedRange, check_seed
from fantasy_world.data.synthetic_dataset import SyntheticConfig, SyntheticWorldDataset, make_clip
from fantasy_world.errors import InputError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


SMALL = SyntheticConfig(num_frames=5, height=24, width=32)
_TENSORS = ("frames", "depth", "points", "valid", "intrinsics", "c2w", "object_ids")


def test_same_seed_gives_identical_clip() -> None:
    a, b = make_clip(5, SMALL), make_clip(5, SMALL)
    for name in _TENSORS:
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert a.caption == b.caption and a.scene.describe() == b.scene.describe()


def test_clip_layout() -> None:
    c = make_clip(2, SMALL)
    assert c.frames.shape == (5, 3, 24, 32) and c.frames.dtype == torch.float32
    assert c.depth.shape == (5, 24, 32) and c.points.shape == (5, 24, 32, 3)
    assert c.valid.dtype == torch.bool and c.object_ids.dtype == torch.int16
    assert c.intrinsics.shape == (5, 3, 3) and c.c2w.shape == (5, 4, 4)
    assert 0.0 <= float(c.frames.min()) and float(c.frames.max()) <= 1.0
    assert c.frames_uint8().shape == (5, 24, 32, 3)
    assert int(c.object_ids.max()) <= len(c.scene.objects)


def test_different_seeds_give_different_worlds() -> None:
    descriptions = {repr(sample_scene(np.random.default_rng(s), s).describe()) for s in range(12)}
    assert len(descriptions) == 12
    a, b = make_clip(0, SMALL), make_clip(1, SMALL)
    assert not torch.equal(a.frames, b.frames)


def test_first_camera_sees_objects_and_paths_stay_in_free_space() -> None:
    cfg = CameraConfig()
    seen = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        scene = sample_scene(rng, seed)
        cam = sample_camera_path(rng, scene, 9, 64, 48, cfg)
        np.testing.assert_allclose(cam.trajectory.c2w[0], np.eye(4), atol=1e-9)
        positions = (scene.anchor[None] @ cam.trajectory.c2w)[:, :3, 3]
        assert camera_positions_ok(scene, positions, cfg)
        # Every object centre is in front of camera 0 and most project inside the first image.
        for k in range(len(scene.objects)):
            p = scene.object_world_position(k)
            assert p[2] > 0
            u = cam.trajectory.intrinsics[0] @ (p / p[2])
            seen += int(0 <= u[0] < 64 and 0 <= u[1] < 48)
    total = sum(len(sample_scene(np.random.default_rng(s), s).objects) for s in range(20))
    assert seen >= 0.9 * total


def test_camera_kinds_vary() -> None:
    kinds = {
        make_clip(s, SyntheticConfig(num_frames=1, height=8, width=8)).meta["camera_kind"] for s in range(30)
    }
    assert len(kinds) >= 6


def test_dataset_indexing_and_resume() -> None:
    ds = SyntheticWorldDataset("train", num_frames=5, height=16, width=24)
    assert len(ds) == len(TRAIN_SEEDS)
    first = list(islice(iter(ds), 3))
    assert [c.index for c in first] == [0, 1, 2] and [c.seed for c in first] == [0, 1, 2]
    ds.load_state_dict({"next_index": 1})
    resumed = next(iter(ds))
    assert resumed.index == 1 and torch.equal(resumed.frames, first[1].frames)
    assert ds.state_dict() == {"next_index": 1}
    ranks = [SyntheticWorldDataset("train", 5, 16, 24, rank=r, world_size=2) for r in range(2)]
    assert [c.index for c in islice(iter(ranks[1]), 2)] == [1, 3]


def test_split_guard() -> None:
    with pytest.raises(InputError, match="evaluation"):
        SyntheticWorldDataset(SeedRange(EVAL_SEEDS.start - 5, EVAL_SEEDS.start + 5), split="train")
    with pytest.raises(InputError):
        SyntheticWorldDataset(SeedRange(EVAL_SEEDS.start, EVAL_SEEDS.start + 10), split="train")
    with pytest.raises(InputError, match="evaluation"):
        check_seed(EVAL_SEEDS.start + 3, "train")
    assert not TRAIN_SEEDS.overlaps(EVAL_SEEDS)
    ev = SyntheticWorldDataset("eval", num_frames=1, height=8, width=8)
    assert ev[0].seed == EVAL_SEEDS.start


def test_dataloader_batches_clips() -> None:
    from torch.utils.data import DataLoader

    from fantasy_world.data.clip import collate_clips

    ds = SyntheticWorldDataset("train", num_frames=5, height=16, width=24, start=4)
    batch = next(iter(DataLoader(ds, batch_size=2, collate_fn=collate_clips)))
    assert batch["frames"].shape == (2, 5, 3, 16, 24) and batch["valid"].shape == (2, 5, 16, 24)
    assert batch["index"] == [4, 5] and len(batch["caption"]) == 2 and batch["scene"][0] is not None


def test_bad_frame_count_is_refused() -> None:
    with pytest.raises(InputError, match="1 \\+ 4k"):
        SyntheticConfig(num_frames=6)
    with pytest.raises(InputError):
        SyntheticWorldDataset("train", num_frames=8)
