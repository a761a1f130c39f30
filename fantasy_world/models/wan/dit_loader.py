"""Load a public Wan2.1 DiT checkpoint into :class:`WanDiT` without ever materialising random weights.

Public layouts: Wan2.1-T2V-1.3B ships one ``diffusion_pytorch_model.safetensors``; the 14B models ship
shards plus ``diffusion_pytorch_model.safetensors.index.json``. A folder, an index or a single weight
file (safetensors or ``.pth``) are all accepted; keys are checked strictly against the config.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from fantasy_world.checkpoints.io import load_into_model, read_state_dict
from fantasy_world.errors import CheckpointError
from fantasy_world.models.wan.config import WanDiTConfig
from fantasy_world.models.wan.dit import WanDiT
from fantasy_world.quant.fp8_state import normalize_fp8_layout
from fantasy_world.quant.selection import quantize_model

log = logging.getLogger(__name__)

WAN_DIT_INDEX = "diffusion_pytorch_model.safetensors.index.json"
WAN_DIT_SINGLE = "diffusion_pytorch_model.safetensors"
# Wrappers that prefix every key (DiffSynth pipelines, training scripts); stripped only if all keys share one.
# ComfyUI / Kijai files may carry "model.diffusion_model." (checked before the shorter "model.").
_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "pipe.dit.", "model.", "dit.", "module.")


def resolve_wan_dit_file(path: str | Path) -> Path:
    """The file to read for ``path``: the index or single file of a Wan folder, or ``path`` itself."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(
            f"{path}: Wan DiT weights not found; expected a folder with {WAN_DIT_INDEX} or {WAN_DIT_SINGLE}, or a weight file"
        )
    if path.is_file():
        return path
    for name in (WAN_DIT_INDEX, WAN_DIT_SINGLE):
        if (path / name).is_file():
            return path / name
    if any(path.glob("*.safetensors")) or any(path.glob("*.index.json")) or any(path.glob("*.pth")):
        return path  # a non-standard folder; read_state_dict knows how to merge it
    raise CheckpointError(
        f"{path}: folder holds no Wan DiT weights; expected {WAN_DIT_INDEX} (+ shards) or {WAN_DIT_SINGLE}"
    )


def _strip_prefix(state: dict[str, torch.Tensor], source: Path) -> dict[str, torch.Tensor]:
    for prefix in _PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            log.info("%s: stripping key prefix %r", source, prefix)
            return {k[len(prefix) :]: v for k, v in state.items()}
    return state


def load_wan_dit(
    path: str | Path,
    cfg: WanDiTConfig,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    fp8: bool = False,
) -> WanDiT:
    """Build ``WanDiT(cfg)`` on the meta device and fill it from ``path`` with strict key checking.

    ``dtype`` casts floating weights while loading (e.g. ``torch.bfloat16``); ``None`` keeps the file's.
    FP8 files (ComfyUI / Kijai ``*fp8_e4m3fn*.safetensors``, ours) are read too; ``fp8`` builds the model
    with FP8 layers (``fantasy_world.quant``), otherwise FP8 weights are dequantised.
    Missing, unexpected or mis-shaped keys raise :class:`CheckpointError` naming them and the file.
    """
    source = resolve_wan_dit_file(path)
    state, _ = normalize_fp8_layout(read_state_dict(source, device=str(device)), str(source))
    state = _strip_prefix(state, source)
    if any(k.startswith("condition_embedder.") for k in state):
        raise CheckpointError(
            f"{source}: this is a diffusers-format Wan transformer; expected the original Wan2.1 layout "
            f"({WAN_DIT_SINGLE} from the Wan-AI release)"
        )
    with torch.device("meta"):
        model = quantize_model(WanDiT(cfg), fp8)
    load_into_model(model, state, source=str(source), strict=True, dtype=dtype)
    return model.eval()
