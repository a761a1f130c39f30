"""Camera pose encoder (official ``camera_condition.pose_encoder``, Wan2.1 build).

Per-frame Plücker ray maps for *every video frame* are turned into one feature per video token, on the
same (latent frame, row, column) grid as the DiT tokens: PixelUnshuffle to the latent resolution, two
1×1 conv stages each followed by a causal temporal halving (frame 0 kept, later frames averaged in
pairs: 1+4k video frames -> 1+2k -> 1+k latent frames), Wan-style patchify, then an MLP to the adapter's
context width. The features depend only on the camera path, so they are computed once per generation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fantasy_world.errors import InputError

from .precision import compute_dtype, compute_precision


def compress_time(x: torch.Tensor, batch: int) -> torch.Tensor:
    """[(B·T), C, H, W] -> [(B·T'), C, H, W]: odd T keeps frame 0 and averages the rest in pairs, even T
    averages all pairs (the official rule)."""
    bt, c, h, w = x.shape
    frames = bt // batch
    seq = x.view(batch, frames, c, h, w).permute(0, 3, 4, 2, 1).reshape(batch * h * w, c, frames)
    if frames % 2:
        rest = seq[..., 1:]
        rest = F.avg_pool1d(rest, kernel_size=2, stride=2) if rest.shape[-1] else rest
        seq = torch.cat([seq[..., :1], rest], dim=-1)
    else:
        seq = F.avg_pool1d(seq, kernel_size=2, stride=2)
    out_frames = seq.shape[-1]
    return seq.view(batch, h, w, c, out_frames).permute(0, 4, 3, 1, 2).reshape(batch * out_frames, c, h, w)


class CameraPoseEncoder(nn.Module):
    """Plücker [B, T, H, W, C] -> camera features [B, F·h·w, context_dim] (official module and key names)."""

    def __init__(
        self,
        in_channels: int,
        downscale: int,
        mid_dim: int,
        embed_dim: int,
        fc_hidden: int,
        context_dim: int,
        patch_size: tuple[int, int, int],
        groups: int = 2,
    ) -> None:
        super().__init__()
        start = in_channels * downscale**2
        self.in_channels = in_channels
        self.downscale = downscale
        self.patch_size = tuple(patch_size)
        self.context_dim = context_dim
        self.unshuffle = nn.PixelUnshuffle(downscale)
        self.controlnet_encode_first = nn.Sequential(
            nn.Conv2d(start, start, kernel_size=1),
            nn.GroupNorm(groups, start),
            nn.Conv2d(start, start, kernel_size=1),
            nn.GroupNorm(groups, start),
            nn.ReLU(),
        )
        self.controlnet_encode_second = nn.Sequential(
            nn.Conv2d(start, mid_dim, kernel_size=1), nn.GroupNorm(groups, mid_dim), nn.ReLU()
        )
        self.patch_embedding = nn.Conv3d(mid_dim, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.fc = nn.Sequential(
            nn.Linear(embed_dim, fc_hidden),
            nn.LayerNorm(fc_hidden),
            nn.GELU(),
            nn.Linear(fc_hidden, context_dim),
            nn.LayerNorm(context_dim),
        )

    def token_grid(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
        """(f, h, w) token grid the features will have for a [T, H, W] Plücker video."""
        for _ in range(2):
            frames = 1 + (frames - 1) // 2 if frames % 2 else frames // 2
        pt, ph, pw = self.patch_size
        return frames // pt, height // self.downscale // ph, width // self.downscale // pw

    def forward(self, plucker: torch.Tensor) -> torch.Tensor:
        if plucker.ndim != 5 or plucker.shape[-1] != self.in_channels:
            raise InputError(
                f"Plücker maps shape {tuple(plucker.shape)}: expected [B, T, H, W, {self.in_channels}]"
            )
        b, t, h, w, c = plucker.shape
        step = self.downscale * self.patch_size[1], self.downscale * self.patch_size[2]
        if h % step[0] or w % step[1]:
            raise InputError(f"Plücker maps size {h}x{w}: expected multiples of {step[0]}x{step[1]} pixels")
        if (t - 1) % 4:
            raise InputError(f"Plücker maps have {t} frames: expected 1+4k (one per video frame)")
        with compute_precision(self, "fp32"):  # small compute; the features feed every adapter block
            return self._encode(plucker.to(compute_dtype(self)))

    def _encode(self, plucker: torch.Tensor) -> torch.Tensor:
        b, t, h, w, c = plucker.shape
        x = plucker.permute(0, 1, 4, 2, 3).reshape(b * t, c, h, w)
        x = self.controlnet_encode_first(self.unshuffle(x))
        x = self.controlnet_encode_second(compress_time(x, b))
        x = compress_time(x, b)
        frames = x.shape[0] // b
        x = x.view(b, frames, *x.shape[1:]).permute(0, 2, 1, 3, 4)
        x = self.patch_embedding(x).flatten(2).transpose(1, 2)
        return self.fc(x)
