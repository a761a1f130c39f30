"""Which models the picker offers: the bundled tiny model plus model folders found on disk."""

from __future__ import annotations

import os
from pathlib import Path

from fantasy_world.model_folder import CONFIG_FILE, REPO_CHECKPOINTS

DEFAULT_MODEL = "tiny"
ENV_DIRS = "FANTASY_WORLD_MODEL_DIRS"  # extra folders (os.pathsep-separated) to list in the picker


def _is_model_folder(folder: Path) -> bool:
    return (folder / CONFIG_FILE).is_file() or (folder / "model.pth").is_file()


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
