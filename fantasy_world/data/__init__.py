"""Training and evaluation data: procedural worlds rendered in torch, and real-data folders.

See ``fantasy_world/data/README.md`` for the sample layout and the real-data folder layouts. Names are
imported lazily, so a GPU training node that only renders synthetic worlds never imports the video and
mesh libraries the real-data readers need.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "ObjectCheck": "attributes",
    "check_frame": "attributes",
    "classify_colour": "attributes",
    "visible_objects": "attributes",
    "BundleConfig": "bundle_dataset",
    "BundleDataset": "bundle_dataset",
    "load_bundle_clip": "bundle_dataset",
    "SHAPE_WORDS": "captions",
    "make_caption": "captions",
    "Clip": "clip",
    "SyntheticClip": "clip",
    "collate_clips": "clip",
    "COLOUR_NAMES": "palette",
    "PALETTE": "palette",
    "RealClipConfig": "re10k_dataset",
    "Re10kStyleDataset": "re10k_dataset",
    "load_re10k_clip": "re10k_dataset",
    "RenderConfig": "render",
    "RenderOutput": "render",
    "render_views": "render",
    "Environment": "scene",
    "Lighting": "scene",
    "Scene": "scene",
    "SceneObject": "scene",
    "EVAL_SEEDS": "splits",
    "TRAIN_SEEDS": "splits",
    "SeedRange": "splits",
    "check_seed": "splits",
    "check_seeds": "splits",
    "split_seeds": "splits",
    "SyntheticConfig": "synthetic_dataset",
    "SyntheticWorldDataset": "synthetic_dataset",
    "make_clip": "synthetic_dataset",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'fantasy_world.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"fantasy_world.data.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
