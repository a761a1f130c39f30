"""A training batch: clips stacked along a batch axis, plus caches filled by the data source."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from fantasy_world.data.clip import Clip
from fantasy_world.errors import InputError


@dataclass
class Batch:
    """Stacked clips on the training device (shapes as :class:`fantasy_world.data.clip.Clip`, with B first).

    ``latents`` / ``text`` are set by a clip bank that caches VAE latents and caption features.
    """

    frames: torch.Tensor  # [B, T, 3, H, W] float in [0, 1]
    depth: torch.Tensor  # [B, T, H, W] metres, 0 where invalid
    valid: torch.Tensor  # [B, T, H, W] bool
    intrinsics: torch.Tensor  # [B, T, 3, 3]
    c2w: torch.Tensor  # [B, T, 4, 4]
    captions: list[str]
    indices: list[int]
    latents: torch.Tensor | None = None
    text: torch.Tensor | None = None

    @property
    def size(self) -> int:
        return int(self.frames.shape[0])

    def video(self) -> torch.Tensor:
        """[B, 3, T, H, W] in [-1, 1], the VAE's input layout."""
        return self.frames.float().permute(0, 2, 1, 3, 4).mul(2.0).sub(1.0)


def collate_clips(clips: Sequence[Clip], indices: Sequence[int], device: torch.device) -> Batch:
    """Stack clips that all carry depth and validity (synthetic or depth-annotated real data)."""
    if not clips:
        raise InputError("collate_clips: expected at least one clip")
    for clip in clips:
        if clip.depth is None or clip.valid is None:
            raise InputError(f"clip {clip.source or '?'}: no depth; training needs depth-annotated clips")
    return Batch(
        frames=torch.stack([c.frames for c in clips]).to(device),
        depth=torch.stack([c.depth for c in clips]).to(device),
        valid=torch.stack([c.valid for c in clips]).to(device),
        intrinsics=torch.stack([c.intrinsics for c in clips]).to(device),
        c2w=torch.stack([c.c2w for c in clips]).to(device),
        captions=[c.caption for c in clips],
        indices=list(indices),
    )
