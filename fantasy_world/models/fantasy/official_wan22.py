"""Official FantasyWorld-Wan2.2-Fun-A14B-Control-Camera files -> two FantasyWorld experts.

Each expert is built the official way (``model_wan22.py`` L120–210, ``inference_wan22.py`` L80–140):

1. the Wan2.2-Fun-A14B-Control-Camera expert DiT from its shards (``high_noise_model/`` or
   ``low_noise_model/``, ``diffusion_pytorch_model*.safetensors``; read through the shard index when the
   folder has one, else every shard matching the official glob, checked complete by its ``-k-of-n`` number);
2. that expert's Wan2.2-Fun reward LoRA (HPS2.1) merged at 0.55 in bf16 into the DiT, before the IRG
   blocks take their Wan blocks (ours borrow them, so merging into ``dit.blocks`` is that order);
3. the FantasyWorld expert file (``high_noise_model.pth`` / ``low_noise_model.pth``, flat state dict,
   ``torch.load(weights_only=True)``) laid over it non-strictly: DiT keys it carries overwrite the merge.

Key checks are strict where the official code's are: the base shards must hold exactly the DiT's keys; the
expert file may hold any subset of the model's names (missing ones must then come from the base, else
error) and no unknown name (the official loader asserts ``not unexpected_keys``). Unresolved LoRA names are
reported (the official loader skips them silently).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from fantasy_world.checkpoints.io import LoadReport, read_state_dict
from fantasy_world.errors import CheckpointError
from fantasy_world.models.fantasy.config import FantasyWorldConfig, fantasy_world_config
from fantasy_world.models.fantasy.experts import WAN22_FUN_EXPERTS
from fantasy_world.models.fantasy.model import FantasyWorldModel
from fantasy_world.models.fantasy.official_checkpoint import (
    OfficialLoadReport,
    is_wan_key,
    load_official_state,
)
from fantasy_world.models.wan.lora_merge import LoraMergeReport, merge_lora

log = logging.getLogger(__name__)

WAN22_CONFIG = "wan2.2-fun-a14b"
BASE_DIRNAME = "Wan2.2-Fun-A14B-Control-Camera"
LORA_DIRNAME = "Wan2.2-Fun-Reward-LoRAs"
EXPERT_DIRS = {"high": "high_noise_model", "low": "low_noise_model"}
EXPERT_FILES = {"high": "high_noise_model.pth", "low": "low_noise_model.pth"}
REWARD_LORAS = {
    "high": "Wan2.2-Fun-A14B-InP-high-noise-HPS2.1.safetensors",
    "low": "Wan2.2-Fun-A14B-InP-low-noise-HPS2.1.safetensors",
}
REWARD_LORA_MULTIPLIER = 0.55
SHARD_GLOB = "diffusion_pytorch_model*.safetensors"
SHARD_INDEX = "diffusion_pytorch_model.safetensors.index.json"
VAE_FILE = "Wan2.1_VAE.pth"
T5_FILE = "models_t5_umt5-xxl-enc-bf16.pth"
_SHARD_NUMBER = re.compile(r"-(\d+)-of-(\d+)")
_WRAPPERS = ("pipe.dit.", "model.", "dit.", "module.")


@dataclass(frozen=True)
class Wan22Files:
    """Every file the Wan2.2 model needs, resolved from one folder."""

    base_dir: Path  # the Wan2.2-Fun-A14B-Control-Camera release
    expert_dirs: dict[str, Path]  # high/low -> the expert's shard folder
    reward_loras: dict[str, Path]
    fantasy: dict[str, Path]  # high/low -> FantasyWorld expert .pth
    vae: Path
    t5: Path
    tokenizer: Path


def _first_dir(candidates: list[Path]) -> Path | None:
    return next((p for p in candidates if p.is_dir()), None)


def resolve_wan22_folder(folder: str | Path) -> Wan22Files:
    """Find the files under ``folder`` (layout in README "FantasyWorld on Wan2.2-Fun-A14B"); the official
    ``--wan_ckpt_path`` layout (``PAI/…``, tokenizer under ``Wan-AI/Wan2.1-T2V-1.3B/``) is accepted too."""
    folder = Path(folder)
    base = _first_dir([folder / BASE_DIRNAME, folder / "PAI" / BASE_DIRNAME])
    if base is None and (folder / EXPERT_DIRS["high"]).is_dir():
        base = folder
    if base is None:
        raise CheckpointError(
            f"{folder}: no {BASE_DIRNAME}/ folder (with high_noise_model/ and low_noise_model/) found in it"
        )
    lora_dir = _first_dir([folder / LORA_DIRNAME, folder / "PAI" / LORA_DIRNAME]) or folder
    tokenizer = _first_dir(
        [
            base / "google" / "umt5-xxl",
            folder / "google" / "umt5-xxl",
            folder / "Wan-AI" / "Wan2.1-T2V-1.3B" / "google" / "umt5-xxl",
        ]
    )
    files = Wan22Files(
        base_dir=base,
        expert_dirs={e: base / d for e, d in EXPERT_DIRS.items()},
        reward_loras={e: lora_dir / n for e, n in REWARD_LORAS.items()},
        fantasy={e: folder / n for e, n in EXPERT_FILES.items()},
        vae=base / VAE_FILE,
        t5=base / T5_FILE,
        tokenizer=tokenizer or base / "google" / "umt5-xxl",
    )
    needed: list[tuple[str, Path]] = [(f"{e} expert shards folder", p) for e, p in files.expert_dirs.items()]
    needed += [(f"{e} reward LoRA", p) for e, p in files.reward_loras.items()]
    needed += [(f"FantasyWorld {e} expert", p) for e, p in files.fantasy.items()]
    needed += [("Wan VAE", files.vae), ("umT5 encoder", files.t5), ("umT5 tokenizer folder", files.tokenizer)]
    for what, path in needed:
        if not path.exists():
            raise CheckpointError(f"{folder}: missing the {what} ({path.relative_to(folder)})")
    return files


def expert_shards(expert_dir: str | Path) -> list[Path]:
    """The shard files of one expert: those its index names, else every file of the official glob,
    checked complete (``-00001-of-00006`` … ``-00006-of-00006``, with or without a ``-bf16`` tail)."""
    expert_dir = Path(expert_dir)
    index = expert_dir / SHARD_INDEX
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{index}: not a valid shard index (needs a 'weight_map'): {exc}") from None
        names = sorted(set(weight_map.values()))
        missing = [n for n in names if not (expert_dir / n).is_file()]
        if missing:
            raise CheckpointError(f"{index}: shard files missing next to the index: {', '.join(missing)}")
        return [expert_dir / n for n in names]
    shards = sorted(expert_dir.glob(SHARD_GLOB))
    if not shards:
        raise CheckpointError(f"{expert_dir}: no {SHARD_GLOB} files and no {SHARD_INDEX}")
    numbered = [_SHARD_NUMBER.search(p.name) for p in shards]
    if all(numbered):
        totals = {int(m.group(2)) for m in numbered}
        seen = sorted(int(m.group(1)) for m in numbered)
        if len(totals) != 1 or seen != list(range(1, totals.pop() + 1)):
            raise CheckpointError(
                f"{expert_dir}: incomplete or mixed shard set {[p.name for p in shards]}; expected "
                "diffusion_pytorch_model-0000k-of-0000n shards k = 1..n of one n"
            )
    elif len(shards) > 1:
        raise CheckpointError(f"{expert_dir}: several unnumbered weight files {[p.name for p in shards]}")
    return shards


def read_expert_base(expert_dir: str | Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """The expert DiT's weights under Wan names (``blocks.0.self_attn.q.weight``, ``control_adapter.*``)."""
    state: dict[str, torch.Tensor] = {}
    for shard in expert_shards(expert_dir):
        part = read_state_dict(shard, device=device)
        dup = sorted(set(part) & set(state))
        if dup:
            raise CheckpointError(f"{shard}: keys also in another shard: {', '.join(dup[:8])}")
        state.update(part)
    for prefix in _WRAPPERS:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
            break
    return state


def check_base_keys(model: FantasyWorldModel, base: dict[str, torch.Tensor], source: str) -> LoadReport:
    """Strict check of the expert shards against the DiT (Wan keys of ``model``, without ``dit.``)."""
    own = {k[len("dit.") :]: v for k, v in model.state_dict().items() if is_wan_key(k)}
    report = LoadReport(source=source)
    report.missing = sorted(set(own) - set(base))
    report.unexpected = sorted(set(base) - set(own))
    report.mismatched = [
        (k, tuple(base[k].shape), tuple(own[k].shape))
        for k in sorted(set(own) & set(base))
        if tuple(base[k].shape) != tuple(own[k].shape)
    ]
    report.loaded = sorted(set(own) & set(base))
    if not report.ok:
        raise CheckpointError(report.summary())
    return report


@dataclass
class Wan22ExpertReport:
    """Key reports of one expert's three sources."""

    expert: str
    base: LoadReport
    lora: LoraMergeReport
    official: OfficialLoadReport

    def summary(self) -> str:
        return (
            f"{self.expert} expert: {self.base.summary()} | {self.lora.summary()} | {self.official.summary()}"
        )


def load_wan22_expert(
    expert_dir: str | Path,
    lora_path: str | Path,
    expert_pth: str | Path,
    *,
    expert: str,
    cfg: FantasyWorldConfig | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = torch.bfloat16,
    lora_multiplier: float = REWARD_LORA_MULTIPLIER,
    merge_dtype: torch.dtype = torch.bfloat16,
) -> tuple[FantasyWorldModel, Wan22ExpertReport]:
    """Build one expert on the meta device and fill it: base shards, + LoRA (bf16 merge), + expert file."""
    cfg = cfg or fantasy_world_config(WAN22_CONFIG)
    if not cfg.has_control:
        raise CheckpointError(f"config {cfg.name!r} has no control adapter: expected a Wan2.2-Fun config")
    with torch.device("meta"):
        model = FantasyWorldModel(cfg)
    base = read_expert_base(expert_dir, device=str(device))
    base_report = check_base_keys(model, base, source=str(expert_dir))
    state = {
        "dit." + k: v.to(dtype) if dtype is not None and v.is_floating_point() else v for k, v in base.items()
    }
    del base
    lora = read_state_dict(lora_path, device=str(device))
    lora_report = merge_lora(
        state, lora, multiplier=lora_multiplier, source=str(lora_path), prefix="dit.", dtype=merge_dtype
    )
    del lora
    official = read_state_dict(expert_pth, device=str(device))
    official_report = load_official_state(model, official, source=str(expert_pth), base=state, dtype=dtype)
    if official_report.unmapped:
        raise CheckpointError(
            f"{expert_pth}: names that are not FantasyWorld (Wan2.2) parameters, which the official loader "
            f"also refuses: {', '.join(official_report.unmapped[:8])}"
        )
    report = Wan22ExpertReport(expert=expert, base=base_report, lora=lora_report, official=official_report)
    log.info(report.summary())
    return model.eval(), report


def load_official_wan22(
    folder: str | Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = torch.bfloat16,
    cfg: FantasyWorldConfig | None = None,
) -> tuple[dict[str, FantasyWorldModel], dict[str, Wan22ExpertReport], Wan22Files]:
    """Both experts (``{'high': …, 'low': …}``) with their reports and the resolved file set."""
    files = resolve_wan22_folder(folder)
    models: dict[str, FantasyWorldModel] = {}
    reports: dict[str, Wan22ExpertReport] = {}
    for expert in WAN22_FUN_EXPERTS.names:
        models[expert], reports[expert] = load_wan22_expert(
            files.expert_dirs[expert],
            files.reward_loras[expert],
            files.fantasy[expert],
            expert=expert,
            cfg=cfg,
            device=device,
            dtype=dtype,
        )
    return models, reports, files
