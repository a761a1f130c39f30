"""FantasyWorld model: zero-init invariants, shapes for every config, live camera path, training stages."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from fantasy_world.errors import InputError
from fantasy_world.models.fantasy.bicross_attention import bicross_rope
from fantasy_world.models.fantasy.config import FANTASY_WORLD_PRESETS, fantasy_world_config, reduced
from fantasy_world.models.fantasy.latent_bridge import TransformerBridge
from fantasy_world.models.fantasy.model import FantasyWorldModel
from fantasy_world.models.fantasy.pose_encoder import compress_time
from fantasy_world.models.fantasy.stages import parameter_counts, set_training_stage
from fantasy_world.models.wan.dit import WanDiT

pytestmark = pytest.mark.usefixtures("one_torch_thread")


LATENT_HW = (4, 6)  # latent grid -> token grid 2x3, images 32x48


def _inputs(cfg, frames: int, seed: int = 0, batch: int = 1):
    g = torch.Generator().manual_seed(seed)
    d = cfg.dit
    latents = 1 + (frames - 1) // 4
    x = torch.randn(batch, d.out_dim, latents, *LATENT_HW, generator=g)
    ctx = torch.randn(batch, 3, d.text_dim, generator=g)
    kw = {}
    if d.image_input:
        kw["clip_fea"] = torch.randn(batch, d.clip_tokens, d.clip_dim, generator=g)
        kw["y"] = torch.randn(batch, d.in_dim - d.out_dim, latents, *LATENT_HW, generator=g)
    plucker = torch.randn(batch, frames, LATENT_HW[0] * 8, LATENT_HW[1] * 8, 6, generator=g)
    return x, torch.full((batch,), 700.0), ctx, kw, plucker


def _model(cfg, seed: int = 0) -> FantasyWorldModel:
    """A random model whose Wan output head is non-zero (Wan initialises it to zero: a pretrained one is not)."""
    torch.manual_seed(seed)
    model = FantasyWorldModel(cfg).eval()
    with torch.no_grad():
        model.dit.head.head.weight.normal_(std=0.2)
    return model


def _plain_wan(model: FantasyWorldModel) -> WanDiT:
    """A separate Wan DiT holding the same weights, without any FantasyWorld additions."""
    wan = WanDiT(model.cfg.dit).eval()
    state = {k: v for k, v in model.dit.state_dict().items() if ".camera_adapter." not in k}
    wan.load_state_dict(state, strict=True)
    return wan


REDUCED = {
    "official-i2v": reduced(fantasy_world_config("wan2.1-i2v-14b")),
    "seed-t2v": reduced(fantasy_world_config("wan2.1-t2v-1.3b")),
    "tiny": fantasy_world_config("tiny"),
}


@pytest.mark.parametrize("name", ["official-i2v", "seed-t2v"])
@torch.no_grad()
def test_zero_init_video_equals_plain_wan(name: str) -> None:
    cfg = REDUCED[name]
    model = _model(cfg)
    x, t, ctx, kw, plucker = _inputs(cfg, frames=5)
    camera = model.encode_camera(plucker)
    assert camera.abs().sum() > 0
    ref = _plain_wan(model)(x, t, ctx, **kw)
    assert ref.abs().mean() > 1e-2
    out = model(x, t, ctx, camera=camera, **kw).velocity
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    # the invariant is a property of the zero gates, not of a disconnected branch: open one gate
    model.irg[0].bicross_attention.gamma_m1.fill_(0.5)
    moved = model(x, t, ctx, camera=camera, **kw).velocity
    assert (moved - ref).abs().max() > 1e-4


def test_irg_borrows_the_dit_blocks() -> None:
    cfg = REDUCED["official-i2v"]
    model = _model(cfg)
    for i, irg in enumerate(model.irg):
        assert irg.x_dit is model.dit.blocks[cfg.n_pcb + i]
    keys = model.state_dict().keys()
    assert not [k for k in keys if ".x_dit." in k]
    assert len(keys) == len(set(keys))
    adapters = [j for j, b in enumerate(model.dit.blocks) if b.cross_attn.camera_adapter is not None]
    assert adapters == list(range(0, 25))


@pytest.mark.parametrize("name", sorted(REDUCED))
@pytest.mark.parametrize("frames", [5, 9])
@torch.no_grad()
def test_output_shapes_every_config(name: str, frames: int) -> None:
    cfg = REDUCED[name]
    model = _model(cfg, seed=1)
    x, t, ctx, kw, plucker = _inputs(cfg, frames=frames, batch=2)
    camera = model.encode_camera(plucker)
    latents = x.shape[2]
    assert camera.shape == (2, latents * 2 * 3, cfg.plucker_fea_dim)
    out = model(x, t, ctx, camera=camera, return_geometry=True, **kw)
    h, w = LATENT_HW[0] * 8, LATENT_HW[1] * 8
    assert out.velocity.shape == x.shape
    geo = out.geometry
    assert geo.depth.shape == (2, frames, h, w)
    assert geo.depth_conf.shape == (2, frames, h, w)
    assert geo.world_points.shape == (2, frames, h, w, 3)
    assert geo.world_points_conf.shape == (2, frames, h, w)
    assert geo.pose_enc.shape == (2, frames, 9)
    assert (geo.depth > 0).all() and (geo.depth_conf > 1).all()
    assert torch.isfinite(geo.world_points).all()
    assert model(x, t, ctx, camera=camera, **kw).geometry is None


def test_presets_build_on_meta() -> None:
    # the official 14B preset is built (and counted exactly) in test_fantasy_official_keys.py
    for name in set(FANTASY_WORLD_PRESETS) - {"wan2.1-i2v-14b"}:
        with torch.device("meta"):
            model = FantasyWorldModel(fantasy_world_config(name))
        counts = parameter_counts(model)
        assert all(counts[g] > 0 for g in ("dit", "bridge", "geometry", "bicross", "heads", "camera"))
    tiny = sum(parameter_counts(FantasyWorldModel(fantasy_world_config("tiny"))).values())
    assert tiny < 15_000_000


@torch.no_grad()
def test_camera_path_is_live() -> None:
    cfg = REDUCED["tiny"]
    model = _model(cfg, seed=2)
    g = torch.Generator().manual_seed(3)
    for block in model.dit.blocks:
        adapter = block.cross_attn.camera_adapter
        if adapter is not None:
            adapter.v_proj.group2[2].weight.copy_(
                0.2 * torch.randn(adapter.v_proj.group2[2].weight.shape, generator=g)
            )
    x, t, ctx, kw, plucker = _inputs(cfg, frames=5)
    base = model(x, t, ctx, **kw).velocity
    v1 = model(x, t, ctx, camera=model.encode_camera(plucker), **kw).velocity
    v2 = model(x, t, ctx, camera=model.encode_camera(plucker.flip(1)), **kw).velocity
    assert (v1 - base).abs().max() > 1e-4
    assert (v1 - v2).abs().max() > 1e-4
    zeros = torch.zeros(1, x.shape[2] * 6, cfg.plucker_fea_dim)
    torch.testing.assert_close(model(x, t, ctx, camera=zeros, **kw).velocity, base, rtol=0, atol=0)
    with pytest.raises(InputError, match="camera features"):
        model(x, t, ctx, camera=zeros[:, :-1], **kw)


def test_bicross_rope_identity_for_special_tokens() -> None:
    grid = (2, 2, 3)
    video, geo = bicross_rope(96, grid, 5, "cpu")
    assert video.shape == (12, 48) and geo.shape == (2 * (5 + 6), 48)
    geo = geo.view(2, 11, 48)
    assert torch.equal(geo[:, :5], torch.ones_like(geo[:, :5]))
    assert torch.equal(geo[:, 5:].reshape(12, 48), video)


def test_pose_encoder_time_compression_and_validation() -> None:
    x = torch.arange(2 * 9 * 3, dtype=torch.float32).view(2 * 9, 3, 1, 1)
    out = compress_time(x, batch=2)
    assert out.shape == (2 * 5, 3, 1, 1)
    torch.testing.assert_close(out[0], x[0])
    torch.testing.assert_close(out[1], (x[1] + x[2]) / 2)
    torch.testing.assert_close(out[5], x[9])
    model = _model(REDUCED["tiny"])
    with pytest.raises(InputError, match="1\\+4k"):
        model.encode_camera(torch.zeros(1, 6, 32, 48, 6))
    with pytest.raises(InputError, match="multiples"):
        model.encode_camera(torch.zeros(1, 5, 30, 48, 6))


def test_cam_token_projector_packing() -> None:
    model = _model(REDUCED["tiny"])
    proj = model.aggregator.cam_token_projector
    poses = torch.randn(1, 9, 9)
    out = proj(poses)
    assert out.shape == (1, 3, model.cfg.geo_dim)
    last = torch.cat([poses[:, 8], poses[:, 0], poses[:, 0], poses[:, 0]], dim=-1)
    torch.testing.assert_close(out[:, 2], proj.mlp(last))


def test_transformer_bridge_starts_as_projection() -> None:
    torch.manual_seed(0)
    bridge = TransformerBridge(24, 16, num_layers=2, num_heads=2, ffn_dim=48, rope_theta=10000.0)
    x = torch.randn(1, 12, 24)
    out = bridge(x, (2, 2, 3))
    assert out.shape == (1, 2, 6, 16)
    torch.testing.assert_close(out.reshape(1, 12, 16), bridge.proj(x))


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def _train_step(model, seed: int) -> None:
    cfg = model.cfg
    x, t, ctx, kw, plucker = _inputs(cfg, frames=5, seed=seed)
    model.train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    out = model(x, t, ctx, camera=model.encode_camera(plucker), return_geometry=True, **kw)
    geo = out.geometry
    loss = (out.velocity - x).pow(2).mean() + geo.depth.log().mean() + geo.pose_enc.pow(2).mean()
    loss = loss + geo.world_points.abs().mean()
    opt.zero_grad()
    loss.backward()
    opt.step()


def _changed_groups(before, model):
    from fantasy_world.models.fantasy.stages import parameter_group

    changed: dict[str, bool] = {}
    for name, p in model.named_parameters():
        group = parameter_group(name)
        changed[group] = changed.get(group, False) or not torch.equal(before[name], p.detach())
    return changed


def test_stage_freezing() -> None:
    cfg = dataclasses.replace(fantasy_world_config("tiny"))
    model = _model(cfg, seed=4)
    counts = set_training_stage(model, 1)
    assert counts["dit"] == counts["bicross"] == counts["camera"] == 0
    assert min(counts["bridge"], counts["geometry"], counts["heads"]) > 0
    before = _snapshot(model)
    _train_step(model, seed=5)
    changed = _changed_groups(before, model)
    assert changed == {
        "dit": False,
        "camera": False,
        "bicross": False,
        "bridge": True,
        "geometry": True,
        "heads": True,
    }
    for name, p in model.named_parameters():
        if not p.requires_grad:
            assert torch.equal(before[name], p.detach()), name

    counts2 = set_training_stage(model, 2)
    assert counts2["bicross"] > 0 and counts2["camera"] > 0 and counts2["dit"] == 0
    before = _snapshot(model)
    _train_step(model, seed=6)
    changed = _changed_groups(before, model)
    assert not changed["dit"]
    assert changed["bicross"] and changed["camera"] and changed["geometry"] and changed["heads"]
    gate = model.irg[0].bicross_attention.gamma_m1
    assert gate.abs().max() > 0
    set_training_stage(model, 1)
    assert gate.abs().max() == 0


def test_bad_stage_and_config() -> None:
    model = _model(REDUCED["tiny"])
    with pytest.raises(InputError, match="stage"):
        set_training_stage(model, 3)
    with pytest.raises(InputError, match="n_pcb"):
        fantasy_world_config("tiny", n_pcb=8)
    with pytest.raises(InputError, match="unknown FantasyWorld config"):
        fantasy_world_config("nope")


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    cfg = REDUCED["seed-t2v"]
    model = _model(cfg, seed=7)
    set_training_stage(model, 2)
    with torch.no_grad():  # open the gates so the geometry branch reaches the velocity
        for irg in model.irg:
            irg.bicross_attention.gamma_m1.fill_(0.1)
            irg.bicross_attention.gamma_m2.fill_(0.1)
    model.train()
    x, t, ctx, kw, plucker = _inputs(cfg, frames=5, seed=8)
    grads = []
    for flag in (False, True):
        model.gradient_checkpointing = flag
        model.zero_grad()
        out = model(x, t, ctx, camera=model.encode_camera(plucker), **kw)
        out.velocity.square().mean().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    assert grads[0]["bridge.proj.weight"].abs().max() > 0
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, rtol=1e-5, atol=1e-6, msg=name)


def test_camera_adapter_pads_its_unaligned_inner_width_without_changing_the_result() -> None:
    """The official adapter width 409 runs as 416 (aligned GEMMs); same maths, same stored shapes."""
    from fantasy_world.models.fantasy.camera_adapter import CameraAdapter

    torch.manual_seed(0)
    adapter = CameraAdapter(hidden_dim=64, context_dim=48, k_inner=32, v_inner=409).double()
    torch.nn.init.normal_(adapter.v_proj.group2[2].weight)  # not the zero init: something to compare
    out, camera = torch.randn(2, 7, 64).double(), torch.randn(2, 7, 48).double()
    combined = adapter.k_proj(camera, out)
    ref = adapter.v_proj.group2(combined)  # the plain Sequential, unpadded
    torch.testing.assert_close(adapter(out, camera), ref, rtol=1e-12, atol=1e-12)
    assert adapter.state_dict()["v_proj.group2.0.weight"].shape == (409, 48)
