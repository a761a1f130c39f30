"""Procedural worlds as a torch dataset: one seed → one clip (video, depth, points, cameras, caption).

Each clip draws from three independent numpy streams derived from its seed (scene, camera, caption), so
it is bit-identical on the same device for the same seed and never touches a global RNG. Rendering runs
on ``device``: use CUDA with ``num_workers=0`` on a GPU (rendering takes milliseconds there), or CPU
workers otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from fantasy_world.data.camera_sampling import CameraConfig, sample_camera_path
from fantasy_world.data.captions import make_caption
from fantasy_world.data.clip import SyntheticClip
from fantasy_world.data.render import RenderConfig, render_views
from fantasy_world.data.scene_sampling import SceneConfig, sample_scene
from fantasy_world.data.splits import SeedRange, check_seed, check_seeds, split_seeds
from fantasy_world.errors import InputError

logger = logging.getLogger(__name__)

_SCENE_STREAM, _CAMERA_STREAM, _CAPTION_STREAM = 0, 1, 2


@dataclass
class SyntheticConfig:
    """Clip size (``num_frames`` must be 1 + 4k, as the video VAE wants) and generator settings."""

    num_frames: int = 17
    height: int = 128
    width: int = 192
    scene: SceneConfig = field(default_factory=SceneConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    render: RenderConfig = field(default_factory=RenderConfig)

    def __post_init__(self) -> None:
        n = self.num_frames
        if isinstance(n, bool) or not isinstance(n, int) or n < 1 or (n - 1) % 4:
            raise InputError(f"num_frames={n!r}: expected 1 + 4k frames (1, 5, 9, ..., 17, 33, ...)")
        for name in ("height", "width"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 8 <= v <= 4096:
                raise InputError(f"{name}={v!r}: expected an integer from 8 to 4096")


def _stream(seed: int, purpose: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), purpose]))


def make_clip(
    seed: int, cfg: SyntheticConfig | None = None, device: torch.device | str = "cpu", index: int = -1
) -> SyntheticClip:
    """Sample, render and caption the world of ``seed`` (no split check: datasets do that)."""
    cfg = cfg or SyntheticConfig()
    scene = sample_scene(_stream(seed, _SCENE_STREAM), seed, cfg.scene)
    cam = sample_camera_path(
        _stream(seed, _CAMERA_STREAM), scene, cfg.num_frames, cfg.width, cfg.height, cfg.camera
    )
    caption = make_caption(scene, _stream(seed, _CAPTION_STREAM))
    traj = cam.trajectory
    out = render_views(scene, traj.c2w, traj.intrinsics, cfg.height, cfg.width, device, cfg.render)
    dev = out.rgb.device
    return SyntheticClip(
        frames=out.rgb.permute(0, 3, 1, 2).contiguous().float(),
        intrinsics=torch.as_tensor(traj.intrinsics, dtype=torch.float32, device=dev),
        c2w=torch.as_tensor(traj.c2w, dtype=torch.float32, device=dev),
        caption=caption,
        depth=out.depth.float(),
        points=out.points.float(),
        valid=out.valid,
        source=f"synthetic:{seed}",
        meta={
            "camera_kind": cam.kind,
            "camera_params": cam.params,
            "setting": scene.environment.setting,
            "sky": scene.lighting.sky,
        },
        object_ids=out.object_ids,
        scene=scene,
        seed=int(seed),
        index=index,
    )


class SyntheticWorldDataset(IterableDataset):
    """Clips for the seeds of a split. Map-style access (``ds[i]``) and streaming both work.

    Streaming starts at sample ``start`` (the trainer stores the index of the next sample and passes it
    back to resume) and deals sample indices round-robin over distributed ranks and loader workers, so
    the stream seen through a DataLoader is ``start, start + 1, ...`` in order on a single rank.
    """

    def __init__(
        self,
        seeds: SeedRange | str = "train",
        num_frames: int = 17,
        height: int = 128,
        width: int = 192,
        device: torch.device | str = "cpu",
        split: str = "train",
        start: int = 0,
        rank: int = 0,
        world_size: int = 1,
        config: SyntheticConfig | None = None,
    ) -> None:
        super().__init__()
        self.seeds = split_seeds(seeds) if isinstance(seeds, str) else seeds
        self.split = split if not isinstance(seeds, str) else seeds
        check_seeds(self.seeds, self.split)
        base = config or SyntheticConfig()
        self.config = SyntheticConfig(num_frames, height, width, base.scene, base.camera, base.render)
        self.device = device
        if not 0 <= rank < world_size:
            raise InputError(f"rank {rank}: expected 0 <= rank < world_size ({world_size})")
        self.rank, self.world_size = rank, world_size
        self.start = 0
        self.set_position(start)

    def __len__(self) -> int:
        return len(self.seeds)

    def __getitem__(self, index: int) -> SyntheticClip:
        seed = check_seed(self.seeds.seed(index), self.split)
        return make_clip(seed, self.config, self.device, index=index)

    def set_position(self, index: int) -> None:
        """Resume streaming at sample ``index`` (the one the trainer has not consumed yet)."""
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= len(self.seeds):
            raise InputError(f"data position {index!r}: expected an integer from 0 to {len(self.seeds)}")
        self.start = index

    def state_dict(self) -> dict[str, int]:
        return {"next_index": self.start}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.set_position(int(state["next_index"]))

    def __iter__(self) -> Iterator[SyntheticClip]:
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        shards, shard = self.world_size * workers, self.rank * workers + worker
        for index in range(self.start, len(self.seeds)):
            if index % shards == shard:
                yield self[index]
