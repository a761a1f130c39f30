"""CLIP ViT-H/14 image tower that Wan2.1 I2V uses for its 257 image tokens.

Weights come from ``models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth``; only its ``visual.*`` part
is loaded (the XLM-RoBERTa text tower and ``log_scale`` are ignored). As in Wan, features are the output
of the first 31 of 32 blocks, without post norm or head; those are kept so the key set matches the file.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fantasy_world.checkpoints.io import load_into_model, read_state_dict
from fantasy_world.errors import CheckpointError, InputError

log = logging.getLogger(__name__)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_WEIGHT_FILE = "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"


@dataclass(frozen=True)
class ClipVisionConfig:
    """Vision tower sizes; ``feature_layers`` blocks run to produce the features (Wan: all but the last)."""

    image_size: int = 224
    patch_size: int = 14
    dim: int = 1280
    mlp_dim: int = 5120
    num_heads: int = 16
    num_layers: int = 32
    out_dim: int = 1024
    feature_layers: int = 31
    eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise InputError(
                f"ClipVisionConfig: image_size {self.image_size} not divisible by patch {self.patch_size}"
            )
        if self.dim % self.num_heads:
            raise InputError(f"ClipVisionConfig: dim {self.dim} not divisible by num_heads {self.num_heads}")
        if not 1 <= self.feature_layers <= self.num_layers:
            raise InputError(
                f"ClipVisionConfig: feature_layers {self.feature_layers} not in 1..{self.num_layers}"
            )

    @property
    def num_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2 + 1


CLIP_VISION_PRESETS: dict[str, ClipVisionConfig] = {
    "vit-h-14": ClipVisionConfig(),
    "vit-test": ClipVisionConfig(
        image_size=56,
        patch_size=14,
        dim=64,
        mlp_dim=256,
        num_heads=4,
        num_layers=3,
        out_dim=32,
        feature_layers=2,
    ),
}


class LayerNorm32(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the weight dtype (Wan does the same for fp16 weights)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.float() if self.weight is not None else None
        b = self.bias.float() if self.bias is not None else None
        return F.layer_norm(x.float(), self.normalized_shape, w, b, self.eps).to(x.dtype)


class SelfAttention(nn.Module):
    """Multi-head attention with one fused qkv projection ordered [q; k; v]."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.to_qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.to_qkv(x).view(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class VisionBlock(nn.Module):
    """Pre-norm transformer block with an exact-GELU MLP (``mlp.0``, ``mlp.2``)."""

    def __init__(self, cfg: ClipVisionConfig) -> None:
        super().__init__()
        self.norm1 = LayerNorm32(cfg.dim, eps=cfg.eps)
        self.attn = SelfAttention(cfg.dim, cfg.num_heads)
        self.norm2 = LayerNorm32(cfg.dim, eps=cfg.eps)
        self.mlp = nn.Sequential(nn.Linear(cfg.dim, cfg.mlp_dim), nn.GELU(), nn.Linear(cfg.mlp_dim, cfg.dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """open_clip-style ViT with class token, pre-norm and a ``[dim, out_dim]`` head matrix."""

    def __init__(self, cfg: ClipVisionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        gain = 1.0 / math.sqrt(cfg.dim)
        self.patch_embedding = nn.Conv2d(3, cfg.dim, cfg.patch_size, stride=cfg.patch_size, bias=False)
        self.cls_embedding = nn.Parameter(gain * torch.randn(1, 1, cfg.dim))
        self.pos_embedding = nn.Parameter(gain * torch.randn(1, cfg.num_tokens, cfg.dim))
        self.pre_norm = LayerNorm32(cfg.dim, eps=cfg.eps)
        self.transformer = nn.Sequential(*(VisionBlock(cfg) for _ in range(cfg.num_layers)))
        self.post_norm = LayerNorm32(cfg.dim, eps=cfg.eps)
        self.head = nn.Parameter(gain * torch.randn(cfg.dim, cfg.out_dim))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Normalised pixels ``[B, 3, S, S]`` -> tokens ``[B, 1 + (S/p)^2, dim]`` after ``feature_layers`` blocks."""
        x = self.patch_embedding(pixels.to(self.patch_embedding.weight.dtype)).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_embedding.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        x = self.pre_norm(x + self.pos_embedding.to(x.dtype))
        return self.transformer[: self.cfg.feature_layers](x)


def _as_float_images(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 HWC / BHWC -> float BCHW in [-1, 1]; float BCHW is checked and passed through."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor):
        raise InputError(f"image: expected a torch tensor or numpy array, got {type(images).__name__}")
    if images.dtype == torch.uint8:
        if images.ndim == 3:
            images = images.unsqueeze(0)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise InputError(
                f"image: uint8 input must be HWC or BHWC with 3 channels, got shape {tuple(images.shape)}"
            )
        return images.permute(0, 3, 1, 2).float() / 127.5 - 1.0
    if not images.is_floating_point():
        raise InputError(f"image: expected uint8 or float values, got dtype {images.dtype}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise InputError(
            f"image: float input must be [B, 3, H, W] in [-1, 1], got shape {tuple(images.shape)}"
        )
    lo, hi = float(images.min()), float(images.max())
    if lo < -1.5 or hi > 1.5:
        raise InputError(f"image: float values must lie in [-1, 1], got range [{lo:.3g}, {hi:.3g}]")
    return images.float()


class ClipVisionEncoder(nn.Module):
    """Wan's CLIP image encoder; ``state_dict()`` keys are the ``visual.*`` keys of the open-clip file."""

    def __init__(self, cfg: ClipVisionConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or CLIP_VISION_PRESETS["vit-h-14"]
        self.visual = VisionTransformer(self.cfg)

    def preprocess(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        """[-1, 1] BCHW (or uint8 HWC/BHWC) -> bicubic resize to the model size -> CLIP mean/std, float32."""
        x = _as_float_images(images).to(self.visual.patch_embedding.weight.device)
        size = (self.cfg.image_size, self.cfg.image_size)
        x = F.interpolate(x, size=size, mode="bicubic", align_corners=False)
        mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
        return (x * 0.5 + 0.5 - mean) / std

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Already normalised ``[B, 3, S, S]`` pixels -> ``[B, num_tokens, dim]`` features."""
        return self.visual(pixels)

    @torch.no_grad()
    def encode(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Images ``[B, 3, H, W]`` in [-1, 1] (or uint8 HWC) -> features ``[B, 257, 1280]`` for ViT-H/14."""
        return self(self.preprocess(images))


def load_clip_vision(
    path: str | Path,
    cfg: ClipVisionConfig | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> ClipVisionEncoder:
    """Load the ``visual.*`` tensors of a CLIP file (or a folder holding it) strictly; frozen, eval mode."""
    path = Path(path)
    if path.is_dir() and (path / CLIP_WEIGHT_FILE).is_file():
        path = path / CLIP_WEIGHT_FILE
    state = read_state_dict(path)
    visual = {k: v for k, v in state.items() if k.startswith("visual.")}
    if not visual:
        raise CheckpointError(f"{path}: no 'visual.*' tensors; expected the open-clip ViT-H/14 CLIP weights")
    skipped = len(state) - len(visual)
    if skipped:
        log.info("%s: ignoring %d non-visual tensors (text tower, log_scale)", path, skipped)
    with torch.device("meta"):
        model = ClipVisionEncoder(cfg)
    load_into_model(model, visual, source=str(path), strict=True, dtype=dtype)
    return model.to(device=device).eval().requires_grad_(False)
