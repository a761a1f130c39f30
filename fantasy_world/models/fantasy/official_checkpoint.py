"""Official FantasyWorld checkpoints (``model.pth`` of FantasyWorld-Wan2.1-I2V-14B-480P) <-> our model.

Official layout (every key and shape: ``tests/fixtures/official_keys_wan21.json``): ``pipe.dit.*`` (Wan, blocks 0..n_pcb-1 only), ``IRGBlock.i.{x_dit, x_agg,
bicross_attention}.*`` (x_dit = a deep copy of Wan block n_pcb+i), ``vggt.*`` (bridge, tokens, frame
blocks, time embedding, heads), ``camera_condition.pose_encoder.*`` and the camera processors
``*.cross_attn.processor.*``. Our model keeps every Wan block in ``dit.blocks`` (the IRG blocks borrow
them), so ``IRGBlock.i.x_dit.*`` <-> ``dit.blocks.{n_pcb+i}.*``, and the processors are our
``cross_attn.camera_adapter``. Every official key maps to exactly one of our parameters and back.

Loading: Wan DiT weights come from the public Wan2.1 shards, then ``model.pth`` is laid over them (its
``x_dit`` copies, if shipped, win, as with the official ``load_state_dict``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from fantasy_world.checkpoints.io import LoadReport, load_into_model, read_state_dict, save_state_dict
from fantasy_world.errors import CheckpointError
from fantasy_world.models.fantasy.config import FantasyWorldConfig, fantasy_world_config
from fantasy_world.models.fantasy.model import FantasyWorldModel
from fantasy_world.models.wan.dit_loader import resolve_wan_dit_file
from fantasy_world.quant.fp8_state import normalize_fp8_layout
from fantasy_world.quant.selection import quantize_model

log = logging.getLogger(__name__)

OFFICIAL_CONFIG = "wan2.1-i2v-14b"
# Pipeline parts that ride along in a DiffSynth state dict but are not part of the DiT/geometry model.
IGNORED_PREFIXES: tuple[str, ...] = ("pipe.text_encoder.", "pipe.image_encoder.", "pipe.vae.")

_OFF_PROC = ".cross_attn.processor."
_OUR_PROC = ".cross_attn.camera_adapter."
# (official prefix, our prefix); first match wins, so more specific prefixes come first.
_PREFIXES: tuple[tuple[str, str], ...] = (
    ("vggt.projection_head.", "bridge.proj."),
    ("vggt.aggregator.CamTokenProjector.", "aggregator.cam_token_projector."),
    ("vggt.aggregator.", "aggregator."),
    ("vggt.time_embedding.", "geo_time.time_embedding."),
    ("vggt.time_projection.", "geo_time.time_projection."),
    ("vggt.camera_head.", "camera_head."),
    ("vggt.depth_head.", "depth_head."),
    ("vggt.point_head.", "point_head."),
    ("camera_condition.pose_encoder.", "pose_encoder."),
)
_IRG = re.compile(r"IRGBlock\.(\d+)\.(x_dit|x_agg|bicross_attention)\.(.+)")
_DIT_BLOCK = re.compile(r"dit\.blocks\.(\d+)\.(.+)")


def official_to_ours(key: str, n_pcb: int) -> str:
    """Our state-dict name for an official key (``n_pcb``: number of preconditioning blocks)."""
    m = _IRG.fullmatch(key)
    if m:
        i, part, rest = int(m.group(1)), m.group(2), m.group(3)
        if part == "x_dit":
            return f"dit.blocks.{n_pcb + i}.{rest}".replace(_OFF_PROC, _OUR_PROC)
        return f"irg.{i}.{part}.{rest}"
    if key.startswith("pipe.dit."):
        return key[len("pipe.") :].replace(_OFF_PROC, _OUR_PROC)
    for official, ours in _PREFIXES:
        if key.startswith(official):
            return ours + key[len(official) :]
    raise CheckpointError(
        f"{key}: not a FantasyWorld (Wan2.1) parameter name; expected pipe.dit.*, IRGBlock.*, vggt.* or camera_condition.*"
    )


def ours_to_official(key: str, n_pcb: int) -> str:
    """The official name of one of our state-dict keys (inverse of :func:`official_to_ours`)."""
    m = _DIT_BLOCK.fullmatch(key)
    if m:
        j, rest = int(m.group(1)), m.group(2).replace(_OUR_PROC.lstrip("."), _OFF_PROC.lstrip("."))
        return f"pipe.dit.blocks.{j}.{rest}" if j < n_pcb else f"IRGBlock.{j - n_pcb}.x_dit.{rest}"
    if key.startswith("dit."):
        return "pipe." + key
    if key.startswith("irg."):
        return "IRGBlock." + key[len("irg.") :]
    for official, ours in _PREFIXES:
        if key.startswith(ours):
            return official + key[len(ours) :]
    raise CheckpointError(
        f"{key}: has no official FantasyWorld name (the official layout needs the 'conv' bridge)"
    )


def is_wan_key(our_key: str) -> bool:
    """True for DiT weights that also exist in the plain Wan checkpoint (not the camera adapters)."""
    return our_key.startswith("dit.") and _OUR_PROC not in our_key


def official_state_dict(model: FantasyWorldModel, include_wan: bool = False) -> dict[str, torch.Tensor]:
    """Our weights under official names; without ``include_wan`` only what the Wan files cannot provide."""
    n_pcb = model.cfg.n_pcb
    return {
        ours_to_official(k, n_pcb): v
        for k, v in model.state_dict().items()
        if include_wan or not is_wan_key(k)
    }


def save_official_layout(model: FantasyWorldModel, path: str | Path, include_wan: bool = False) -> Path:
    """Write the weights in the official key layout: ``.pth`` (what the official loader reads) or ``.safetensors``."""
    path = Path(path)
    state = official_state_dict(model, include_wan=include_wan)
    if path.suffix == ".safetensors":
        save_state_dict(state, path, metadata={"format": "fantasyworld-official", "config": model.cfg.name})
    elif path.suffix in (".pth", ".pt"):
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.detach().contiguous().clone() for k, v in state.items()}, str(path))
    else:
        raise CheckpointError(f"{path}: unsupported output type; expected a .pth or .safetensors file name")
    log.info("wrote %d tensors in the official layout to %s", len(state), path)
    return path


@dataclass
class OfficialLoadReport:
    """Outcome of :func:`load_official_state` / :func:`load_official_fantasyworld`."""

    load: LoadReport
    ignored: list[str] = field(default_factory=list)  # text encoder / image encoder / VAE keys
    unmapped: list[str] = field(default_factory=list)  # names that are not FantasyWorld parameters
    overridden_wan: list[str] = field(default_factory=list)  # our keys where model.pth replaced Wan weights

    @property
    def ok(self) -> bool:
        return self.load.ok and not self.unmapped

    def summary(self) -> str:
        parts = [self.load.summary()]
        if self.ignored:
            parts.append(f"ignored {len(self.ignored)} text/image encoder and VAE keys")
        if self.unmapped:
            parts.append(f"unmapped {len(self.unmapped)}: {', '.join(self.unmapped[:8])}")
        if self.overridden_wan:
            parts.append(f"{len(self.overridden_wan)} Wan weights replaced by the FantasyWorld file")
        return "; ".join(parts)


def load_official_state(
    model: FantasyWorldModel,
    official: Mapping[str, torch.Tensor],
    *,
    source: str,
    base: Mapping[str, torch.Tensor] | None = None,
    dtype: torch.dtype | None = None,
) -> OfficialLoadReport:
    """Fill ``model`` from an official-layout state dict laid over ``base`` (our names, e.g. Wan weights).

    Missing or mis-shaped keys raise :class:`CheckpointError` (nothing else could provide them);
    unmapped names are reported and skipped; text/image encoder and VAE keys are ignored with a note.
    """
    n_pcb = model.cfg.n_pcb
    state: dict[str, torch.Tensor] = dict(base or {})
    report = OfficialLoadReport(load=LoadReport(source=source))
    for key, tensor in official.items():
        if key.startswith(IGNORED_PREFIXES):
            report.ignored.append(key)
            continue
        try:
            ours = official_to_ours(key, n_pcb)
        except CheckpointError:
            report.unmapped.append(key)
            continue
        if base is not None and ours in base:
            report.overridden_wan.append(ours)
        state[ours] = tensor
    if report.ignored:
        log.info("%s: ignoring %d pipe.text_encoder/image_encoder/vae keys", source, len(report.ignored))
    report.load = load_into_model(model, state, source=source, strict=False, dtype=dtype)
    report.load.unexpected.extend(report.unmapped)
    if report.load.missing or report.load.mismatched:
        raise CheckpointError(report.summary())
    if report.unmapped:
        log.warning(report.summary())
    return report


def _strip_wan_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in ("model.diffusion_model.", "diffusion_model.", "pipe.dit.", "model.", "dit.", "module."):
        if state and all(k.startswith(prefix) for k in state):
            return {k[len(prefix) :]: v for k, v in state.items()}
    return state


def load_official_fantasyworld(
    wan_dir: str | Path,
    model_pth: str | Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = torch.bfloat16,
    cfg: FantasyWorldConfig | None = None,
    fp8: bool = False,
) -> tuple[FantasyWorldModel, OfficialLoadReport]:
    """Build the official model on the meta device and fill it from the Wan2.1-I2V-14B-480P DiT files
    (``wan_dir``: a folder or one weight file, FP8 files included) and FantasyWorld's ``model.pth``; returns
    the model (eval mode) and the load report. ``fp8`` builds it with FP8 layers (``fantasy_world.quant``)."""
    cfg = cfg or fantasy_world_config(OFFICIAL_CONFIG)
    wan_file = resolve_wan_dit_file(wan_dir)
    wan, _ = normalize_fp8_layout(read_state_dict(wan_file, device=str(device)), str(wan_file))
    wan = _strip_wan_prefix(wan)
    base = {"dit." + k: v for k, v in wan.items()}
    official = read_state_dict(model_pth, device=str(device))
    with torch.device("meta"):
        model = quantize_model(FantasyWorldModel(cfg), fp8)
    report = load_official_state(model, official, source=f"{wan_file} + {model_pth}", base=base, dtype=dtype)
    log.info(report.summary())
    return model.eval(), report
