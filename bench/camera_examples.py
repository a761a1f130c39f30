"""The example camera files shipped in ``assets/cameras/``, generated from presets so they stay in sync.

Repository tooling (not part of the package); a test checks the shipped files against it.

Regenerate with ``python -m bench.camera_examples assets/cameras`` from the repository root.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from fantasy_world.camera.formats import save_camera_file
from fantasy_world.camera.path import CameraPath

logger = logging.getLogger(__name__)

# file name → (preset, parameters, format)
EXAMPLES: dict[str, tuple[str, dict[str, float], str]] = {
    "orbit_path.json": ("orbit", {}, "native"),
    "dolly_in_re10k.txt": ("dolly_in", {"distance": 0.5}, "re10k"),
    "spiral_nerfstudio.json": ("spiral", {}, "nerfstudio"),
    "arc_worldscore.json": ("arc", {"angle": 45.0}, "worldscore"),
}
EXAMPLE_FRAMES = 33


def example_path(file_name: str) -> CameraPath:
    preset, params, _ = EXAMPLES[file_name]
    return CameraPath.preset(preset, num_frames=EXAMPLE_FRAMES, **params)


def write_examples(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    written = []
    for file_name, (_, _, fmt) in EXAMPLES.items():
        written.append(save_camera_file(example_path(file_name), folder / file_name, format=fmt))
        logger.info("wrote %s", written[-1])
    return written


if __name__ == "__main__":  # pragma: no cover
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    write_examples(sys.argv[1] if len(sys.argv) > 1 else "assets/cameras")
