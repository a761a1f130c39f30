"""FantasyWorld on Wan2.2-Fun-A14B: config, control adapter (hand-computed), its place in the model, batch > 1,
and the expert DiT against diffusers' Wan transformer (no CLIP, 36 input channels)."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import WanTransformer3DModel
from torch import nn

from bench.harness.diffusers_ref import diffusers_kwargs, to_diffusers
from fantasy_world.errors import InputError
from fantasy_world.models.fantasy.config import fantasy_world_config, reduced
from fantasy_world.models.fantasy.control_adapter import ControlAdapter, pack_plucker_control
from fantasy_world.models.fantasy.model import FantasyWorldModel
from fantasy_world.models.wan.config import wan_dit_config
from fantasy_world.models.wan.dit import WanDiT

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_wan22_config_is_the_shared_code_with_wan22_switches() -> None:
    cfg = fantasy_world_config("wan2.2-fun-a14b")
    assert cfg.dit.in_dim == 36 and not cfg.dit.image_input and cfg.dit.dim == 5120
    assert cfg.has_control and not cfg.has_camera and cfg.control_channels == 24
    assert (cfg.n_pcb, cfg.num_irg, cfg.geo_dim, cfg.bicross_dim) == (16, 24, 1024, 1152)
    with torch.device("meta"):
        model = FantasyWorldModel(cfg)
    names = list(model.state_dict())
    assert not any("k_img" in n or "v_img" in n or "img_emb" in n for n in names)
    assert not any("camera_adapter" in n or n.startswith("pose_encoder") for n in names)
    assert model.dit.control_adapter.conv.weight.shape == (5120, 1536, 2, 2)
    assert model.dit.control_adapter.residual_blocks[0].conv1.weight.shape == (5120, 5120, 3, 3)
    with pytest.raises(InputError, match="one camera path"):
        fantasy_world_config("wan2.2-fun-a14b", camera_adapter_blocks=(0, 3))
    with pytest.raises(InputError, match="control_channels"):
        fantasy_world_config("wan2.2-fun-a14b", control_channels=12)


def test_pack_plucker_control_matches_hand_layout() -> None:
    b, t, h, w, c = 2, 9, 2, 3, 6
    plucker = torch.zeros(b, t, h, w, c)
    for bi in range(b):
        for fi in range(t):
            for ci in range(c):
                plucker[bi, fi, :, :, ci] = 1000 * bi + 10 * fi + ci
    packed = pack_plucker_control(plucker)
    assert packed.shape == (b, 24, 3, h, w)
    for bi in range(b):
        for f in range(3):
            for ci in range(c):
                for s in range(4):
                    frame = max(0, 4 * f + s - 3)  # frame 0 repeated 4x, then 1..T-1
                    assert packed[bi, 4 * ci + s, f, 0, 0].item() == 1000 * bi + 10 * frame + ci
    with pytest.raises(InputError, match="1 \\+ 4"):
        pack_plucker_control(torch.zeros(1, 8, h, w, c))


def _reference_adapter(adapter: ControlAdapter, control: torch.Tensor) -> torch.Tensor:
    """Pixel unshuffle, patch conv and residual block written out with explicit index arithmetic."""
    b, c, f, h, w = control.shape
    r = adapter.downscale
    hs, ws = h // r, w // r
    # PixelUnshuffle: out channel c*r*r + i*r + j at (y, x) = in channel c at (y*r + i, x*r + j)
    unshuffled = torch.zeros(b, f, c * r * r, hs, ws, dtype=torch.float64)
    for ci in range(c):
        for i in range(r):
            for j in range(r):
                unshuffled[:, :, ci * r * r + i * r + j] = control[:, ci, :, i::r, j::r].double()
    k = adapter.conv.weight.double()  # [D, C', 2, 2]
    ph, pw = adapter.patch
    hp, wp = hs // ph, ws // pw
    patches = unshuffled.reshape(b, f, c * r * r, hp, ph, wp, pw)
    x = torch.einsum("bfcyixj,dcij->bfdyx", patches, k) + adapter.conv.bias.double()[:, None, None]

    def conv3(z: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
        zp = nn.functional.pad(z, (1, 1, 1, 1))
        out = conv.bias.double()[:, None, None].expand(-1, z.shape[-2], z.shape[-1]).clone()
        out = out.expand(*z.shape[:2], *out.shape).clone()
        for dy in range(3):
            for dx in range(3):
                window = zp[..., dy : dy + z.shape[-2], dx : dx + z.shape[-1]]
                out = out + torch.einsum("bfcyx,dc->bfdyx", window, conv.weight.double()[:, :, dy, dx])
        return out

    block = adapter.residual_blocks[0]
    x = x + conv3(torch.relu(conv3(x, block.conv1)), block.conv2)
    return x.permute(0, 1, 3, 4, 2).reshape(b, f * hp * wp, -1)  # tokens in (f, h, w) order


def test_control_adapter_matches_hand_computation() -> None:
    torch.manual_seed(0)
    adapter = ControlAdapter(in_channels=24, dim=12, patch=(2, 2)).double()
    with torch.no_grad():
        for p in adapter.parameters():
            p.copy_(torch.randn_like(p) / math.sqrt(max(1, p[0].numel())))
    control = torch.randn(2, 24, 3, 32, 48, dtype=torch.float64)
    got = adapter(control)
    want = _reference_adapter(adapter, control)
    assert got.shape == (2, 3 * 2 * 3, 12)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    with pytest.raises(InputError, match="multiples of 16x16"):
        adapter(torch.zeros(1, 24, 1, 24, 48, dtype=torch.float64))


def _reduced_model(seed: int) -> FantasyWorldModel:
    torch.manual_seed(seed)
    model = FantasyWorldModel(reduced(fantasy_world_config("wan2.2-fun-a14b"))).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def _inputs(model: FantasyWorldModel, batch: int, seed: int = 1):
    cfg = model.cfg
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 16, 2, 4, 6, generator=g)
    y = torch.randn(batch, 20, 2, 4, 6, generator=g)
    ctx = torch.randn(batch, 5, cfg.dit.text_dim, generator=g)
    plucker = torch.randn(batch, 5, 32, 48, 6, generator=g)
    return x, y, ctx, plucker


@torch.no_grad()
def test_control_features_are_added_to_the_patch_embeddings() -> None:
    model = _reduced_model(0)
    x, y, ctx, plucker = _inputs(model, 1)
    t = torch.tensor([908.0])
    camera = model.encode_camera(plucker)
    assert camera.shape == (1, 2 * 2 * 3, model.cfg.dit.dim)
    with_camera = model(x, t, ctx, y=y, camera=camera).velocity
    # the same sum made inside the DiT's patch embedding, with the model's camera argument unused
    grid = camera.reshape(1, 2, 2, 3, -1).permute(0, 4, 1, 2, 3)
    handle = model.dit.patch_embedding.register_forward_hook(lambda m, a, out: out + grid)
    try:
        hooked = model(x, t, ctx, y=y).velocity
    finally:
        handle.remove()
    torch.testing.assert_close(with_camera, hooked, rtol=1e-6, atol=1e-6)
    plain = model(x, t, ctx, y=y).velocity
    assert (with_camera - plain).abs().max() > 1e-3  # the camera path is live
    # the model sees its timestep as the official bf16 value: 906.59 and 908 are the same input
    assert model.cfg.bf16_timestep
    torch.testing.assert_close(
        model(x, torch.tensor([906.59]), ctx, y=y).velocity,
        model(x, torch.tensor([908.0]), ctx, y=y).velocity,
    )
    assert (model(x, torch.tensor([904.0]), ctx, y=y).velocity - plain).abs().max() > 1e-4


@torch.no_grad()
def test_batch_elements_keep_their_own_camera() -> None:
    """The official patchify keeps only batch element 0 when the adapter is on; ours keeps every one."""
    model = _reduced_model(1)
    x, y, ctx, plucker = _inputs(model, 2, seed=4)
    t = torch.tensor([950.0, 950.0])
    both = model(x, t, ctx, y=y, camera=model.encode_camera(plucker), return_geometry=True)
    for i in range(2):
        one = model(
            x[i : i + 1],
            t[i : i + 1],
            ctx[i : i + 1],
            y=y[i : i + 1],
            camera=model.encode_camera(plucker[i : i + 1]),
            return_geometry=True,
        )
        torch.testing.assert_close(both.velocity[i : i + 1], one.velocity, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(both.geometry.depth[i : i + 1], one.geometry.depth, rtol=1e-4, atol=1e-5)
    assert (both.velocity[0] - both.velocity[1]).abs().max() > 1e-3
    # a batch-1 camera is shared by a batch of 2 (e.g. both CFG passes)
    shared = model(x, t, ctx, y=y, camera=model.encode_camera(plucker[:1])).velocity
    first = model(x[1:], t[1:], ctx[1:], y=y[1:], camera=model.encode_camera(plucker[:1])).velocity
    torch.testing.assert_close(shared[1:], first, rtol=1e-5, atol=1e-5)
    with pytest.raises(InputError, match="camera features shape"):
        model(x, t, ctx, y=y, camera=torch.zeros(2, 5, model.cfg.dit.dim))


@torch.no_grad()
def test_wan22_expert_dit_matches_diffusers() -> None:
    """Each expert's DiT is diffusers' WanTransformer3DModel with 36 input channels and no image branch."""
    cfg = wan_dit_config(
        "wan2.2-fun-a14b", dim=64, ffn_dim=96, num_heads=2, num_layers=2, text_dim=24, freq_dim=32
    )
    ours = WanDiT(cfg).eval()
    g = torch.Generator().manual_seed(5)
    for name, p in ours.named_parameters():
        noise = torch.randn(p.shape, generator=g)
        p.copy_(
            noise / math.sqrt(p[0].numel()) if p.ndim >= 2 and "modulation" not in name else 0.2 * noise + 1
        )
    ref = WanTransformer3DModel(**diffusers_kwargs(cfg)).eval()
    missing, unexpected = ref.load_state_dict(to_diffusers(ours.state_dict()), strict=True)
    assert not missing and not unexpected
    x, y = torch.randn(2, 16, 3, 4, 6, generator=g), torch.randn(2, 20, 3, 4, 6, generator=g)
    t = torch.tensor([908.0, 900.0])
    text = torch.zeros(2, 512, cfg.text_dim)
    text[:, :7] = torch.randn(2, 7, cfg.text_dim, generator=g)
    got = ours(x, t, text[:, :7], y=y)
    want = ref(torch.cat([x, y], dim=1), t, text, return_dict=False)[0]
    assert got.shape == want.shape == (2, 16, 3, 4, 6)
    assert ((got - want).norm() / want.norm()).item() < 1e-5
