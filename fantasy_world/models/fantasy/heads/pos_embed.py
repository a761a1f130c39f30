"""Sin-cos UV position embedding added to DPT feature maps (VGGT ``_apply_pos_embed``)."""

from __future__ import annotations

import torch


def uv_grid(width: int, height: int, aspect_ratio: float, device: torch.device | str) -> torch.Tensor:
    """[height, width, 2] (u, v) pixel-centre coordinates spanning the image diagonal's unit circle."""
    diag = (1 + aspect_ratio**2) ** 0.5
    span_x, span_y = aspect_ratio / diag, 1 / diag
    u = torch.linspace(-span_x * (width - 1) / width, span_x * (width - 1) / width, width, device=device)
    v = torch.linspace(-span_y * (height - 1) / height, span_y * (height - 1) / height, height, device=device)
    uu, vv = torch.meshgrid(u, v, indexing="xy")
    return torch.stack([uu, vv], dim=-1)


def _sincos(dim: int, pos: torch.Tensor, omega_0: float) -> torch.Tensor:
    omega = torch.arange(dim // 2, dtype=torch.float64, device=pos.device) / (dim / 2.0)
    angles = torch.outer(pos.reshape(-1).double(), 1.0 / omega_0**omega)
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


def uv_embedding(channels: int, height: int, width: int, aspect_ratio: float, device, omega_0: float = 100.0):
    """[channels, height, width]: first half encodes u, second half v, each as [sin | cos]."""
    if channels % 4:
        raise ValueError(f"UV embedding needs channels divisible by 4, got {channels}")
    grid = uv_grid(width, height, aspect_ratio, device).reshape(-1, 2)
    emb = torch.cat(
        [_sincos(channels // 2, grid[:, 0], omega_0), _sincos(channels // 2, grid[:, 1], omega_0)], -1
    )
    return emb.reshape(height, width, channels).permute(2, 0, 1)


def add_uv_embedding(x: torch.Tensor, image_hw: tuple[int, int], ratio: float = 0.1) -> torch.Tensor:
    """``x + ratio·embedding`` for x [N, C, h, w]; the aspect ratio is the full image's W/H."""
    emb = uv_embedding(x.shape[1], x.shape[-2], x.shape[-1], image_hw[1] / image_hw[0], x.device)
    return x + (emb * ratio).to(x.dtype)
