"""Wan2.1 causal video VAE: parity with diffusers, public key layout, causality, tiling, loading."""

from __future__ import annotations

import re

import pytest
import torch
from diffusers import AutoencoderKLWan
from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

from fantasy_world.checkpoints.io import save_state_dict
from fantasy_world.errors import CheckpointError, InputError
from fantasy_world.models.wan.vae import (
    WAN21_LATENT_MEAN,
    WAN21_LATENT_STD,
    WanVAE,
    WanVAEConfig,
    load_wan_vae,
    wan_vae_config,
)
from fantasy_world.models.wan.vae_layers import FeatureCache, Resample, ResidualBlock

torch.set_num_threads(2)

NARROW = WanVAEConfig(dim=8)  # Wan2.1 layout and latent statistics at 1/12 of the width

_RESNET = {"residual.0.": "norm1.", "residual.2.": "conv1.", "residual.3.": "norm2.", "residual.6.": "conv2."}


def _resnet_suffix(rest: str) -> str:
    for old, new in _RESNET.items():
        if rest.startswith(old):
            return new + rest[len(old) :]
    return rest.replace("shortcut.", "conv_shortcut.")


def official_to_diffusers(key: str, num_res_blocks: int = 2) -> str:
    """Test-only renaming of a public ``Wan2.1_VAE.pth`` key to ``AutoencoderKLWan``'s name."""
    fixed = {"conv1.": "quant_conv.", "conv2.": "post_quant_conv."}
    for old, new in fixed.items():
        if key.startswith(old):
            return new + key[len(old) :]
    part, rest = key.split(".", 1)
    if rest.startswith("conv1."):
        return f"{part}.conv_in.{rest[len('conv1.') :]}"
    m = re.match(r"head\.(\d)\.(.*)", rest)
    if m:
        return f"{part}.{'norm_out' if m[1] == '0' else 'conv_out'}.{m[2]}"
    m = re.match(r"middle\.(\d)\.(.*)", rest)
    if m:
        if m[1] == "1":
            return f"{part}.mid_block.attentions.0.{m[2]}"
        return f"{part}.mid_block.resnets.{int(m[1]) // 2}.{_resnet_suffix(m[2])}"
    m = re.match(r"downsamples\.(\d+)\.(.*)", rest)
    if m:
        return f"encoder.down_blocks.{m[1]}.{_resnet_suffix(m[2])}"
    m = re.match(r"upsamples\.(\d+)\.(.*)", rest)
    if m:
        stage, j = divmod(int(m[1]), num_res_blocks + 2)
        if j == num_res_blocks + 1:
            return f"decoder.up_blocks.{stage}.upsamplers.0.{m[2]}"
        return f"decoder.up_blocks.{stage}.resnets.{j}.{_resnet_suffix(m[2])}"
    raise AssertionError(f"unmapped key {key}")


def _randomised(cfg: WanVAEConfig, seed: int = 0) -> WanVAE:
    """A model whose every tensor (gains and attention output too) is random, so nothing is trivially 1 or 0."""
    torch.manual_seed(seed)
    model = WanVAE(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.uniform_(0.5, 1.5)
            elif name.endswith("proj.weight"):
                p.normal_(0.0, 0.2)
            elif name.endswith("bias"):
                p.normal_(0.0, 0.05)
    return model


def _diffusers_twin(model: WanVAE) -> AutoencoderKLWan:
    cfg = model.cfg
    twin = AutoencoderKLWan(
        base_dim=cfg.dim,
        z_dim=cfg.z_dim,
        dim_mult=list(cfg.dim_mult),
        num_res_blocks=cfg.num_res_blocks,
        attn_scales=list(cfg.attn_scales),
        temperal_downsample=list(cfg.temperal_downsample),
        latents_mean=list(cfg.latents_mean),
        latents_std=list(cfg.latents_std),
    ).eval()
    state = {official_to_diffusers(k, cfg.num_res_blocks): v for k, v in model.state_dict().items()}
    twin.load_state_dict(state, strict=True)
    return twin


def _video(frames: int, size: int, batch: int = 1, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 3, frames, size, size, generator=g) * 2 - 1
    return torch.nn.functional.avg_pool3d(x, (1, 5, 5), 1, (0, 2, 2)) * 2.5  # smooth-ish, inside [-1, 1]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


@torch.no_grad()
def test_parity_with_diffusers_encode_and_decode() -> None:
    model = _randomised(NARROW)
    twin = _diffusers_twin(model)
    video = _video(9, 32, batch=2)

    latents = model.encode(video)
    assert latents.shape == (2, 16, 3, 4, 4)
    mean = torch.tensor(twin.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(twin.config.latents_std).view(1, -1, 1, 1, 1)
    ref_mu = twin.encode(video).latent_dist.mean
    assert _rel(latents, (ref_mu - mean) / std) <= 1e-4
    mu, logvar = model.encode_moments(video)
    assert _rel(logvar, twin.encode(video).latent_dist.logvar) <= 1e-4

    decoded = model.decode(latents)
    ref = twin.decode(latents * std + mean).sample
    assert decoded.shape == ref.shape == (2, 3, 9, 32, 32)
    assert (decoded.abs() < 1).float().mean() > 0.5  # most values not saturated by the clamp
    assert _rel(decoded, ref) <= 1e-4


def test_wan21_key_set_matches_public_layout() -> None:
    with torch.device("meta"):
        ours = WanVAE(wan_vae_config("wan2.1"))
        theirs = AutoencoderKLWan()
    own = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    ref = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert len(own) == 194 and sum(v.numel() for v in ours.parameters()) == 126_892_531
    # diffusers' own converter for the public Wan2.1_VAE.pth accepts exactly our names ...
    converted = convert_wan_vae_to_diffusers(ours.state_dict())
    assert {k: tuple(v.shape) for k, v in converted.items()} == ref
    # ... and agrees with the test converter used for the parity test
    assert {official_to_diffusers(k): s for k, s in own.items()} == ref
    for key in (
        "encoder.downsamples.2.resample.1.weight",
        "encoder.downsamples.5.time_conv.weight",
        "encoder.middle.1.to_qkv.weight",
        "encoder.head.2.weight",
        "decoder.upsamples.3.time_conv.weight",
        "decoder.upsamples.4.shortcut.weight",
        "decoder.upsamples.0.residual.6.bias",
    ):
        assert key in own
    assert own["encoder.middle.1.norm.gamma"] == (384, 1, 1)
    assert own["decoder.upsamples.0.residual.0.gamma"] == (384, 1, 1, 1)
    assert own["decoder.upsamples.3.time_conv.weight"] == (768, 384, 3, 1, 1)
    assert own["conv1.weight"] == (32, 32, 1, 1, 1) and own["conv2.weight"] == (16, 16, 1, 1, 1)


@torch.no_grad()
def test_encode_is_causal_and_shapes() -> None:
    model = _randomised(NARROW, seed=3)
    video = _video(17, 32, seed=4)
    full = model.encode(video)
    for frames in (1, 5, 9, 17):
        part = model.encode(video[:, :, :frames])
        k = 1 + (frames - 1) // 4
        assert part.shape == (1, 16, k, 4, 4)
        torch.testing.assert_close(part, full[:, :, :k], rtol=1e-5, atol=1e-5)
    changed = video.clone()
    changed[:, :, 9:] = -changed[:, :, 9:]
    later = model.encode(changed)
    torch.testing.assert_close(later[:, :, :3], full[:, :, :3], rtol=1e-5, atol=1e-5)
    assert (later[:, :, 3:] - full[:, :, 3:]).abs().max() > 1e-2  # later frames do matter


@torch.no_grad()
def test_decode_is_causal_and_sampling_uses_generator() -> None:
    model = _randomised(NARROW, seed=5)
    latents = torch.randn(1, 16, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    full = model.decode(latents)
    assert full.shape == (1, 3, 13, 32, 32) and full.abs().max() <= 1
    for k in (1, 2, 3):
        torch.testing.assert_close(model.decode(latents[:, :, :k]), full[:, :, : 1 + 4 * (k - 1)])
    video = _video(5, 32)
    a = model.encode(video, sample=True, generator=torch.Generator().manual_seed(7))
    b = model.encode(video, sample=True, generator=torch.Generator().manual_seed(7))
    c = model.encode(video, sample=True, generator=torch.Generator().manual_seed(8))
    torch.testing.assert_close(a, b)
    assert (a - c).abs().max() > 1e-3 and (a - model.encode(video)).abs().max() > 1e-3


def test_feature_cache_matches_one_shot_residual_and_upsample_counts() -> None:
    torch.manual_seed(0)
    block = ResidualBlock(4, 6).eval()
    x = torch.randn(1, 4, 9, 5, 5)
    with torch.no_grad():
        one_shot = block(x)
        cache = FeatureCache()
        pieces = []
        for lo, hi in ((0, 1), (1, 5), (5, 6), (6, 9)):
            cache.rewind()
            pieces.append(block(x[:, :, lo:hi], cache))
        torch.testing.assert_close(torch.cat(pieces, 2), one_shot, rtol=1e-5, atol=1e-6)

        up = Resample(4, "upsample3d").eval()
        cache = FeatureCache()
        frames = []
        for t in range(3):
            cache.rewind()
            frames.append(up(x[:, :, t : t + 1], cache).shape[2])
        assert frames == [1, 2, 2]
        assert up(x[:, :, :1]).shape == (1, 2, 1, 10, 10)  # channels halved, space doubled


def _smooth_latents(frames: int, size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    lat = torch.randn(1, 16, frames, size, size, generator=g)
    return torch.nn.functional.avg_pool3d(lat, (1, 3, 3), 1, (0, 1, 1), count_include_pad=False) * 2


@torch.no_grad()
def test_tiled_decode_blends_tiles_exactly_for_a_local_decoder() -> None:
    """With a pointwise stand-in decoder, tiling must reproduce the untiled output: checks placement,
    overlap weights and normalisation independently of the network's receptive field."""
    model = WanVAE(WanVAEConfig(dim=4))

    def pointwise(z: torch.Tensor) -> torch.Tensor:
        frames = torch.cat([z[:, :3, :1], z[:, :3, 1:].repeat_interleave(4, dim=2)], dim=2)
        return torch.tanh(frames).repeat_interleave(8, dim=3).repeat_interleave(8, dim=4) * 0.9

    model._decode_raw = pointwise  # type: ignore[method-assign]
    latents = _smooth_latents(3, 13, seed=4)
    ref = model.decode(latents)
    for size, stride in ((5, 3), (6, 2), (4, 4), ((7, 5), (3, 4))):
        tiled = model.decode(latents, tiled=True, tile_size=size, tile_stride=stride)
        torch.testing.assert_close(tiled, ref, rtol=1e-6, atol=1e-6)


@torch.no_grad()
def test_tiled_decode_close_to_untiled() -> None:
    torch.manual_seed(0)
    model = WanVAE(WanVAEConfig(dim=8, latents_mean=(0.0,) * 16, latents_std=(1.0,) * 16)).eval()
    latents = _smooth_latents(2, 16, seed=2)
    ref = model.decode(latents)
    assert ref.shape == (1, 3, 5, 128, 128) and (ref.abs() < 1).float().mean() > 0.99
    whole = model.decode(latents, tiled=True, tile_size=16, tile_stride=8)  # one tile: identical
    torch.testing.assert_close(whole, ref)
    errors = {}
    for size, stride in ((10, 6), (14, 2)):  # 2x2 tiles overlapping by 4 and by 12 latent pixels
        tiled = model.decode(latents, tiled=True, tile_size=size, tile_stride=stride)
        assert tiled.shape == ref.shape
        errors[size] = ((tiled - ref).abs().max().item(), (tiled - ref).abs().mean().item())
    # measured (random weights, whose receptive field spans the whole 16-latent frame):
    # overlap 12 -> max 0.335, mean 0.022; overlap 4 -> max 0.957, mean 0.051
    assert errors[14][0] < 0.4 and errors[14][1] < 0.03
    assert errors[14][1] < 0.6 * errors[10][1] and errors[14][0] < errors[10][0]
    with pytest.raises(InputError, match="tile_stride"):
        model.decode(latents, tiled=True, tile_size=8, tile_stride=9)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_loader_round_trip(tmp_path, suffix: str) -> None:
    cfg = WanVAEConfig(dim=4, latents_mean=(0.0,) * 16, latents_std=(1.0,) * 16)
    model = _randomised(cfg, seed=9)
    path = tmp_path / f"vae{suffix}"
    if suffix == ".pth":
        torch.save(model.state_dict(), path)
    else:
        save_state_dict(model.state_dict(), path)
    loaded = load_wan_vae(path, cfg=cfg)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    video = _video(5, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(video), model.encode(video), rtol=0, atol=0)
    assert load_wan_vae(path, cfg=cfg, dtype=torch.bfloat16).conv1.weight.dtype == torch.bfloat16


def test_loader_names_bad_keys(tmp_path) -> None:
    cfg = WanVAEConfig(dim=4)
    state = WanVAE(cfg).state_dict()
    state["decoder.upsamples.3.time_conv.weightX"] = state.pop("decoder.upsamples.3.time_conv.weight")
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"decoder\.upsamples\.3\.time_conv\.weight"):
        load_wan_vae(path, cfg=cfg)
    with pytest.raises(CheckpointError, match="mis-shaped"):
        load_wan_vae(tmp_path / "broken.pth", cfg=WanVAEConfig(dim=8))


def test_input_validation_and_presets() -> None:
    model = WanVAE(WanVAEConfig(dim=4))
    with pytest.raises(InputError, match="1 \\+ 4k"):
        model.encode(torch.zeros(1, 3, 4, 16, 16))
    with pytest.raises(InputError, match="multiples of 8"):
        model.encode(torch.zeros(1, 3, 5, 20, 16))
    with pytest.raises(InputError, match="expected \\[batch, 3"):
        model.encode(torch.zeros(1, 4, 5, 16, 16))
    with pytest.raises(InputError, match="expected \\[batch, 16"):
        model.decode(torch.zeros(1, 8, 2, 2, 2))
    with pytest.raises(InputError, match="unknown VAE preset"):
        wan_vae_config("wan9")
    with pytest.raises(InputError, match="latents_mean"):
        WanVAEConfig(z_dim=8)
    assert model.latent_shape(81, 480, 832) == (16, 21, 60, 104)
    full = wan_vae_config("wan2.1")
    assert full.latents_mean == WAN21_LATENT_MEAN and full.latents_std[8] == WAN21_LATENT_STD[8] == 3.2687
    assert (full.temporal_factor, full.spatial_factor) == (4, 8)
