"""Captions of synthetic worlds without rendering them, to build a text pack for a GPU node.

A caption is a function of the seed's scene and camera streams only (the camera places the scene's
anchor, from which spatial relations are read), so it is computed here with the same three steps as
:func:`fantasy_world.data.synthetic_dataset.make_clip`, minus the ray casting.
"""

from __future__ import annotations

from collections.abc import Iterable

from fantasy_world.data.camera_sampling import sample_camera_path
from fantasy_world.data.captions import make_caption
from fantasy_world.data.scene_sampling import sample_scene
from fantasy_world.data.synthetic_dataset import SyntheticConfig, _stream

_SCENE, _CAMERA, _CAPTION = 0, 1, 2  # the stream purposes make_clip uses

# Prompts used outside the synthetic captions (README, benchmarks, reconstruction's default prompt).
EXTRA_PROMPTS: tuple[str, ...] = (
    "",
    "a scene",
    "a red ball beside a tall blue box in a sunlit courtyard",
    "a red ball beside a blue box",
)


def caption_of_seed(seed: int, cfg: SyntheticConfig | None = None) -> str:
    """The caption ``make_clip(seed, cfg)`` would produce."""
    cfg = cfg or SyntheticConfig()
    scene = sample_scene(_stream(seed, _SCENE), seed, cfg.scene)
    sample_camera_path(_stream(seed, _CAMERA), scene, cfg.num_frames, cfg.width, cfg.height, cfg.camera)
    return make_caption(scene, _stream(seed, _CAPTION))


def captions_of_seeds(seeds: Iterable[int], cfg: SyntheticConfig | None = None) -> list[str]:
    return [caption_of_seed(s, cfg) for s in seeds]
