"""DPT fusion blocks (``scratch.refinenetN``) shared by the depth and point heads, as in VGGT.

Note the VGGT quirk kept on purpose: the residual unit's ReLU is in-place, so its skip connection adds
``relu(x)``, not ``x``. Reproducing it is required for the official weights to behave identically.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResidualConvUnit(nn.Module):
    """``relu(x) + conv2(relu(conv1(relu(x))))`` (skip of the activated input, see module note)."""

    def __init__(self, features: int):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        return self.conv2(F.relu(self.conv1(x))) + x


class FeatureFusionBlock(nn.Module):
    """Adds the skip level (through ``resConfUnit1``), refines, resizes bilinearly, projects (``out_conv``).

    The deepest block (``refinenet4``) has no skip input and therefore no ``resConfUnit1``.
    """

    def __init__(self, features: int, has_residual: bool = True):
        super().__init__()
        self.has_residual = has_residual
        if has_residual:
            self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)
        self.out_conv = nn.Conv2d(features, features, 1)

    def forward(
        self, x: torch.Tensor, skip: torch.Tensor | None = None, size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        if size is None:
            size = (x.shape[-2] * 2, x.shape[-1] * 2)
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        return self.out_conv(x)


class Scratch(nn.Module):
    """``scratch.*``: per-level 3×3 projections to ``features``, fusion 4→1 and the output convolutions."""

    def __init__(self, in_channels: tuple[int, ...], features: int, hidden: int, output_dim: int):
        super().__init__()
        if len(in_channels) != 4:
            raise ValueError(f"DPT fusion expects 4 levels, got {len(in_channels)}")
        for i, c in enumerate(in_channels, start=1):
            setattr(self, f"layer{i}_rn", nn.Conv2d(c, features, 3, padding=1, bias=False))
        self.refinenet1 = FeatureFusionBlock(features)
        self.refinenet2 = FeatureFusionBlock(features)
        self.refinenet3 = FeatureFusionBlock(features)
        self.refinenet4 = FeatureFusionBlock(features, has_residual=False)
        self.output_conv1 = nn.Conv2d(features, features // 2, 3, padding=1)
        self.output_conv2 = nn.Sequential(
            nn.Conv2d(features // 2, hidden, 3, padding=1), nn.ReLU(), nn.Conv2d(hidden, output_dim, 1)
        )

    def fuse(self, levels: list[torch.Tensor]) -> torch.Tensor:
        """Four feature maps (finest first) → ``output_conv1`` features at twice the finest resolution."""
        l1, l2, l3, l4 = (getattr(self, f"layer{i}_rn")(x) for i, x in enumerate(levels, start=1))
        out = self.refinenet4(l4, size=tuple(l3.shape[-2:]))
        out = self.refinenet3(out, l3, size=tuple(l2.shape[-2:]))
        out = self.refinenet2(out, l2, size=tuple(l1.shape[-2:]))
        out = self.refinenet1(out, l1)
        return self.output_conv1(out)
