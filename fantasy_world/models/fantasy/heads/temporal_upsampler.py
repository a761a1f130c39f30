"""Causal temporal upsampler of the DPT heads (official ``WanVAE_(z_dim=c, location="DPT")``).

It is the temporal half of Wan's VAE decoder at one width ``c``, with no spatial resampling:
``conv2`` (pointwise CausalConv3d) → ``decoder.upsamples`` = [time-upsample, half residual block] × stages.
Decoding runs latent frame by latent frame with a feature cache, like Wan's VAE: latent 0 passes through
unchanged (1 frame) and every later latent yields ``2**stages`` frames, so S latents → 1 + 4(S−1) frames
for the official two stages. Everything is causal: output frames never depend on later latents.

Compared with :class:`fantasy_world.models.wan.vae_layers.Resample` the DPT variant has only
``time_conv`` (no ``resample.1`` spatial conv, keeping the width), and its residual block has a single
norm–SiLU–conv (``residual.{0,2}``, no shortcut), so both are defined here on top of the VAE primitives.
"""

from __future__ import annotations

import torch
from torch import nn

from fantasy_world.models.wan.vae_layers import (
    CausalConv3d,
    ChannelRMSNorm,
    FeatureCache,
    cached_causal_conv,
    causal_time_upsample,
)


class TimeUpsample(nn.Module):
    """Causal 2× temporal upsampling: ``time_conv`` (c → 2c, 3 taps) split into even/odd output frames.

    The first chunk of a video passes through untouched; the next chunk then sees zeros as its past, not
    the first chunk (Wan's "Rep" marker). Without a cache the input is returned unchanged, as in Wan.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.time_conv = CausalConv3d(channels, 2 * channels, (3, 1, 1), padding=(1, 0, 0))

    def forward(self, x: torch.Tensor, cache: FeatureCache | None = None) -> torch.Tensor:
        if cache is None:
            return x
        return causal_time_upsample(self.time_conv, x, cache)


class HalfResidualBlock(nn.Module):
    """``x + conv3x3x3(silu(rms_norm(x)))`` with a causal cache (official ``ResidualBlock_Half``)."""

    def __init__(self, channels: int):
        super().__init__()
        self.residual = nn.Sequential(
            ChannelRMSNorm(channels), nn.SiLU(), CausalConv3d(channels, channels, 3, padding=1)
        )

    def forward(self, x: torch.Tensor, cache: FeatureCache | None = None) -> torch.Tensor:
        h = x
        for layer in self.residual:
            h = cached_causal_conv(layer, h, cache) if isinstance(layer, CausalConv3d) else layer(h)
        return x + h


class _Decoder(nn.Module):
    """Holds ``upsamples`` so parameter names read ``decoder.upsamples.N.*`` as in the checkpoint."""

    def __init__(self, channels: int, stages: int):
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(stages):
            layers += [TimeUpsample(channels), HalfResidualBlock(channels)]
        self.upsamples = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, cache: FeatureCache | None) -> torch.Tensor:
        for layer in self.upsamples:
            x = layer(x, cache)
        return x


class TemporalUpsampler(nn.Module):
    """[B, c, S, h, w] latent-frame features → [B, c, 1 + r(S−1), h, w] video-frame features, r = 2**stages."""

    def __init__(self, channels: int, stages: int = 2):
        super().__init__()
        self.channels = channels
        self.stages = stages
        self.conv2 = CausalConv3d(channels, channels, 1)
        self.decoder = _Decoder(channels, stages)

    @property
    def rate(self) -> int:
        """Video frames per latent frame after the first."""
        return 2**self.stages

    def num_frames(self, latents: int) -> int:
        """Output frame count for ``latents`` input frames."""
        return 1 + self.rate * (latents - 1) if latents > 0 else 0

    def forward(
        self, z: torch.Tensor, cache: FeatureCache | None = None, latents_per_chunk: int = 1
    ) -> torch.Tensor:
        """Decode ``z`` causally.

        Pass the same ``cache`` to later calls to continue a video with more latents (streaming); by
        default a fresh cache is used, i.e. ``z`` starts a video. Latent 0 of a video is always decoded on
        its own; ``latents_per_chunk`` > 1 decodes later latents several at a time, which gives the same
        result (the convolutions are causal and cached) with fewer calls.
        """
        cache = FeatureCache() if cache is None else cache
        x = self.conv2(z)
        outs: list[torch.Tensor] = []
        start = 0
        while start < x.shape[2]:
            size = 1 if not cache.slots else max(1, latents_per_chunk)
            cache.rewind()
            outs.append(self.decoder(x[:, :, start : start + size], cache))
            start += size
        return torch.cat(outs, dim=2)
