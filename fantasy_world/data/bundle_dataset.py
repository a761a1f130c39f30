"""Our own output bundles (``world.npz`` + optional ``meta.json``) as training / evaluation clips.

``root`` is one bundle folder or a folder of bundle folders. Arrays are read by the geometry package's
loader (``allow_pickle=False``, headers checked); pixels count as valid where depth is positive and
finite and ``depth_conf`` exceeds ``min_conf``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from fantasy_world.camera.conventions import invert_pose
from fantasy_world.data.clip import Clip
from fantasy_world.data.re10k_dataset import RealClipConfig
from fantasy_world.data.resize import crop_resize
from fantasy_world.errors import GeometryFormatError, InputError
from fantasy_world.geometry.npz import load_world_npz

logger = logging.getLogger(__name__)


@dataclass
class BundleConfig:
    """Clip cutting / sizing as for real clips, plus the depth-confidence threshold for ``valid``."""

    clip: RealClipConfig = field(default_factory=RealClipConfig)
    min_conf: float = 0.0


def _read_prompt(folder: Path) -> str:
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        return ""
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GeometryFormatError(f"{folder}: meta.json is not valid JSON ({exc})") from None
    prompt = meta.get("prompt", "") if isinstance(meta, dict) else ""
    if not isinstance(prompt, str):
        raise GeometryFormatError(
            f"{folder}: meta.json 'prompt' is {type(prompt).__name__}; expected a string"
        )
    return prompt


def load_bundle_clip(
    folder: str | Path, cfg: BundleConfig | None = None, device: torch.device | str = "cpu"
) -> Clip:
    """One bundle folder → :class:`Clip` (poses are the bundle's predicted ``cam_c2w``)."""
    cfg = cfg or BundleConfig()
    folder = Path(folder)
    npz = folder / "world.npz"
    if not npz.is_file():
        raise InputError(f"{folder}: world.npz not found; expected a bundle folder")
    world = load_world_npz(npz)
    t = world.num_frames
    sel = np.arange(0, t, cfg.clip.stride)
    if cfg.clip.num_frames is not None:
        if len(sel) < cfg.clip.num_frames:
            raise InputError(
                f"{folder}: {len(sel)} frames at stride {cfg.clip.stride}; expected at least {cfg.clip.num_frames}"
            )
        sel = sel[: cfg.clip.num_frames]
    depth = world.depths[sel]
    points = world.points[sel]
    valid = (
        np.isfinite(depth)
        & (depth > 0)
        & (world.depth_conf[sel] > cfg.min_conf)
        & np.isfinite(points).all(-1)
    )
    c2w = world.cam_c2w[sel].astype(np.float64)
    requested = world.requested_c2w[sel].astype(np.float64)
    if cfg.clip.relative_to_first:
        first_inv = invert_pose(c2w[0])
        c2w, requested = first_inv[None] @ c2w, first_inv[None] @ requested
        points = points @ first_inv[:3, :3].T.astype(np.float32) + first_inv[:3, 3].astype(np.float32)
    fit = crop_resize(
        world.images[sel], world.intrinsics[sel], cfg.clip.height, cfg.clip.width, depth, points, valid
    )
    clip = Clip.from_numpy(
        fit.frames,
        fit.intrinsics,
        c2w,
        _read_prompt(folder),
        fit.depth,
        fit.points,
        fit.valid,
        str(folder),
        device,
    )
    clip.meta["requested_c2w"] = torch.as_tensor(requested, dtype=torch.float32)
    return clip


class BundleDataset(Dataset):
    """All bundles under ``root`` (``root/world.npz`` itself, or ``root/<name>/world.npz``), sorted."""

    def __init__(
        self, root: str | Path, config: BundleConfig | None = None, device: torch.device | str = "cpu"
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"{self.root}: dataset folder not found")
        if (self.root / "world.npz").is_file():
            self.folders = [self.root]
        else:
            self.folders = sorted(p for p in self.root.iterdir() if (p / "world.npz").is_file())
        if not self.folders:
            raise InputError(f"{self.root}: no world.npz bundles; expected root/<name>/world.npz")
        self.config = config or BundleConfig()
        self.device = device

    def __len__(self) -> int:
        return len(self.folders)

    def __getitem__(self, index: int) -> Clip:
        return load_bundle_clip(self.folders[index], self.config, self.device)
