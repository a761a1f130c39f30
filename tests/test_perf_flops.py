"""Analytic FLOP counts against PyTorch's FlopCounterMode, and the perf_anchors.md numbers."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from bench.harness.flops import fantasy_extra_flops, fantasy_flops, token_grid, wan_dit_flops
from fantasy_world.models.fantasy.config import fantasy_world_config, reduced
from fantasy_world.models.fantasy.model import FantasyWorldModel
from fantasy_world.models.wan.config import wan_dit_config
from fantasy_world.models.wan.dit import WanDiT


def test_anchor_numbers() -> None:
    cfg = wan_dit_config("wan2.1-t2v-1.3b")
    grid = token_grid(cfg, 81, 480, 832)
    assert grid == (21, 30, 52)
    f = wan_dit_flops(cfg, grid)
    assert f.total / 1e12 == pytest.approx(283.0, abs=0.1)  # perf_anchors.md §2
    assert f.attention / 1e12 == pytest.approx(200.9, abs=0.1)
    assert token_grid(wan_dit_config("wan2.1-i2v-14b"), 81, 336, 592) == (21, 21, 37)
    fw = fantasy_world_config("wan2.1-t2v-1.3b")
    assert fantasy_flops(fw, grid).total > 2.3 * f.total  # the geometry branch more than doubles the work


def _counted(fn) -> int:
    with sdpa_kernel([SDPBackend.MATH]), FlopCounterMode(display=False) as counter, torch.no_grad():
        fn()
    return counter.get_total_flops()


@pytest.mark.parametrize("image", [False, True])
def test_wan_count_matches_flop_counter(image: bool) -> None:
    kw = dict(dim=64, ffn_dim=96, num_heads=2, num_layers=2, text_dim=24, text_len=16, freq_dim=32)
    if image:
        kw.update(in_dim=36, image_input=True, clip_dim=40, clip_tokens=6)
    cfg = wan_dit_config("tiny", **kw)
    model = WanDiT(cfg).eval()
    x, t, ctx = torch.randn(1, 16, 3, 4, 6), torch.tensor([500.0]), torch.randn(1, 16, 24)
    extra = {"clip_fea": torch.randn(1, 6, 40), "y": torch.randn(1, 20, 3, 4, 6)} if image else {}
    counted = _counted(lambda: model(x, t, ctx, **extra))
    assert wan_dit_flops(cfg, (3, 2, 3)).total == pytest.approx(counted, rel=1e-9)


@pytest.mark.parametrize("name", ["wan2.1-t2v-1.3b", "wan2.1-i2v-14b"])
def test_fantasy_count_matches_flop_counter(name: str) -> None:
    cfg = reduced(fantasy_world_config(name))
    torch.manual_seed(0)
    model = FantasyWorldModel(cfg).eval()
    d = cfg.dit
    x, t = torch.randn(1, 16, 2, 4, 6), torch.tensor([500.0])
    ctx = torch.randn(1, d.text_len, d.text_dim)
    kw = {}
    if d.image_input:
        kw = {"clip_fea": torch.randn(1, d.clip_tokens, d.clip_dim), "y": torch.randn(1, 20, 2, 4, 6)}
    with torch.no_grad():
        camera = model.encode_camera(torch.randn(1, 5, 32, 48, 6))
        for irg in model.irg:  # open the zero-initialised gates so bicross runs, as in a trained model
            irg.bicross_attention.gamma_m1.fill_(0.1)
            irg.bicross_attention.gamma_m2.fill_(0.1)
    counted = _counted(lambda: model(x, t, ctx, camera=camera, **kw))
    grid = (2, 2, 3)
    assert fantasy_flops(cfg, grid).total == pytest.approx(counted, rel=1e-9)
    assert fantasy_extra_flops(cfg, grid).total > 0
