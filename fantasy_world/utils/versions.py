"""The package versions recorded with every result (meta.json ``versions``): one collector for all writers."""

from __future__ import annotations

import platform
from importlib import metadata

# Distributions whose versions change what a bundle holds (model maths, file writers); missing ones are left out.
RECORDED_DISTRIBUTIONS = ("numpy", "torch", "trimesh", "imageio", "imageio-ffmpeg", "pillow")


def package_versions() -> dict[str, str]:
    """Python, this package (from its source, so a checkout reports it too) and the installed libraries."""
    from fantasy_world import __version__

    out = {"python": platform.python_version(), "fantasy_world": __version__}
    for name in RECORDED_DISTRIBUTIONS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out
