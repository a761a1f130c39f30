"""Wan-Fun's camera control adapter (Wan2.2-Fun-A14B-Control-Camera), the camera path of FantasyWorld on Wan2.2.

The Wan2.1 model injects the camera through adapters inside the cross-attentions; Wan2.2-Fun instead adds a
per-token camera feature to the patch embeddings, before any block runs (official ``patchify``):

1. :func:`pack_plucker_control`: Plücker maps of all T = 1 + 4(F-1) video frames, frame 0 repeated 4×,
   grouped in fours along time, each group's 4·6 values stacked as channel ``4·c + sub_frame`` →
   [B, 24, F, H, W] (``inference_wan22.py`` L204–218);
2. :class:`ControlAdapter` (``SimpleAdapter``): per latent frame, PixelUnshuffle(8) → Conv2d
   (24·64 = 1536 → dim, kernel = stride = the DiT's spatial patch) → residual block(s) (two 3×3 convs) →
   one ``dim`` vector per video token, in the token order of ``patchify`` (f, h, w).

The adapter is registered on the DiT as ``dit.control_adapter`` (official key ``pipe.dit.control_adapter``;
the Wan2.2-Fun base shards ship it as ``control_adapter.*``). Unlike the official ``patchify``, which keeps
only batch element 0 when the adapter is on, every batch element keeps its own sum here.
"""

from __future__ import annotations

import torch
from torch import nn

from fantasy_world.errors import InputError


def pack_plucker_control(plucker: torch.Tensor, group: int = 4) -> torch.Tensor:
    """Plücker maps [B, T, H, W, C] (T = 1 + group·(F−1)) -> control latents [B, group·C, F, H, W].

    Frame 0 is repeated ``group`` times so frames group as 1 + 4k like the VAE's latents; channel
    ``group·c + s`` of latent frame f holds channel c of video frame ``group·f + s`` of the padded sequence.
    """
    if plucker.ndim != 5:
        raise InputError(f"Plücker maps shape {tuple(plucker.shape)}: expected [B, T, H, W, C]")
    b, t, h, w, c = plucker.shape
    if t < 1 or (t - 1) % group:
        raise InputError(f"Plücker maps have {t} frames: expected 1 + {group}·k frames (e.g. 81)")
    video = plucker.permute(0, 1, 4, 2, 3)  # [B, T, C, H, W]
    padded = torch.cat([video[:, :1].expand(b, group, c, h, w), video[:, 1:]], dim=1)
    f = padded.shape[1] // group
    grouped = padded.reshape(b, f, group, c, h, w).transpose(2, 3)  # [B, F, C, group, H, W]
    return grouped.reshape(b, f, c * group, h, w).transpose(1, 2).contiguous()


class ControlResidualBlock(nn.Module):
    """``x + conv2(relu(conv1(x)))`` with 3×3 convolutions that keep the width."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(dim, dim, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(torch.relu(self.conv1(x)))


class ControlAdapter(nn.Module):
    """Control latents [B, C, F, H, W] -> per-token features [B, F·(H/ds/ph)·(W/ds/pw), dim]."""

    def __init__(
        self,
        in_channels: int,
        dim: int,
        patch: tuple[int, int],
        downscale: int = 8,
        residual_blocks: int = 1,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.patch = tuple(patch)
        self.downscale = downscale
        self.pixel_unshuffle = nn.PixelUnshuffle(downscale)
        self.conv = nn.Conv2d(in_channels * downscale * downscale, dim, kernel_size=patch, stride=patch)
        self.residual_blocks = nn.Sequential(*(ControlResidualBlock(dim) for _ in range(residual_blocks)))

    def forward(self, control: torch.Tensor) -> torch.Tensor:
        if control.ndim != 5 or control.shape[1] != self.in_channels:
            raise InputError(
                f"control latents shape {tuple(control.shape)}: expected [B, {self.in_channels}, F, H, W]"
            )
        b, c, f, h, w = control.shape
        step_h, step_w = self.downscale * self.patch[0], self.downscale * self.patch[1]
        if h % step_h or w % step_w:
            raise InputError(f"control latents size {h}x{w}: expected multiples of {step_h}x{step_w}")
        frames = control.transpose(1, 2).reshape(b * f, c, h, w).to(self.conv.weight.dtype)
        out = self.residual_blocks(self.conv(self.pixel_unshuffle(frames)))  # [B·F, dim, h', w']
        return out.reshape(b, f, out.shape[1], -1).permute(0, 1, 3, 2).reshape(b, -1, out.shape[1])


def install_control_adapter(dit: nn.Module, adapter: ControlAdapter) -> None:
    """Register ``adapter`` as ``dit.control_adapter`` (its key prefix in the official and Wan-Fun files)."""
    dit.add_module("control_adapter", adapter)
