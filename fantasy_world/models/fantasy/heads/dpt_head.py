"""Causal 3-D DPT head of FantasyWorld (official ``DPTHead_3D_Causal``) for depth and world points.

Two stages, matching the official code:

1. Per latent frame (chunks of ``latent_chunk``): LayerNorm over the patch tokens of four intermediate
   layers → 1×1 ``projects`` → UV pos-embed ×0.1 → ``resize_layers`` (×4, ×2, ×1, ×½ of the token grid).
   Each pyramid level then goes through its own causal :class:`TemporalUpsampler`, so S latent frames
   become T = 1 + 4(S−1) video frames.
2. Per video frame (chunks of ``frame_chunk``): DPT fusion (``scratch``) → bilinear resize to the full image
   (H, W) → pos-embed → ``output_conv2`` → activation (value channels + one confidence channel).

The output therefore has the full image resolution, not the token grid's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..precision import compute_dtype, compute_precision
from .activations import ConfActivation, DenseActivation, activate_dense
from .dpt_fusion import Scratch
from .pos_embed import add_uv_embedding
from .temporal_upsampler import TemporalUpsampler


@dataclass(frozen=True)
class DPTHeadConfig:
    """Widths and layer choices; defaults are the official depth head (Wan2.1 build)."""

    dim_in: int = 2048
    patch_size: int = 16
    output_dim: int = 2
    activation: DenseActivation = "exp"
    conf_activation: ConfActivation = "expp1"
    features: int = 256
    out_channels: tuple[int, int, int, int] = (256, 512, 1024, 1024)
    intermediate_layer_idx: tuple[int, int, int, int] = (23, 17, 11, 7)
    head_hidden: int = 32
    pos_embed: bool = True
    pos_embed_ratio: float = 0.1
    temporal_stages: int = 2
    latent_chunk: int = 4
    frame_chunk: int = 16

    @classmethod
    def depth(cls, **overrides) -> DPTHeadConfig:
        """Depth head: 1 value (``exp``) + confidence."""
        return cls(**{"output_dim": 2, "activation": "exp", **overrides})

    @classmethod
    def points(cls, **overrides) -> DPTHeadConfig:
        """Point head: xyz world points (``inv_log``) + confidence."""
        return cls(**{"output_dim": 4, "activation": "inv_log", **overrides})


class DPTHead(nn.Module):
    """Dense head over geometry intermediates; see the module docstring for the data flow."""

    def __init__(self, cfg: DPTHeadConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.out_channels
        self.norm = nn.LayerNorm(cfg.dim_in)
        self.projects = nn.ModuleList([nn.Conv2d(cfg.dim_in, oc, 1) for oc in c])
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(c[0], c[0], kernel_size=4, stride=4),
                nn.ConvTranspose2d(c[1], c[1], kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(c[3], c[3], kernel_size=3, stride=2, padding=1),
            ]
        )
        self.temporal_upsamplers = nn.ModuleList([TemporalUpsampler(oc, cfg.temporal_stages) for oc in c])
        self.scratch = Scratch(c, cfg.features, cfg.head_hidden, cfg.output_dim)

    def num_frames(self, latents: int) -> int:
        """Video frames produced for ``latents`` latent frames."""
        return self.temporal_upsamplers[0].num_frames(latents)

    def forward(
        self,
        intermediates: Sequence[torch.Tensor],
        patch_start_idx: int,
        token_hw: tuple[int, int],
        image_hw: tuple[int, int],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """intermediates: every layer's [B, S, P, C] (the head picks its layers) → values [B, T, H, W, K],
        confidence [B, T, H, W] with T = 1 + 4(S−1) and (H, W) = ``image_hw``.

        With bf16 weights the convolutions run in bf16 and everything between them in fp32 (``"mixed"``,
        ``precision.py``); the output convolutions and activations run wholly in fp32."""
        with compute_precision(self, "mixed"):
            return self._forward(intermediates, patch_start_idx, token_hw, image_hw)

    def _forward(
        self,
        intermediates: Sequence[torch.Tensor],
        patch_start_idx: int,
        token_hw: tuple[int, int],
        image_hw: tuple[int, int],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        levels = self._latent_pyramid(intermediates, patch_start_idx, token_hw, image_hw)
        video = [up(level) for up, level in zip(self.temporal_upsamplers, levels)]  # [B, c, T, h, w]
        b, _, t = video[0].shape[:3]
        values, confs = [], []
        for start in range(0, t, max(1, self.cfg.frame_chunk)):
            stop = min(start + max(1, self.cfg.frame_chunk), t)
            frames = [v[:, :, start:stop].transpose(1, 2).flatten(0, 1) for v in video]
            value, conf = self._decode_frames(frames, image_hw)
            values.append(value.unflatten(0, (b, stop - start)))
            confs.append(conf.unflatten(0, (b, stop - start)))
        return torch.cat(values, dim=1), torch.cat(confs, dim=1)

    def _latent_pyramid(
        self,
        intermediates: Sequence[torch.Tensor],
        patch_start_idx: int,
        token_hw: tuple[int, int],
        image_hw: tuple[int, int],
    ) -> list[torch.Tensor]:
        """Four [B, c_l, S, h_l, w_l] feature maps from the selected layers' patch tokens."""
        h, w = token_hw
        b, s = intermediates[0].shape[:2]
        chunk = max(1, self.cfg.latent_chunk)
        dtype = compute_dtype(self)
        per_level: list[list[torch.Tensor]] = [[] for _ in self.cfg.intermediate_layer_idx]
        for start in range(0, s, chunk):
            stop = min(start + chunk, s)
            for lvl, layer in enumerate(self.cfg.intermediate_layer_idx):
                tokens = intermediates[layer][:, start:stop, patch_start_idx:].to(dtype)
                if tokens.shape[2] != h * w:
                    raise ValueError(f"layer {layer} has {tokens.shape[2]} patch tokens, token grid {h}x{w}")
                x = self.norm(tokens.flatten(0, 1))  # [b·s, h·w, C]
                x = x.transpose(1, 2).reshape(x.shape[0], -1, h, w)
                x = self.projects[lvl](x)
                if self.cfg.pos_embed:
                    x = add_uv_embedding(x, image_hw, self.cfg.pos_embed_ratio)
                x = self.resize_layers[lvl](x)
                per_level[lvl].append(x.unflatten(0, (b, stop - start)))
        return [torch.cat(parts, dim=1).transpose(1, 2) for parts in per_level]

    def _decode_frames(
        self, frames: list[torch.Tensor], image_hw: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Fuse one chunk of video frames ([N, c_l, h_l, w_l] per level) into activated full-size maps."""
        out = self.scratch.fuse(frames)
        out = F.interpolate(out, size=tuple(image_hw), mode="bilinear", align_corners=True)
        with compute_precision(self, "fp32"):
            if self.cfg.pos_embed:
                out = add_uv_embedding(out, image_hw, self.cfg.pos_embed_ratio)
            out = self.scratch.output_conv2(out)
            return activate_dense(out, self.cfg.activation, self.cfg.conf_activation)
