"""Upload bounds derived from what the offered models can actually produce on this device.

A re-opened world can never be larger than the largest world the studio itself writes, so anything
claiming more is refused from the archive's directory and the .npy headers, before one byte is
decompressed. Start images are resized to the frame size, so a bound far above the largest frame
costs nothing legitimate.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from fantasy_world.model_folder import OFFICIAL_I2V_DEFAULTS, TINY_DEFAULTS, GenerationDefaults

MAX_UI_FRAMES = 81  # the Frames slider's maximum
# world.npz per pixel: images uint8×3, depths, depth_conf, points_conf float32, points float32×3.
WORLD_BYTES_PER_PIXEL = 3 + 4 + 4 + 4 + 12
WORLD_BYTES_PER_FRAME = (9 + 16 + 16) * 8  # intrinsic, cam_c2w, requested_c2w (float64 at most)
META_MAX_BYTES = 1 << 20  # meta.json: prompt, settings, timings, versions
LARGEST_FRAME_PIXELS = 1280 * 720
IMAGE_MAX_PIXELS = 16 * LARGEST_FRAME_PIXELS  # ≈ 4.9k × 3k; decoding it costs ≤ 45 MB


@dataclass(frozen=True)
class WorldLimits:
    """The largest world.npz a studio result can be: frames × pixels per frame."""

    max_frames: int
    max_pixels: int

    @property
    def max_npz_bytes(self) -> int:
        per_frame = self.max_pixels * WORLD_BYTES_PER_PIXEL + WORLD_BYTES_PER_FRAME
        return self.max_frames * per_frame + (64 << 10)  # + zip and .npy headers


def _defaults_for(model: str) -> GenerationDefaults:
    return TINY_DEFAULTS if model == "tiny" else OFFICIAL_I2V_DEFAULTS


def world_limits(models: Iterable[str] = ("tiny",), cuda: bool | None = None) -> WorldLimits:
    """Limits for the largest result of the offered ``models`` on this device (CUDA or CPU caps)."""
    cuda = torch.cuda.is_available() if cuda is None else cuda
    caps = [d.max_pixels_cuda if cuda else d.max_pixels_cpu for d in (_defaults_for(m) for m in models)] or [
        TINY_DEFAULTS.max_pixels_cpu
    ]
    return WorldLimits(max_frames=MAX_UI_FRAMES, max_pixels=max(caps))
