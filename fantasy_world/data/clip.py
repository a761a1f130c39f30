"""The sample every dataset returns: video frames with per-pixel geometry and cameras.

Layout (all torch tensors, on the dataset's device):

- ``frames``: float32 [T, 3, H, W], RGB in [0, 1] (channels first, ready for a VAE).
- ``depth``: float32 [T, H, W] metric OpenCV z-depth (along the optical axis, not ray length); 0 where
  ``valid`` is False (sky, or missing depth in real data).
- ``points``: float32 [T, H, W, 3] world-frame points (OpenCV world = the frame of ``c2w``; for synthetic
  clips that is camera 0's frame, so ``c2w[0]`` is the identity); 0 where ``valid`` is False.
- ``valid``: bool [T, H, W]; geometry losses must use it.
- ``intrinsics``: float32 [T, 3, 3] pinhole in pixels (pixel centres at integer coordinates).
- ``c2w``: float32 [T, 4, 4] OpenCV camera-to-world.
- ``caption``: the text prompt.
- ``object_ids``: int16 [T, H, W] (synthetic only): k + 1 where object k of ``scene.objects`` is seen,
  0 elsewhere.

Real data without depth has ``depth``, ``points`` and ``valid`` set to None.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
import torch

from fantasy_world.data.scene import Scene


@dataclass
class Clip:
    """One training / evaluation sample (see the module docstring for shapes and conventions)."""

    frames: torch.Tensor
    intrinsics: torch.Tensor
    c2w: torch.Tensor
    caption: str = ""
    depth: torch.Tensor | None = None
    points: torch.Tensor | None = None
    valid: torch.Tensor | None = None
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[2])

    @property
    def width(self) -> int:
        return int(self.frames.shape[3])

    @classmethod
    def from_numpy(
        cls,
        frames: np.ndarray,
        intrinsics: np.ndarray,
        c2w: np.ndarray,
        caption: str = "",
        depth: np.ndarray | None = None,
        points: np.ndarray | None = None,
        valid: np.ndarray | None = None,
        source: str = "",
        device: torch.device | str = "cpu",
    ) -> Clip:
        """From uint8 [T, H, W, 3] frames and numpy geometry; depth and points are zeroed where invalid."""

        def tensor(a: np.ndarray | None, dtype: torch.dtype) -> torch.Tensor | None:
            return None if a is None else torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=device)

        valid_t = tensor(valid, torch.bool)
        depth_t, points_t = tensor(depth, torch.float32), tensor(points, torch.float32)
        if valid_t is not None and depth_t is not None and points_t is not None:
            depth_t = torch.where(valid_t, depth_t, torch.zeros_like(depth_t))
            points_t = torch.where(valid_t[..., None], points_t, torch.zeros_like(points_t))
        frames_t = torch.as_tensor(np.ascontiguousarray(frames), device=device).permute(0, 3, 1, 2)
        return cls(
            frames=frames_t.float().div(255.0).contiguous(),
            intrinsics=tensor(intrinsics, torch.float32),
            c2w=tensor(c2w, torch.float32),
            caption=caption,
            depth=depth_t,
            points=points_t,
            valid=valid_t,
            source=source,
        )

    def frames_uint8(self) -> torch.Tensor:
        """uint8 [T, H, W, 3] (for writing videos and for the attribute checker)."""
        return (self.frames.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()

    def to(self, device: torch.device | str) -> Clip:
        """A copy with every tensor moved to ``device``."""
        changes = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                changes[f.name] = value.to(device)
        return replace(self, **changes)


@dataclass
class SyntheticClip(Clip):
    """A rendered clip: always has geometry, plus object ids, the scene graph and its seed."""

    object_ids: torch.Tensor | None = None
    scene: Scene | None = None
    seed: int = -1
    index: int = -1  # position in the dataset that produced it (the trainer stores the next one to resume)


_BATCH_KEYS = ("frames", "depth", "points", "valid", "intrinsics", "c2w", "object_ids")


def collate_clips(clips: list[Clip]) -> dict[str, Any]:
    """DataLoader ``collate_fn``: stack tensors to [B, ...] (keys present in every clip), list the rest.

    Clips of one batch must share frame count and size; the scene graphs and captions stay Python lists.
    """
    if not clips:
        raise ValueError("collate_clips: expected at least one clip")
    batch: dict[str, Any] = {}
    for key in _BATCH_KEYS:
        values = [getattr(c, key, None) for c in clips]
        if all(isinstance(v, torch.Tensor) for v in values):
            batch[key] = torch.stack(values)
    batch["caption"] = [c.caption for c in clips]
    batch["source"] = [c.source for c in clips]
    batch["index"] = [getattr(c, "index", -1) for c in clips]
    batch["scene"] = [getattr(c, "scene", None) for c in clips]
    return batch
