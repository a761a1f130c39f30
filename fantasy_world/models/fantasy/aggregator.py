"""Geometry-branch token layout and frame blocks (the official ``vggt.aggregator``).

Each latent frame becomes one "view" of ``[camera(1) | register(n) | patches(h·w)]`` tokens. The learned
camera/register tokens have two versions: index 0 for the first latent frame (the reference frame, which
is also the conditioning image for I2V) and index 1 for every later frame. Special tokens sit at 2-D
position (0, 0) and patch (y, x) at (y+1, x+1). Frame blocks attend within one view ([B·S, P, D]); the
global blocks (owned by the IRG blocks, as in the official layout) attend across all views ([B, S·P, D]).
"""

from __future__ import annotations

import torch
from torch import nn

from fantasy_world.errors import InputError
from fantasy_world.models.fantasy.layers.geometry_block import GeometryBlock
from fantasy_world.models.fantasy.layers.rope2d import patch_positions


class CamTokenProjector(nn.Module):
    """Known camera poses -> one camera token per latent frame (official; unused at official inference).

    The official packing appends ``group - 1`` copies of frame 0's 9-d pose after the last frame and
    concatenates consecutive groups of ``group`` poses, so 1+4k frames give 1+k tokens. (Those groups do
    not follow the VAE's 1+4k grouping; we keep the official rule so its weights mean the same thing.)
    """

    def __init__(self, pose_dim: int, group: int, hidden: int, dim: int) -> None:
        super().__init__()
        self.pose_dim = pose_dim
        self.group = group
        self.mlp = nn.Sequential(nn.Linear(pose_dim * group, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, pose_enc: torch.Tensor) -> torch.Tensor:
        """pose_enc [B, T, pose_dim] with T = 1 + group·k -> camera tokens [B, 1+k, dim]."""
        b, t, d = pose_enc.shape
        if d != self.pose_dim or (t - 1) % self.group:
            raise InputError(
                f"camera poses shape {tuple(pose_enc.shape)}: expected [B, 1+{self.group}k, {self.pose_dim}]"
            )
        pad = pose_enc[:, :1].expand(b, self.group - 1, d)
        packed = torch.cat([pose_enc, pad], dim=1).reshape(b, -1, self.group * d)
        return self.mlp(packed.to(self.mlp[0].weight.dtype))


class GeometryAggregator(nn.Module):
    """Special tokens, positions and the per-frame blocks of the geometry branch."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        depth: int,
        mlp_ratio: float,
        num_register: int,
        init_values: float,
        rope_freq: float,
        pose_dim: int,
        pose_group: int,
        cam_proj_hidden: int,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.num_register = num_register
        self.camera_token = nn.Parameter(torch.randn(1, 2, 1, dim) * 1e-6)
        self.register_token = nn.Parameter(torch.randn(1, 2, num_register, dim) * 1e-6)
        self.cam_token_projector = CamTokenProjector(pose_dim, pose_group, cam_proj_hidden, dim)
        self.frame_blocks = nn.ModuleList(
            GeometryBlock(dim, num_heads, mlp_ratio=mlp_ratio, init_values=init_values, rope_freq=rope_freq)
            for _ in range(depth)
        )

    @property
    def num_special(self) -> int:
        """Camera + register tokens per frame; patches start at this index."""
        return 1 + self.num_register

    def _per_frame(self, token: torch.Tensor, batch: int, frames: int) -> torch.Tensor:
        first = token[:, :1].expand(batch, 1, *token.shape[2:])
        rest = token[:, 1:2].expand(batch, frames - 1, *token.shape[2:])
        return torch.cat([first, rest], dim=1)

    def build_tokens(self, patches: torch.Tensor, camera_tokens: torch.Tensor | None = None) -> torch.Tensor:
        """patches [B, S, h·w, D] -> tokens [B·S, P, D] laid out as [camera | registers | patches].

        ``camera_tokens`` [B, S, D] (e.g. from ``cam_token_projector``) replace the learned camera token.
        """
        b, s, _, d = patches.shape
        if d != self.dim:
            raise InputError(f"geometry patches width {d}: expected {self.dim}")
        dtype = patches.dtype
        if camera_tokens is None:
            cam = self._per_frame(self.camera_token, b, s).to(dtype)
        else:
            if tuple(camera_tokens.shape) != (b, s, d):
                raise InputError(f"camera tokens shape {tuple(camera_tokens.shape)}: expected {(b, s, d)}")
            cam = camera_tokens.to(dtype).unsqueeze(2)
        reg = self._per_frame(self.register_token, b, s).to(dtype)
        return torch.cat([cam, reg, patches], dim=2).reshape(b * s, -1, d)

    def positions(self, views: int, h: int, w: int, device: torch.device | str) -> torch.Tensor:
        """2-D positions [views, P, 2] for one view layout."""
        return patch_positions(views, h, w, self.num_special, device)
