"""The compact MiniLM pack: rebuilt encoder matches the package's features; unknown word pieces refuse."""

from __future__ import annotations

import pytest

from bench.harness.seed_captions import caption_of_seed
from fantasy_world.errors import InputError
from fantasy_world.models.wan.minilm import bundled_minilm_dir
from fantasy_world.training.text_pack import check_vocabulary, install_minilm_package, pack_error, pack_minilm

CAPTIONS = [caption_of_seed(s) for s in range(6)] + ["a scene", ""]


def test_pack_round_trip_and_vocabulary_guard(tmp_path):
    manifest = pack_minilm(bundled_minilm_dir(), tmp_path / "pack", CAPTIONS)
    assert 10 < manifest["kept_ids"] < 200 and manifest["vocab_size"] == 30522
    size = sum(f.stat().st_size for f in (tmp_path / "pack").iterdir())
    assert size < 24 * 2**20  # small enough to travel with the working tree
    pkg = install_minilm_package(tmp_path / "pack", tmp_path / "site")
    assert pack_error(bundled_minilm_dir(), pkg / "model", CAPTIONS[:-1]) < 5e-3
    check_vocabulary(pkg / "model", CAPTIONS)
    with pytest.raises(InputError, match="outside the packed vocabulary"):
        check_vocabulary(pkg / "model", ["a zebra playing the xylophone"])


def test_caption_of_seed_matches_the_rendered_clip():
    from fantasy_world.data import make_clip
    from fantasy_world.data.synthetic_dataset import SyntheticConfig

    cfg = SyntheticConfig(num_frames=5, height=32, width=48)
    for seed in (3, 4):
        assert caption_of_seed(seed, cfg) == make_clip(seed, cfg).caption
