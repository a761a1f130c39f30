"""Which models the picker offers, and what each one is: kind, defaults and this device's limits.

Read from the model folder's config file only (no weights are loaded), so the page can describe the
models, size its inputs and show the start-image box before anything runs.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from fantasy_world.errors import FantasyWorldError
from fantasy_world.limits import MAX_GUIDANCE, MAX_STEPS, MAX_VIDEO_FRAMES
from fantasy_world.model_folder import (
    CONFIG_FILE,
    OFFICIAL_I2V_DEFAULTS,
    REPO_CHECKPOINTS,
    TINY_DEFAULTS,
    TINY_DIR,
    WAN22_DEFAULTS,
    GenerationDefaults,
    is_wan22_folder,
    read_folder_config,
)
from fantasy_world.utils.dataclass_io import config_from_dict
from fantasy_world.validation import SizeLimits

log = logging.getLogger(__name__)

DEFAULT_MODEL = "tiny"
ENV_DIRS = "FANTASY_WORLD_MODEL_DIRS"  # extra folders (os.pathsep-separated) to list in the picker
README_WEIGHTS = "README → Models"
TINY_CAN_DRAW = (
    "tiny: a small model trained on synthetic worlds — coloured balls, boxes, cylinders, cones, rings and "
    f"capsules on a floor under a sky. For real scenes, use real weights ({README_WEIGHTS})."
)


def _is_model_folder(folder: Path) -> bool:
    return (folder / CONFIG_FILE).is_file() or (folder / "model.pth").is_file() or is_wan22_folder(folder)


def model_choices(root: Path = REPO_CHECKPOINTS) -> list[str]:
    """``tiny`` first, then every model folder under ``root`` and in $FANTASY_WORLD_MODEL_DIRS."""
    choices = [DEFAULT_MODEL]
    candidates: list[Path] = []
    if root.is_dir():
        candidates += sorted(p for p in root.iterdir() if p.is_dir() and p.name != "fantasyworld-tiny")
    for entry in os.environ.get(ENV_DIRS, "").split(os.pathsep):
        if entry.strip():
            candidates.append(Path(entry.strip()).expanduser())
    for folder in candidates:
        if _is_model_folder(folder) and str(folder) not in choices:
            choices.append(str(folder))
    return choices


def device_kind() -> str:
    """Where generation runs: the pipeline picks CUDA when there is one."""
    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass(frozen=True)
class ModelInfo:
    """What the page needs to know about one picker entry."""

    choice: str
    label: str  # the picker's text
    note: str  # one line under the picker
    image_input: bool  # image-to-world: the start-image box is shown and required
    defaults: GenerationDefaults
    limits: SizeLimits  # on this device
    end_image: bool = False  # first/last-frame model: the optional end-image box is shown

    @property
    def max_side(self) -> int:
        """The largest height (or width) that fits the pixel cap with the other side at its minimum."""
        m = self.limits.multiple
        return (self.limits.max_pixels // self.limits.min_side) // m * m

    def ranges(self) -> dict[str, str]:
        """Allowed values per input, in words, for the inputs' hints."""
        lim = self.limits
        return {
            "frames": f"1+4k, 1 to {lim.max_frames - (lim.max_frames - 1) % 4}",
            "size": (
                f"multiples of {lim.multiple}, at least {lim.min_side}; height × width at most "
                f"{lim.max_pixels:,} pixels on {'GPU' if device_kind() == 'cuda' else 'CPU'}"
            ),
            "steps": f"1 to {MAX_STEPS}",
            "guidance": f"1 to {MAX_GUIDANCE:g}",
            "seed": "a whole number from 0",
        }


def _limits(defaults: GenerationDefaults) -> SizeLimits:
    cap = defaults.max_pixels_cuda if device_kind() == "cuda" else defaults.max_pixels_cpu
    return SizeLimits(max_pixels=int(cap), max_frames=MAX_VIDEO_FRAMES)


def model_info(choice: str) -> ModelInfo:
    """Describe ``choice`` from its config file; a folder that cannot be read is described as such."""
    if choice == DEFAULT_MODEL:
        defaults, image_input, trained = TINY_DEFAULTS, False, False
        if (TINY_DIR / CONFIG_FILE).is_file():
            try:
                meta = read_folder_config(TINY_DIR)
                defaults = config_from_dict(GenerationDefaults, meta.get("defaults", {}), "defaults")
                trained = bool(meta.get("trained", True))
            except FantasyWorldError as exc:
                log.warning("tiny model config unreadable: %s", exc)
        note = (
            TINY_CAN_DRAW
            if trained
            else "tiny is not trained in this checkout: its output is noise. "
            + (f"For real scenes load real weights ({README_WEIGHTS}).")
        )
        label = "tiny — small synthetic-world model"
        return ModelInfo(choice, label, note, image_input, defaults, _limits(defaults))
    folder = Path(choice)
    if (folder / CONFIG_FILE).is_file():
        try:
            meta = read_folder_config(folder)
            defaults = config_from_dict(GenerationDefaults, meta.get("defaults", {}), "defaults")
            dit = meta.get("model", {}).get("dit", {})
            image_input = bool(dit.get("image_input", False))
            # first/last-frame conditioning without CLIP: conditioning channels but no image branch
            end_image = not image_input and int(dit.get("in_dim", 16)) > int(dit.get("out_dim", 16))
            image_input = image_input or end_image
        except FantasyWorldError as exc:
            note = f"{folder.name}: its config cannot be read ({exc})"
            return ModelInfo(
                choice, f"{folder.name} — unreadable", note, False, TINY_DEFAULTS, _limits(TINY_DEFAULTS)
            )
        kind = "image-to-world" if image_input else "text-to-world"
        name = str(meta.get("name", folder.name))
        note = f"{folder.name}: our model folder ({name}, {kind})" + (
            "; give a start image" if image_input else ""
        )
        return ModelInfo(
            choice,
            f"{folder.name} — {name}, {kind}",
            note,
            image_input,
            defaults,
            _limits(defaults),
            end_image=end_image,
        )
    if is_wan22_folder(folder):
        note = (
            f"{folder.name}: official FantasyWorld Wan2.2-Fun-A14B (two experts, image-to-world: a start image "
            "and an optional end image; needs a large GPU and ~70 GB of host memory)"
        )
        return ModelInfo(
            choice,
            f"{folder.name} — FantasyWorld Wan2.2 Fun A14B",
            note,
            True,
            WAN22_DEFAULTS,
            _limits(WAN22_DEFAULTS),
            end_image=True,
        )
    defaults = OFFICIAL_I2V_DEFAULTS
    note = (
        f"{folder.name}: official FantasyWorld Wan2.1-I2V-14B-480P (image-to-world, needs a start image "
        "and a large GPU)"
    )
    return ModelInfo(
        choice, f"{folder.name} — FantasyWorld Wan2.1 I2V 14B", note, True, defaults, _limits(defaults)
    )
