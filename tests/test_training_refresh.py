"""The refreshing clip bank: growth to capacity, oldest-first replacement, cache upkeep, render workers."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from fantasy_world.data.render_pool import RenderedClip, RenderPool
from fantasy_world.data.synthetic_dataset import SyntheticWorldDataset
from fantasy_world.errors import InputError
from fantasy_world.training.config import DataConfig
from fantasy_world.training.sources import RefreshingBank

T, H, W = 5, 16, 24


class FakePool:
    """Hands out clips whose frames are filled with their index, a few per call."""

    def __init__(self, start: int, per_call: int) -> None:
        self.next_index = start
        self.per_call = per_call
        self.closed = False

    def take(self, limit: int) -> list[RenderedClip]:
        out = []
        for _ in range(min(limit, self.per_call)):
            i = self.next_index
            self.next_index += 1
            out.append(
                RenderedClip(
                    index=i,
                    frames=np.full((T, 3, H, W), i % 256, np.uint8),
                    depth=np.full((T, H, W), 1.0 + i, np.float16),
                    valid=np.ones((T, H, W), bool),
                    intrinsics=np.eye(3, dtype=np.float32)[None].repeat(T, 0),
                    c2w=np.eye(4, dtype=np.float32)[None].repeat(T, 0),
                    caption=f"clip {i}",
                )
            )
        return out

    @property
    def first_unrendered(self) -> int:
        return self.next_index

    def close(self) -> None:
        self.closed = True


class FakeClip:
    def __init__(self, i: int) -> None:
        self.frames = torch.full((T, 3, H, W), (i % 256) / 255.0)
        self.depth = torch.full((T, H, W), 1.0 + i)
        self.valid = torch.ones(T, H, W, dtype=torch.bool)
        self.intrinsics = torch.eye(3).repeat(T, 1, 1)
        self.c2w = torch.eye(4).repeat(T, 1, 1)
        self.caption = f"clip {i}"
        self.source = f"fake:{i}"


def _bank(size: int = 4, capacity: int = 6, per_call: int = 3) -> tuple[RefreshingBank, FakePool]:
    pool = FakePool(start=100, per_call=per_call)
    bank = RefreshingBank(FakeClip, size, 2, torch.device("cpu"), pool, capacity=capacity, per_refresh=8)
    return bank, pool


def test_bank_grows_to_capacity_then_replaces_oldest() -> None:
    bank, _ = _bank()
    assert len(bank) == 4
    assert bank.refresh() == 3  # grows 4 → 6 (capacity), then replaces slot 0
    assert len(bank) == 6
    assert bank.captions == ["clip 102", "clip 1", "clip 2", "clip 3", "clip 100", "clip 101"]
    assert bank.refresh() == 3  # replaces slots 1, 2, 3
    assert bank.captions == ["clip 102", "clip 103", "clip 104", "clip 105", "clip 100", "clip 101"]
    assert bank.arrived == 6
    batch = bank.batch_at([0, 5])
    assert torch.allclose(batch.frames[0], torch.full_like(batch.frames[0], 102 / 255.0))
    assert torch.allclose(batch.depth[1], torch.full_like(batch.depth[1], 102.0))  # clip 101: 1 + 101


def test_refresh_re_encodes_cached_latents_and_text_of_replaced_slots() -> None:
    bank, _ = _bank()
    bank.cache_latents(lambda v: v.mean(dim=(1, 3, 4), keepdim=False)[:, None])  # [b, 1, T]
    bank.cache_text(lambda caps: torch.tensor([[float(c.split()[1])] for c in caps]))
    assert bank.latents.shape[0] == 6 and bank.text.shape[0] == 6
    bank.refresh()
    for slot, index in ((0, 102), (4, 100), (5, 101), (1, 1)):
        assert bank.text[slot, 0].item() == index
        value = (index % 256) / 255.0 * 2 - 1
        assert bank.latents[slot].mean().item() == pytest.approx(value, abs=1e-6)


def test_batches_only_draw_filled_slots_and_state_names_next_world() -> None:
    bank, pool = _bank(size=2, capacity=50, per_call=1)
    seen = set()
    for _ in range(30):
        bank.refresh()
        seen.update(bank.next_batch().indices)
    assert max(seen) < len(bank) <= 32
    state = bank.state_dict()
    assert state["kind"] == "refresh" and state["next_index"] == pool.first_unrendered
    with pytest.raises(InputError, match="refreshing"):
        bank.load_state_dict({"kind": "bank"})
    bank.close()
    assert pool.closed


def test_data_config_needs_a_bank_for_workers() -> None:
    with pytest.raises(InputError, match="bank_size"):
        DataConfig(refresh_workers=2)
    with pytest.raises(InputError, match="non-negative"):
        DataConfig(bank_size=4, bank_capacity=-1)


@pytest.mark.slow
def test_render_pool_worker_renders_the_dataset_clip() -> None:
    pool = RenderPool(1, (5, 16, 24), start=3, stride=2, ahead=2)
    try:
        got: list[RenderedClip] = []
        deadline = time.monotonic() + 120
        while len(got) < 2 and time.monotonic() < deadline:
            got += pool.take(2 - len(got))
            time.sleep(0.2)
        assert sorted(c.index for c in got) == [3, 5]
        clip = next(c for c in got if c.index == 3)
        ref = SyntheticWorldDataset("train", 5, 16, 24)[3]
        assert clip.caption == ref.caption
        assert clip.frames.dtype == np.uint8 and clip.frames.shape == (5, 3, 16, 24)
        expected = (ref.frames.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        assert np.array_equal(clip.frames, expected)
        assert np.allclose(clip.depth.astype(np.float32), ref.depth.numpy(), rtol=1e-3)
        assert pool.first_unrendered >= 7
    finally:
        pool.close()
