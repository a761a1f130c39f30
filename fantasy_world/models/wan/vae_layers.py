"""Building blocks of Wan2.1's causal video VAE, with a chunk-to-chunk feature cache.

The VAE (and FantasyWorld's causal temporal upsamplers in the DPT heads) process a video a few frames at a
time. Every temporal 3-D convolution keeps the last frames of its input in a :class:`FeatureCache` slot so
the next chunk sees the same context it would have seen in one long pass, without holding all activations.
Slots are claimed in call order, so a cache must be :meth:`FeatureCache.rewind`-ed before each chunk and a
fresh cache used per video. Module and parameter names follow the public ``Wan2.1_VAE.pth`` layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

CACHE_FRAMES = 2
"""How many trailing input frames a 3-tap temporal convolution carries to the next chunk."""

ResampleMode = Literal["none", "upsample2d", "upsample3d", "downsample2d", "downsample3d"]


@dataclass
class FeatureCache:
    """Trailing frames of each cached layer's input, carried from one chunk to the next.

    ``None`` in a slot means the layer has not seen a chunk yet (it then pads causally with zeros).
    """

    slots: list[torch.Tensor | None] = field(default_factory=list)
    cursor: int = 0

    def rewind(self) -> None:
        """Call before each chunk: layers claim slots in the same order every chunk."""
        self.cursor = 0

    def claim(self) -> int:
        """Next slot index for the calling layer (slots are created on first use)."""
        if self.cursor == len(self.slots):
            self.slots.append(None)
        index = self.cursor
        self.cursor += 1
        return index

    def peek(self) -> torch.Tensor | None:
        """What the next :meth:`claim` would find, without claiming it."""
        return self.slots[self.cursor] if self.cursor < len(self.slots) else None

    def clear(self) -> None:
        """Drop all carried frames (start of a new video)."""
        self.slots.clear()
        self.cursor = 0


class CausalConv3d(nn.Conv3d):
    """3-D convolution padded only on the past side in time (``2 * pad_t`` frames, none after).

    ``forward(x, past)`` prepends frames carried from the previous chunk; they replace as much of the
    zero padding as they cover, so chunked and one-shot results agree.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int, int],
        stride: int | tuple[int, int, int] = 1,
        padding: int | tuple[int, int, int] = 0,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding)
        pad_t, pad_h, pad_w = self.padding  # type: ignore[misc]
        # F.pad order: (w_left, w_right, h_top, h_bottom, t_front, t_back)
        self._causal_pad = (pad_w, pad_w, pad_h, pad_h, 2 * pad_t, 0)
        self.padding = (0, 0, 0)

    def forward(self, x: torch.Tensor, past: torch.Tensor | None = None) -> torch.Tensor:
        pad = list(self._causal_pad)
        if past is not None and pad[4] > 0:
            x = torch.cat([past.to(device=x.device, dtype=x.dtype), x], dim=2)
            pad[4] = max(pad[4] - past.shape[2], 0)
        x = F.pad(x, pad)
        if _use_onednn(x, self.weight):
            return torch.mkldnn_convolution(
                x, self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups
            )
        return super().forward(x)


def _use_onednn(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether to call oneDNN directly: PyTorch's CPU heuristic sends small batch-1 video convolutions
    (one decoded frame, narrow widths) to a reference kernel that is ~10-25x slower."""
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and torch.backends.mkldnn.is_available()
        and torch.backends.mkldnn.enabled
    )


def cached_causal_conv(conv: CausalConv3d, x: torch.Tensor, cache: FeatureCache | None) -> torch.Tensor:
    """Run ``conv`` on a chunk, feeding it the previous chunk's tail and storing this chunk's tail."""
    if cache is None:
        return conv(x)
    slot = cache.claim()
    past = cache.slots[slot]
    tail = x[:, :, -CACHE_FRAMES:].clone()
    if tail.shape[2] < CACHE_FRAMES and past is not None:
        # a one-frame chunk: keep the newest carried frame so two frames of context survive
        tail = torch.cat([past[:, :, -1:].to(tail.device), tail], dim=2)
    out = conv(x, past)
    cache.slots[slot] = tail
    return out


def causal_time_upsample(time_conv: CausalConv3d, x: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
    """Wan's 2× causal temporal upsampling of a chunk: ``time_conv`` makes 2C channels per frame.

    The first chunk of a video passes through untouched and leaves zeros as the next chunk's past (Wan's
    "Rep" marker); later chunks get two output frames per input frame, channels [0:C] frame 2i and
    [C:2C] frame 2i+1.
    """
    if cache.peek() is None:
        cache.slots[cache.claim()] = torch.zeros_like(x[:, :, -1:])
        return x
    y = cached_causal_conv(time_conv, x, cache)
    b, c, t, h, w = x.shape
    return y.reshape(b, 2, c, t, h, w).permute(0, 2, 3, 1, 4, 5).reshape(b, c, 2 * t, h, w)


class ChannelRMSNorm(nn.Module):
    """RMS normalisation over the channel axis (dim 1) with a learned per-channel gain ``gamma``.

    ``images=True`` gives ``gamma`` the shape ``(C, 1, 1)`` used for 4-D tensors (attention), otherwise
    ``(C, 1, 1, 1)`` for 5-D video tensors; both shapes match the public checkpoint.
    """

    def __init__(self, dim: int, images: bool = False, eps: float = 1e-12) -> None:
        super().__init__()
        self.scale = dim**0.5
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones((dim, 1, 1) if images else (dim, 1, 1, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1, eps=self.eps) * self.scale * self.gamma


class ResidualBlock(nn.Module):
    """Norm–SiLU–conv ×2 with a 1×1×1 shortcut when the width changes (``residual.{0,2,3,6}``)."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            ChannelRMSNorm(in_dim),
            nn.SiLU(),
            CausalConv3d(in_dim, out_dim, 3, padding=1),
            ChannelRMSNorm(out_dim),
            nn.SiLU(),
            nn.Dropout(dropout),
            CausalConv3d(out_dim, out_dim, 3, padding=1),
        )
        self.shortcut: nn.Module = CausalConv3d(in_dim, out_dim, 1) if in_dim != out_dim else nn.Identity()

    def forward(self, x: torch.Tensor, cache: FeatureCache | None = None) -> torch.Tensor:
        skip = self.shortcut(x)
        for layer in self.residual:
            x = cached_causal_conv(layer, x, cache) if isinstance(layer, CausalConv3d) else layer(x)
        return x + skip


class AttentionBlock(nn.Module):
    """Single-head self-attention over the pixels of each frame separately (no temporal mixing)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = ChannelRMSNorm(dim, images=True)
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1)
        self.proj = nn.Conv2d(dim, dim, 1)
        nn.init.zeros_(self.proj.weight)  # as in Wan2.1: a freshly built block starts as the identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)
        qkv = self.to_qkv(self.norm(frames)).reshape(b * t, 1, 3 * c, h * w).transpose(-1, -2)
        q, k, v = qkv.chunk(3, dim=-1)
        out = F.scaled_dot_product_attention(q, k, v)
        out = self.proj(out.squeeze(1).transpose(1, 2).reshape(b * t, c, h, w))
        return x + out.reshape(b, t, c, h, w).transpose(1, 2)


class _NearestUp2x(nn.Module):
    """2× nearest spatial upsampling computed in float32 (nearest on bf16 is unsupported on some devices)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x.float(), scale_factor=2.0, mode="nearest-exact").type_as(x)


class Resample(nn.Module):
    """Spatial 2× up/down-sampling per frame, optionally with causal 2× temporal up/down-sampling.

    * ``upsample3d``: ``time_conv`` (C → 2C, 3 taps) doubles the frame count of every chunk after the
      first, interleaving its two halves; the first chunk passes through unchanged (1 → 1 frame), so a
      causal decoder maps 1 + k latent frames to 1 + 2k, and twice that to 1 + 4k.
    * ``downsample3d``: ``time_conv`` (3 taps, stride 2) halves every chunk after the first, using the
      previous chunk's last frame as context; the first chunk is kept as is.
    * Upsampling also halves the channel count (``resample.1`` is a 3×3 conv C → C/2).

    Without a cache the input is treated as a first chunk (no temporal resampling), as in Wan2.1.
    """

    def __init__(self, dim: int, mode: ResampleMode) -> None:
        super().__init__()
        self.dim = dim
        self.mode = mode
        self.time_conv: CausalConv3d | None = None
        if mode in ("upsample2d", "upsample3d"):
            self.resample: nn.Module = nn.Sequential(_NearestUp2x(), nn.Conv2d(dim, dim // 2, 3, padding=1))
        elif mode in ("downsample2d", "downsample3d"):
            self.resample = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(dim, dim, 3, stride=2))
        elif mode == "none":
            self.resample = nn.Identity()
        else:
            raise ValueError(f"Resample mode {mode!r}: expected one of {ResampleMode.__args__}")
        if mode == "upsample3d":
            self.time_conv = CausalConv3d(dim, dim * 2, (3, 1, 1), padding=(1, 0, 0))
        elif mode == "downsample3d":
            self.time_conv = CausalConv3d(dim, dim, (3, 1, 1), stride=(2, 1, 1))

    def forward(self, x: torch.Tensor, cache: FeatureCache | None = None) -> torch.Tensor:
        if self.mode == "upsample3d" and cache is not None:
            x = causal_time_upsample(self.time_conv, x, cache)
        b, c, t, h, w = x.shape
        frames = self.resample(x.transpose(1, 2).reshape(b * t, c, h, w))
        x = frames.reshape(b, t, *frames.shape[1:]).transpose(1, 2)
        if self.mode == "downsample3d" and cache is not None:
            x = self._time_downsample(x, cache)
        return x

    def _time_downsample(self, x: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
        assert self.time_conv is not None
        slot = cache.claim()
        past = cache.slots[slot]
        cache.slots[slot] = x[:, :, -1:].clone()
        if past is None:
            return x
        return self.time_conv(torch.cat([past[:, :, -1:].to(x.device), x], dim=2))
