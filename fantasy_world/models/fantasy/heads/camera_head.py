"""Camera head of FantasyWorld (official ``CameraHead``): 9-d pose per video frame by iterative refinement.

Input: the camera tokens (token 0) of the last intermediate, one per latent frame [B, S, C]. Latent frame
0 is normalised by ``token_norm``; latents 1..S−1 are *not* normalised (an official quirk) and go through
``camera_time_upsample`` (1×1 Conv1d C → 4C, then a reshape to 4(S−1) tokens in **block order**: output
token m = k·N + n is sub-slot k of latent n, N = S−1). The 1 + 4(S−1) pose tokens are refined
``num_iterations`` times: an AdaLN from the embedded previous estimate, the trunk of plain VGGT blocks (no
RoPE, no QK-norm, ``modulation`` unused), ``trunk_norm`` and ``pose_branch`` producing a delta.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..layers import GeometryBlock, Mlp
from ..precision import compute_dtype, compute_precision
from .activations import PoseActivation, activate_pose


@dataclass(frozen=True)
class CameraHeadConfig:
    """Widths and depths; defaults are the official camera head (dim_in = 2 × geometry width)."""

    dim_in: int = 2048
    trunk_depth: int = 4
    num_heads: int = 16
    mlp_ratio: float = 4.0
    init_values: float = 0.01
    target_dim: int = 9
    time_factor: int = 4
    num_iterations: int = 4
    trans_act: PoseActivation = "linear"
    quat_act: PoseActivation = "linear"
    fov_act: PoseActivation = "relu"


class ChannelExpandAndReshape(nn.Module):
    """[B, N, C] → [B, r·N, C] by a 1×1 Conv1d to r·C channels and the official raw reshape.

    The conv output [B, r·C, N] is reshaped to [B, C, r·N]: token m = k·N + n takes channels
    {r·c + k} of latent n, i.e. the r sub-frames come out in blocks, not interleaved per latent.
    """

    def __init__(self, channels: int, factor: int = 4):
        super().__init__()
        self.factor = factor
        self.expand_channels = nn.Conv1d(channels, factor * channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        y = self.expand_channels(x.transpose(1, 2))  # [B, r·C, N]
        return y.reshape(b, c, self.factor * n).transpose(1, 2)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """DiT-style ``x·(1 + scale) + shift``."""
    return x * (1 + scale) + shift


class CameraHead(nn.Module):
    """Pose tokens → list of activated ``absT_quaR_FoV`` encodings [B, T, 9], one per iteration."""

    def __init__(self, cfg: CameraHeadConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.dim_in
        self.trunk = nn.ModuleList(
            [
                GeometryBlock(
                    d,
                    cfg.num_heads,
                    mlp_ratio=cfg.mlp_ratio,
                    qk_norm=False,
                    init_values=cfg.init_values,
                    rope=False,
                )
                for _ in range(cfg.trunk_depth)
            ]
        )
        self.token_norm = nn.LayerNorm(d)
        self.trunk_norm = nn.LayerNorm(d)
        self.empty_pose_tokens = nn.Parameter(torch.zeros(1, 1, cfg.target_dim))
        self.embed_pose = nn.Linear(cfg.target_dim, d)
        self.poseLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(d, 3 * d))
        self.camera_time_upsample = ChannelExpandAndReshape(d, cfg.time_factor)
        self.adaln_norm = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.pose_branch = Mlp(d, d // 2, cfg.target_dim)

    def pose_tokens(self, camera_tokens: torch.Tensor) -> torch.Tensor:
        """[B, S, C] per-latent camera tokens → [B, 1 + r(S−1), C] per-frame pose tokens."""
        first = self.token_norm(camera_tokens[:, :1])
        if camera_tokens.shape[1] == 1:
            return first
        return torch.cat([first, self.camera_time_upsample(camera_tokens[:, 1:])], dim=1)

    def forward(
        self, intermediates: Sequence[torch.Tensor], num_iterations: int | None = None
    ) -> list[torch.Tensor]:
        """intermediates: per-layer [B, S, P, C]; the last one's token 0 is used. Returns one [B, T, 9]
        per iteration; the last is the prediction. With bf16 weights it computes in fp32 (``precision.py``):
        one token per frame makes that cheap, and the refinement sums deltas into the pose."""
        with compute_precision(self, "fp32"):
            tokens = self.pose_tokens(intermediates[-1][:, :, 0].to(compute_dtype(self)))
            return self.refine(tokens, num_iterations or self.cfg.num_iterations)

    def refine(self, tokens: torch.Tensor, num_iterations: int) -> list[torch.Tensor]:
        """Iterative refinement; the raw (pre-activation) estimate is detached before being re-embedded."""
        b, t, _ = tokens.shape
        raw: torch.Tensor | None = None
        outputs: list[torch.Tensor] = []
        for _ in range(num_iterations):
            if raw is None:
                cond = self.embed_pose(self.empty_pose_tokens.expand(b, t, -1))
            else:
                cond = self.embed_pose(raw.detach())
            shift, scale, gate = self.poseLN_modulation(cond).chunk(3, dim=-1)
            x = gate * modulate(self.adaln_norm(tokens), shift, scale) + tokens
            for block in self.trunk:
                x = block(x)
            delta = self.pose_branch(self.trunk_norm(x))
            raw = delta if raw is None else raw + delta
            outputs.append(activate_pose(raw, self.cfg.trans_act, self.cfg.quat_act, self.cfg.fov_act))
        return outputs
