"""Attribute checker: palette colours recovered on rendered frames from ground-truth object masks."""

from __future__ import annotations

import numpy as np
import pytest

from fantasy_world.data.attributes import check_frame, classify_colour, visible_objects
from fantasy_world.data.palette import PALETTE
from fantasy_world.data.splits import EVAL_SEEDS
from fantasy_world.data.synthetic_dataset import SyntheticConfig, make_clip
from fantasy_world.errors import InputError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("name", list(PALETTE))
def test_flat_palette_patches_and_shaded_versions(name: str) -> None:
    rgb = np.asarray(PALETTE[name])
    frame = np.zeros((10, 10, 3))
    frame[:, :5] = rgb
    frame[:, 5:] = rgb * 0.55  # shadowed half
    mask = np.ones((10, 10), bool)
    assert classify_colour((frame * 255).round().astype(np.uint8), mask) == name


def test_accuracy_on_rendered_frames() -> None:
    cfg = SyntheticConfig(num_frames=1, height=96, width=128)
    results = []
    for seed in range(EVAL_SEEDS.start, EVAL_SEEDS.start + 20):
        clip = make_clip(seed, cfg)
        results += check_frame(clip.scene, clip.frames_uint8()[0], clip.object_ids[0], min_pixels=30)
    assert len(results) >= 30
    accuracy = np.mean([r.colour_ok for r in results])
    assert accuracy >= 0.9, accuracy


def test_visible_objects_counts_pixels() -> None:
    clip = make_clip(4, SyntheticConfig(num_frames=1, height=48, width=64))
    ids = clip.object_ids[0].numpy()
    vis = visible_objects(clip.scene, ids, min_pixels=1)
    for k, count in vis.items():
        assert count == int((ids == k + 1).sum())
    assert set(vis) == {int(i) - 1 for i in np.unique(ids) if i > 0}


def test_empty_mask_is_an_input_error() -> None:
    with pytest.raises(InputError, match="no pixels"):
        classify_colour(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), bool))
