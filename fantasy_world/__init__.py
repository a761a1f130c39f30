"""FantasyWorld Studio: video, depth, point maps and cameras from one diffusion pass."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from fantasy_world.camera import CameraPath
    from fantasy_world.pipeline import FantasyWorldPipeline, WorldResult

_LAZY = {
    "FantasyWorldPipeline": "fantasy_world.pipeline",
    "WorldResult": "fantasy_world.pipeline",
    "CameraPath": "fantasy_world.camera",
}


def __getattr__(name: str) -> Any:
    # Lazy so that `import fantasy_world` stays cheap (CLI start-up, app import).
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)


__all__ = ["CameraPath", "FantasyWorldPipeline", "WorldResult", "__version__"]
