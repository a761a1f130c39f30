"""Configuration of the Wan2.1 diffusion transformer and the named presets we ship.

The field names follow the public Wan2.1 ``WanModel`` constructor so that a config read from a
checkpoint's ``config.json`` maps one to one; presets carry the sizes of the public checkpoints.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from fantasy_world.errors import InputError


@dataclass(frozen=True, kw_only=True)
class WanDiTConfig:
    """Sizes of a Wan2.1 DiT. ``image_input`` selects the I2V variant (CLIP tokens + ``y`` channels)."""

    dim: int
    ffn_dim: int
    num_heads: int
    num_layers: int
    in_dim: int = 16
    out_dim: int = 16
    freq_dim: int = 256
    text_dim: int = 4096
    text_len: int = 512
    patch_size: tuple[int, int, int] = (1, 2, 2)
    eps: float = 1e-6
    image_input: bool = False
    clip_dim: int = 1280
    clip_tokens: int = 257
    qk_norm: bool = True
    cross_attn_norm: bool = True
    rope_theta: float = 10000.0

    def __post_init__(self) -> None:
        for name in (
            "dim",
            "ffn_dim",
            "num_heads",
            "num_layers",
            "in_dim",
            "out_dim",
            "freq_dim",
            "text_dim",
        ):
            if getattr(self, name) <= 0:
                raise InputError(f"WanDiTConfig.{name}={getattr(self, name)}: expected a positive integer")
        if self.dim % self.num_heads:
            raise InputError(
                f"WanDiTConfig.dim={self.dim}: expected a multiple of num_heads={self.num_heads}"
            )
        if self.head_dim % 2 or self.head_dim < 6:
            raise InputError(
                f"WanDiTConfig head_dim={self.head_dim}: expected an even number >= 6 for 3-D RoPE"
            )
        if self.freq_dim % 2:
            raise InputError(f"WanDiTConfig.freq_dim={self.freq_dim}: expected an even number")
        if len(self.patch_size) != 3 or min(self.patch_size) <= 0:
            raise InputError(f"WanDiTConfig.patch_size={self.patch_size}: expected three positive integers")
        if self.text_len <= 0 or (self.image_input and self.clip_tokens <= 0):
            raise InputError("WanDiTConfig: text_len and clip_tokens must be positive")
        object.__setattr__(self, "patch_size", tuple(int(p) for p in self.patch_size))

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def patch_volume(self) -> int:
        return math.prod(self.patch_size)

    @property
    def context_tokens(self) -> int:
        """Length of the context the blocks attend to (image tokens first for I2V)."""
        return self.text_len + (self.clip_tokens if self.image_input else 0)


_PRESETS: dict[str, WanDiTConfig] = {
    "wan2.1-t2v-1.3b": WanDiTConfig(dim=1536, ffn_dim=8960, num_heads=12, num_layers=30, in_dim=16),
    "wan2.1-t2v-14b": WanDiTConfig(dim=5120, ffn_dim=13824, num_heads=40, num_layers=40, in_dim=16),
    "wan2.1-i2v-14b": WanDiTConfig(
        dim=5120, ffn_dim=13824, num_heads=40, num_layers=40, in_dim=36, image_input=True
    ),
    # each of Wan2.2-Fun-A14B's two experts: Wan2.1-I2V-14B's sizes and 36 input channels, no CLIP branch
    "wan2.2-fun-a14b": WanDiTConfig(
        dim=5120, ffn_dim=13824, num_heads=40, num_layers=40, in_dim=36, image_input=False
    ),
    "tiny": WanDiTConfig(
        dim=256, ffn_dim=512, num_heads=4, num_layers=8, in_dim=16, text_dim=384, text_len=64
    ),
}

WAN_DIT_PRESETS: tuple[str, ...] = tuple(_PRESETS)


def wan_dit_config(name: str, **overrides: object) -> WanDiTConfig:
    """Return the named preset, optionally with fields replaced (e.g. reduced width for tests)."""
    key = name.lower()
    if key not in _PRESETS:
        raise InputError(f"unknown Wan DiT config {name!r}; expected one of {', '.join(WAN_DIT_PRESETS)}")
    if not overrides:
        return _PRESETS[key]
    unknown = set(overrides) - {f.name for f in dataclasses.fields(WanDiTConfig)}
    if unknown:
        raise InputError(f"unknown WanDiTConfig field(s) {sorted(unknown)} for config {name!r}")
    return dataclasses.replace(_PRESETS[key], **overrides)
