"""First- and last-frame conditioning of the Wan2.2-Fun experts (official ``WanVideoUnit_ImageEmbedderVAE``).

The DiT's 20 conditioning channels are a 4-channel mask ‖ the VAE latent of the conditioning video. The
video is the first image, grey (zero) frames, and, when given, the last image as the final frame. The
mask is 1 on every given frame: per video frame, with frame 0 repeated 4× so that frames group in fours
like the latents, then folded to [1, 4, F, h, w] (channel = position inside the group of four).
"""

from __future__ import annotations

import torch

from fantasy_world.errors import InputError


def conditioning_mask(
    frames: int, lat_h: int, lat_w: int, last_frame: bool, device: torch.device | str | None = None
) -> torch.Tensor:
    """Mask [1, 4, 1 + (frames−1)/4, lat_h, lat_w]: 1 on the first (and, if ``last_frame``, the last) frame."""
    if frames < 2 or (frames - 1) % 4:
        raise InputError(f"frames={frames}: expected 1 + 4·k frames with k >= 1 (e.g. 81)")
    per_frame = torch.zeros(frames + 3, lat_h, lat_w, device=device)
    per_frame[:4] = 1.0  # frame 0, repeated 4x
    if last_frame:
        per_frame[-1] = 1.0
    return per_frame.view(1, (frames + 3) // 4, 4, lat_h, lat_w).transpose(1, 2)


def conditioning_video(first: torch.Tensor, frames: int, last: torch.Tensor | None = None) -> torch.Tensor:
    """Video [1, 3, frames, H, W] for the VAE: ``first``, zeros, and ``last`` as the final frame if given.

    ``first``/``last`` are [3, H, W] in [-1, 1] (already resized to the generation size and RGB).
    """
    if first.ndim != 3 or first.shape[0] != 3:
        raise InputError(f"first image shape {tuple(first.shape)}: expected [3, H, W]")
    if last is not None and last.shape != first.shape:
        raise InputError(
            f"last image shape {tuple(last.shape)}: expected {tuple(first.shape)} like the first"
        )
    video = first.new_zeros(1, 3, frames, *first.shape[1:])
    video[0, :, 0] = first
    if last is not None:
        video[0, :, -1] = last
    return video
