"""Validation of generation requests, shared by the Python API, the CLI and the app.

Each check raises :class:`InputError` with one line naming the argument, the bad value and what is
expected, so every entry point reports user mistakes the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fantasy_world.errors import InputError
from fantasy_world.limits import (
    MAX_GUIDANCE,
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    MAX_PROMPT_CHARS,
    MAX_STEPS,
    MAX_VIDEO_FRAMES,
)


@dataclass(frozen=True)
class SizeLimits:
    """What a model can take: spatial multiple (VAE 8 × patch 2) and per-device pixel bounds."""

    multiple: int = 16
    min_side: int = 32
    max_pixels: int = 1280 * 720
    max_frames: int = MAX_VIDEO_FRAMES


def check_prompt(prompt: object, name: str = "prompt", allow_empty: bool = False) -> str:
    if not isinstance(prompt, str):
        raise InputError(f"{name}: expected text, got {type(prompt).__name__}")
    if "\x00" in prompt:
        raise InputError(f"{name}: contains a NUL character; expected plain text")
    if not allow_empty and not prompt.strip():
        raise InputError(f"{name}: is empty; describe the world to generate")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InputError(f"{name}: {len(prompt)} characters; expected at most {MAX_PROMPT_CHARS}")
    return prompt


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_frames(frames: object, limits: SizeLimits = SizeLimits()) -> int:
    if not _is_int(frames) or frames < 1 or (frames - 1) % 4 != 0 or frames > limits.max_frames:
        raise InputError(
            f"frames={frames!r}: expected 1+4k frames (1, 5, 9, ..., 33, ..., 81) up to {limits.max_frames}"
        )
    return int(frames)


def check_size(height: object, width: object, limits: SizeLimits = SizeLimits()) -> tuple[int, int]:
    for name, value in (("height", height), ("width", width)):
        if not _is_int(value) or value < limits.min_side or value % limits.multiple != 0:
            raise InputError(
                f"{name}={value!r}: expected a multiple of {limits.multiple} that is at least {limits.min_side}"
            )
    if height * width > limits.max_pixels:
        raise InputError(
            f"size {height}x{width}: {height * width} pixels per frame; expected at most {limits.max_pixels} on this device"
        )
    return int(height), int(width)


def check_steps(steps: object) -> int:
    if not _is_int(steps) or not 1 <= steps <= MAX_STEPS:
        raise InputError(f"steps={steps!r}: expected an integer between 1 and {MAX_STEPS}")
    return int(steps)


def check_guidance(guidance: object) -> float:
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not math.isfinite(guidance):
        raise InputError(f"guidance={guidance!r}: expected a finite number between 1 and {MAX_GUIDANCE}")
    if not 1.0 <= guidance <= MAX_GUIDANCE:
        raise InputError(f"guidance={guidance!r}: expected a number between 1 and {MAX_GUIDANCE}")
    return float(guidance)


def check_seed(seed: object) -> int:
    if not _is_int(seed) or not 0 <= seed < 2**63:
        raise InputError(f"seed={seed!r}: expected an integer in [0, 2^63)")
    return int(seed)


def check_image_file(
    path: object, name: str = "image", max_pixels: int = MAX_IMAGE_PIXELS
) -> tuple[int, int]:
    """A start-image file that is bounded in bytes and pixels and fully decodes; returns (width, height).

    The pixel bound is read from the header before any decoding, so a decompression bomb costs nothing.
    Pillow reports broken files with many exception types (OSError, SyntaxError, ValueError, ...); all
    become one :class:`InputError`.
    """
    import os
    import struct
    import zlib
    from pathlib import Path

    from PIL import Image

    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"{name}: expected an image file path, got {type(path).__name__}")
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{name} {p.name}: file not found")
    size = p.stat().st_size
    if size > MAX_IMAGE_BYTES:
        raise InputError(f"{name} {p.name}: {size} bytes; expected at most {MAX_IMAGE_BYTES}")
    try:
        with Image.open(p) as im:
            w, h = im.size
            if w < 1 or h < 1 or w * h > max_pixels:
                raise InputError(f"{name} {p.name}: {w}x{h} pixels; expected 1 to {max_pixels} pixels")
            im.load()
    except InputError:
        raise
    except Image.DecompressionBombError:
        raise InputError(f"{name} {p.name}: too many pixels; expected at most {max_pixels} pixels") from None
    except (
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
        struct.error,
        zlib.error,
    ):
        raise InputError(
            f"{name} {p.name}: not a decodable image; expected a PNG, JPEG or WebP file"
        ) from None
    return int(w), int(h)
