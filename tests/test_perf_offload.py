"""Block swapping computes exactly what the resident model computes (CPU: host and device coincide)."""

from __future__ import annotations

import torch

from fantasy_world.accel.offload import BlockSwap, enable_block_swap, fantasy_units
from fantasy_world.models.fantasy.config import fantasy_world_config, reduced
from fantasy_world.models.fantasy.model import FantasyWorldModel
from fantasy_world.models.wan.config import wan_dit_config
from fantasy_world.models.wan.dit import WanDiT


@torch.no_grad()
def test_wan_block_swap_equals_resident() -> None:
    torch.manual_seed(0)
    model = WanDiT(wan_dit_config("tiny", num_layers=3)).eval()
    model.head.head.weight.normal_(std=0.2)
    x, t, ctx = torch.randn(1, 16, 2, 4, 6), torch.tensor([400.0]), torch.randn(1, 8, 384)
    ref = model(x, t, ctx)
    before = {n: p.clone() for n, p in model.named_parameters()}
    swap = enable_block_swap(model, "cpu", prefetch=1)
    assert isinstance(swap, BlockSwap) and swap.host_bytes == sum(
        p.numel() * p.element_size() for b in model.blocks for p in b.parameters()
    )
    for _ in range(2):  # the second forward starts from the cyclic prefetch of block 0
        torch.testing.assert_close(model(x, t, ctx), ref, rtol=0, atol=0)
        assert set(swap._gpu) == {0}  # only the next forward's first block is staged
    swap.remove("cpu")
    assert not swap._gpu
    for n, p in model.named_parameters():
        torch.testing.assert_close(p, before[n], rtol=0, atol=0)
    torch.testing.assert_close(model(x, t, ctx), ref, rtol=0, atol=0)


@torch.no_grad()
def test_fantasy_block_swap_equals_resident_with_geometry() -> None:
    torch.manual_seed(1)
    cfg = reduced(fantasy_world_config("wan2.1-i2v-14b"))
    model = FantasyWorldModel(cfg).eval()
    for irg in model.irg:
        irg.bicross_attention.gamma_m1.fill_(0.2)
        irg.bicross_attention.gamma_m2.fill_(0.2)
    d = cfg.dit
    x, t = torch.randn(1, 16, 2, 4, 6), torch.tensor([600.0])
    ctx = torch.randn(1, d.text_len, d.text_dim)
    kw = {"clip_fea": torch.randn(1, d.clip_tokens, d.clip_dim), "y": torch.randn(1, 20, 2, 4, 6)}
    camera = model.encode_camera(torch.randn(1, 5, 32, 48, 6))
    ref = model(x, t, ctx, camera=camera, return_geometry=True, **kw)
    units = fantasy_units(model)
    assert len(units) == cfg.n_pcb + 2 * cfg.num_irg
    owned = {id(p) for u in units for o in u.owners for p in o.parameters()}
    assert {id(p) for b in model.dit.blocks for p in b.parameters()} <= owned  # every DiT block is swapped
    swap = enable_block_swap(model, "cpu")
    out = model(x, t, ctx, camera=camera, return_geometry=True, **kw)
    torch.testing.assert_close(out.velocity, ref.velocity, rtol=0, atol=0)
    torch.testing.assert_close(out.geometry.world_points, ref.geometry.world_points, rtol=0, atol=0)
    swap.remove()
