"""Finding a shared FP8 Wan DiT file next to (or instead of) the official bf16 shards."""

from __future__ import annotations

import logging
from pathlib import Path

from fantasy_world.errors import CheckpointError

log = logging.getLogger(__name__)

_STANDARD = ("diffusion_pytorch_model.safetensors.index.json", "diffusion_pytorch_model.safetensors")
FP8_FILE_GLOB = (
    "*fp8*.safetensors"  # wan2.1_i2v_480p_14B_fp8_e4m3fn, Wan2_1-I2V-14B-480P_fp8_e4m3fn, *_fp8_scaled
)


def fp8_wan_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob(FP8_FILE_GLOB) if p.is_file())


def pick_wan_dit_source(folder: str | Path, fp8: bool) -> Path:
    """The Wan DiT weights to read from ``folder``: its FP8 file when ``fp8`` is asked for or the bf16
    shards are absent, else the folder itself (the standard shards)."""
    folder = Path(folder)
    if not folder.is_dir():
        return folder
    found = fp8_wan_files(folder)
    has_standard = any((folder / name).is_file() for name in _STANDARD)
    if not found or (has_standard and not fp8):
        return folder
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise CheckpointError(
            f"{folder}: several FP8 DiT files ({names}); expected one *fp8*.safetensors file"
        )
    log.info("Wan DiT weights from the FP8 file %s", found[0].name)
    return found[0]
