"""Wan2.1 causal video VAE: 1 + 4k frames ↔ 1 + k latent frames, 8× smaller in space, 16 channels.

Encoding runs causally chunk by chunk (the first frame alone, then 4 frames at a time) and decoding one
latent frame at a time, each carrying a :class:`FeatureCache`, so memory does not grow with video length.
Decoding can also be tiled in space for large frames. Parameter names match the public
``Wan2.1_VAE.pth`` so the official file loads strictly into :func:`load_wan_vae`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from fantasy_world.checkpoints.io import load_into_model, read_state_dict
from fantasy_world.errors import InputError
from fantasy_world.models.wan.vae_layers import (
    AttentionBlock,
    CausalConv3d,
    ChannelRMSNorm,
    FeatureCache,
    Resample,
    ResidualBlock,
    cached_causal_conv,
)

log = logging.getLogger(__name__)

WAN21_LATENT_MEAN: tuple[float, ...] = (
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
    0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
)  # fmt: skip
WAN21_LATENT_STD: tuple[float, ...] = (
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
    3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
)  # fmt: skip

TileSpec = int | tuple[int, int]


@dataclass(frozen=True)
class WanVAEConfig:
    """Architecture and latent statistics (``temperal_downsample`` keeps Wan2.1's spelling)."""

    dim: int = 96
    z_dim: int = 16
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    attn_scales: tuple[float, ...] = ()
    temperal_downsample: tuple[bool, ...] = (False, True, True)
    dropout: float = 0.0
    latents_mean: tuple[float, ...] = WAN21_LATENT_MEAN
    latents_std: tuple[float, ...] = WAN21_LATENT_STD

    def __post_init__(self) -> None:
        if len(self.temperal_downsample) != len(self.dim_mult) - 1:
            raise InputError(
                f"WanVAEConfig.temperal_downsample has {len(self.temperal_downsample)} entries; "
                f"expected len(dim_mult) - 1 = {len(self.dim_mult) - 1}"
            )
        if len(self.latents_mean) != self.z_dim or len(self.latents_std) != self.z_dim:
            raise InputError(f"WanVAEConfig latents_mean/latents_std: expected {self.z_dim} values each")
        if any(s <= 0 for s in self.latents_std):
            raise InputError("WanVAEConfig.latents_std: expected strictly positive values")

    @property
    def temporal_factor(self) -> int:
        """Frames per latent frame after the first (4 for Wan2.1)."""
        return 2 ** sum(bool(t) for t in self.temperal_downsample)

    @property
    def spatial_factor(self) -> int:
        """Pixels per latent pixel along each side (8 for Wan2.1)."""
        return 2 ** (len(self.dim_mult) - 1)


def wan_vae_config(name: str) -> WanVAEConfig:
    """Presets: ``"wan2.1"`` (the public VAE) and ``"tiny"`` (same layout, narrow, for tests and CPU)."""
    if name == "wan2.1":
        return WanVAEConfig()
    if name == "tiny":
        return WanVAEConfig(dim=16, latents_mean=(0.0,) * 16, latents_std=(1.0,) * 16)
    raise InputError(f"unknown VAE preset {name!r}; expected 'wan2.1' or 'tiny'")


def _run_stage(layers: nn.Sequential, x: torch.Tensor, cache: FeatureCache | None) -> torch.Tensor:
    for layer in layers:
        if isinstance(layer, ResidualBlock | Resample):
            x = layer(x, cache)
        elif isinstance(layer, CausalConv3d):
            x = cached_causal_conv(layer, x, cache)
        else:
            x = layer(x)
    return x


class Encoder3d(nn.Module):
    """Video → ``2 * z_dim`` moments (mean and log-variance before ``conv1``)."""

    def __init__(self, cfg: WanVAEConfig, out_channels: int) -> None:
        super().__init__()
        dims = [cfg.dim * m for m in (1, *cfg.dim_mult)]
        self.conv1 = CausalConv3d(3, dims[0], 3, padding=1)
        blocks: list[nn.Module] = []
        scale = 1.0
        for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResidualBlock(in_dim, out_dim, cfg.dropout))
                if scale in cfg.attn_scales:
                    blocks.append(AttentionBlock(out_dim))
                in_dim = out_dim
            if i != len(cfg.dim_mult) - 1:
                blocks.append(
                    Resample(out_dim, "downsample3d" if cfg.temperal_downsample[i] else "downsample2d")
                )
                scale /= 2.0
        self.downsamples = nn.Sequential(*blocks)
        top = dims[-1]
        self.middle = nn.Sequential(
            ResidualBlock(top, top, cfg.dropout), AttentionBlock(top), ResidualBlock(top, top, cfg.dropout)
        )
        self.head = nn.Sequential(
            ChannelRMSNorm(top), nn.SiLU(), CausalConv3d(top, out_channels, 3, padding=1)
        )

    def forward(self, x: torch.Tensor, cache: FeatureCache | None = None) -> torch.Tensor:
        x = cached_causal_conv(self.conv1, x, cache)
        for stage in (self.downsamples, self.middle, self.head):
            x = _run_stage(stage, x, cache)
        return x


class Decoder3d(nn.Module):
    """Latents (after ``conv2``) → RGB video; every upsampling stage halves the width it receives."""

    def __init__(self, cfg: WanVAEConfig) -> None:
        super().__init__()
        dims = [cfg.dim * m for m in (cfg.dim_mult[-1], *reversed(cfg.dim_mult))]
        temporal_up = tuple(reversed(cfg.temperal_downsample))
        scale = 1.0 / 2 ** (len(cfg.dim_mult) - 2)
        self.conv1 = CausalConv3d(cfg.z_dim, dims[0], 3, padding=1)
        self.middle = nn.Sequential(
            ResidualBlock(dims[0], dims[0], cfg.dropout),
            AttentionBlock(dims[0]),
            ResidualBlock(dims[0], dims[0], cfg.dropout),
        )
        blocks: list[nn.Module] = []
        for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
            if i > 0:
                in_dim //= 2  # the previous stage's Resample halved the channels
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(ResidualBlock(in_dim, out_dim, cfg.dropout))
                if scale in cfg.attn_scales:
                    blocks.append(AttentionBlock(out_dim))
                in_dim = out_dim
            if i != len(cfg.dim_mult) - 1:
                blocks.append(Resample(out_dim, "upsample3d" if temporal_up[i] else "upsample2d"))
                scale *= 2.0
        self.upsamples = nn.Sequential(*blocks)
        last = dims[-1]
        self.head = nn.Sequential(ChannelRMSNorm(last), nn.SiLU(), CausalConv3d(last, 3, 3, padding=1))

    def forward(self, x: torch.Tensor, cache: FeatureCache | None = None) -> torch.Tensor:
        x = cached_causal_conv(self.conv1, x, cache)
        for stage in (self.middle, self.upsamples, self.head):
            x = _run_stage(stage, x, cache)
        return x


def _pair(value: TileSpec, name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or any(int(v) < 1 for v in pair):
        raise InputError(f"{name}={value!r}: expected a positive int or a (height, width) pair")
    return int(pair[0]), int(pair[1])


def _tile_starts(length: int, size: int, stride: int) -> list[int]:
    if length <= size:
        return [0]
    starts = list(range(0, length - size, stride))
    return starts + [length - size]


def _blend_ramp(starts: list[int], index: int, size: int, length: int, factor: int) -> torch.Tensor:
    """Per-pixel weight of one tile along one axis: linear ramps across overlaps with its neighbours."""
    start = starts[index]
    n = min(size, length) * factor
    weight = torch.ones(n)
    if index > 0:
        overlap = (starts[index - 1] + size - start) * factor
        weight[:overlap] = torch.minimum(weight[:overlap], torch.arange(1, overlap + 1) / (overlap + 1))
    if index + 1 < len(starts):
        overlap = (start + size - starts[index + 1]) * factor
        ramp = torch.arange(overlap, 0, -1) / (overlap + 1)
        weight[n - overlap :] = torch.minimum(weight[n - overlap :], ramp)
    return weight


class WanVAE(nn.Module):
    """Wan2.1 video VAE with normalised latents: ``encode`` returns (μ − mean) / std, ``decode`` inverts it."""

    def __init__(self, cfg: WanVAEConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or WanVAEConfig()
        z = self.cfg.z_dim
        self.encoder = Encoder3d(self.cfg, 2 * z)
        self.conv1 = CausalConv3d(2 * z, 2 * z, 1)
        self.conv2 = CausalConv3d(z, z, 1)
        self.decoder = Decoder3d(self.cfg)

    # ----------------------------------------------------------------- shapes and statistics
    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """(channels, latent frames, latent height, latent width) for a video of this size."""
        self._check_video_size(frames, height, width)
        s = self.cfg.spatial_factor
        return self.cfg.z_dim, 1 + (frames - 1) // self.cfg.temporal_factor, height // s, width // s

    def _check_video_size(self, frames: int, height: int, width: int) -> None:
        tf, s = self.cfg.temporal_factor, self.cfg.spatial_factor
        if frames < 1 or (frames - 1) % tf:
            raise InputError(f"video has {frames} frames; expected 1 + {tf}k frames (1, 5, 9, ..., 81)")
        if height < s or width < s or height % s or width % s:
            raise InputError(f"video size {height}x{width}: expected height and width multiples of {s}")

    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (1, self.cfg.z_dim, 1, 1, 1)
        mean = torch.tensor(self.cfg.latents_mean, device=like.device, dtype=like.dtype).view(shape)
        std = torch.tensor(self.cfg.latents_std, device=like.device, dtype=like.dtype).view(shape)
        return mean, std

    def normalize(self, mu: torch.Tensor) -> torch.Tensor:
        """Raw posterior mean → the diffusion model's latent space."""
        mean, std = self._stats(mu)
        return (mu - mean) / std

    def denormalize(self, latents: torch.Tensor) -> torch.Tensor:
        """Diffusion-space latents → raw decoder input."""
        mean, std = self._stats(latents)
        return latents * std + mean

    def _param(self) -> torch.Tensor:
        return self.conv2.weight

    # ----------------------------------------------------------------- encoding
    def encode_moments(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Un-normalised posterior (mean, log-variance) for ``video`` [B, 3, T, H, W] in [-1, 1]."""
        if video.ndim != 5 or video.shape[1] != 3:
            raise InputError(
                f"video of shape {tuple(video.shape)}: expected [batch, 3, frames, height, width]"
            )
        self._check_video_size(*video.shape[2:])
        p = self._param()
        video = video.to(device=p.device, dtype=p.dtype)
        cache = FeatureCache()
        tf = self.cfg.temporal_factor
        chunks = [video[:, :, :1]] + [video[:, :, i : i + tf] for i in range(1, video.shape[2], tf)]
        outs = []
        for chunk in chunks:
            cache.rewind()
            outs.append(self.encoder(chunk, cache))
        mu, logvar = self.conv1(torch.cat(outs, dim=2)).chunk(2, dim=1)
        return mu, logvar

    def encode(
        self, video: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Normalised latents [B, z, 1 + (T-1)/4, H/8, W/8]: the posterior mean, or a draw if ``sample``."""
        mu, logvar = self.encode_moments(video)
        if sample:
            std = torch.exp(0.5 * logvar.clamp(-30.0, 20.0))
            noise = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
            mu = mu + std * noise
        return self.normalize(mu)

    # ----------------------------------------------------------------- decoding
    def _decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        x = self.conv2(z)
        cache = FeatureCache()
        frames = []
        for t in range(x.shape[2]):
            cache.rewind()
            frames.append(self.decoder(x[:, :, t : t + 1], cache))
        return torch.cat(frames, dim=2)

    def untiled_decode_bytes(self, h: int, w: int) -> int:
        """Estimated extra device memory of an untiled decode of latents h × w (any frame count: frames
        are decoded one latent frame at a time). Why: tiling is the memory fallback, and it costs work —
        336×592 (42×74 latents) in 34×34 tiles decodes 8 tiles, 3× the pixels."""
        return int(
            UNTILED_DECODE_ELEMS_PER_PIXEL * h * w * self.cfg.spatial_factor**2 * self._param().element_size()
        )

    def decode(
        self,
        latents: torch.Tensor,
        tiled: bool = False,
        tile_size: TileSpec = (34, 34),
        tile_stride: TileSpec = (18, 16),
    ) -> torch.Tensor:
        """Normalised latents [B, z, t, h, w] → video [B, 3, 1 + 4(t-1), 8h, 8w] clamped to [-1, 1].

        With ``tiled``, overlapping spatial tiles of ``tile_size`` latent pixels, ``tile_stride`` apart, are
        decoded separately and cross-faded linearly across their overlaps.
        """
        if latents.ndim != 5 or latents.shape[1] != self.cfg.z_dim or latents.shape[2] < 1:
            raise InputError(
                f"latents of shape {tuple(latents.shape)}: expected [batch, {self.cfg.z_dim}, frames, height, width]"
            )
        p = self._param()
        z = self.denormalize(latents.to(device=p.device, dtype=p.dtype))
        out = self._decode_tiled(z, tile_size, tile_stride) if tiled else self._decode_raw(z)
        return out.clamp_(-1.0, 1.0)

    def _decode_tiled(self, z: torch.Tensor, tile_size: TileSpec, tile_stride: TileSpec) -> torch.Tensor:
        (th, tw), (sh, sw) = _pair(tile_size, "tile_size"), _pair(tile_stride, "tile_stride")
        if sh > th or sw > tw:
            raise InputError(f"tile_stride {(sh, sw)} exceeds tile_size {(th, tw)}: tiles would leave gaps")
        b, _, t, h, w = z.shape
        f, tf = self.cfg.spatial_factor, self.cfg.temporal_factor
        rows, cols = _tile_starts(h, th, sh), _tile_starts(w, tw, sw)
        log.debug("tiled VAE decode: %d x %d tiles of %dx%d latents", len(rows), len(cols), th, tw)
        out = z.new_zeros(b, 3, 1 + (t - 1) * tf, h * f, w * f)
        total = z.new_zeros(1, 1, 1, h * f, w * f)
        for i, r in enumerate(rows):
            wr = _blend_ramp(rows, i, th, h, f).to(z)
            for j, c in enumerate(cols):
                wc = _blend_ramp(cols, j, tw, w, f).to(z)
                weight = (wr[:, None] * wc[None, :]).view(1, 1, 1, wr.numel(), wc.numel())
                tile = self._decode_raw(z[:, :, :, r : r + th, c : c + tw])
                ys, xs = slice(r * f, r * f + wr.numel()), slice(c * f, c * f + wc.numel())
                out[..., ys, xs] += tile * weight
                total[..., ys, xs] += weight
        return out / total


# Live elements per output pixel at the decoder's peak (about 14 of the 96-channel maps of the 4 frames one
# latent frame becomes). Measured on an H200, fp32 VAE: 4.08 GiB extra at 336×592 and 8.18 GiB at 480×832,
# i.e. 5,510 and 5,500 per pixel (bench e2e14 rows "VAE decode untiled", bench/results/issue12_h200_*).
UNTILED_DECODE_ELEMS_PER_PIXEL = 5600


def load_wan_vae(
    path: str | Path,
    cfg: WanVAEConfig | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> WanVAE:
    """Build on the meta device and strictly load a flat state dict (``Wan2.1_VAE.pth`` or safetensors)."""
    cfg = cfg or wan_vae_config("wan2.1")
    with torch.device("meta"):
        model = WanVAE(cfg)
    state = read_state_dict(path, device=str(device))
    load_into_model(model, state, source=str(path), strict=True, dtype=dtype)
    return model.eval().requires_grad_(False)
