"""Model weights between training phases: fresh initialisation, reading and writing model folders.

Phases hand each other ordinary model folders (``fantasyworld.json`` + ``model.safetensors`` +
``vae.safetensors``, see :mod:`fantasy_world.model_folder`), so every intermediate result also loads in
the pipeline. Reading here skips the text encoder, which training does not need from the folder.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from fantasy_world.checkpoints import load_into_model, read_state_dict
from fantasy_world.checkpoints.sharding import weights_path
from fantasy_world.model_folder import (
    MODEL_FILE,
    VAE_FILE,
    read_folder_config,
)
from fantasy_world.models.fantasy.config import FantasyWorldConfig, fantasy_world_config
from fantasy_world.models.fantasy.model import FantasyWorldModel
from fantasy_world.models.wan.vae import WanVAE, WanVAEConfig, wan_vae_config
from fantasy_world.utils.dataclass_io import config_from_dict


def fresh_models(
    preset: str = "tiny", seed: int = 0, vae_preset: str = "tiny"
) -> tuple[FantasyWorldModel, WanVAE]:
    """Seeded random initialisation of a preset model and VAE (the global RNG is left untouched)."""
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = FantasyWorldModel(fantasy_world_config(preset))
        vae = WanVAE(wan_vae_config(vae_preset))
    finally:
        torch.random.set_rng_state(state)
    return model, vae


def load_weights_folder(folder: str | Path) -> tuple[FantasyWorldModel, WanVAE, dict[str, Any]]:
    """Model and VAE of one of our model folders, in float32 on the CPU, plus the folder's JSON."""
    folder = Path(folder)
    meta = read_folder_config(folder)
    cfg = config_from_dict(FantasyWorldConfig, meta["model"], "model")
    vae_cfg = config_from_dict(WanVAEConfig, meta["vae"], "vae")
    with torch.device("meta"):
        model = FantasyWorldModel(cfg)
        vae = WanVAE(vae_cfg)
    model_file, vae_file = weights_path(folder, MODEL_FILE), weights_path(folder, VAE_FILE)
    load_into_model(model, read_state_dict(model_file), source=str(model_file), dtype=torch.float32)
    load_into_model(vae, read_state_dict(vae_file), source=str(vae_file), dtype=torch.float32)
    return model, vae, meta


def with_latent_stats(vae: WanVAE, mean: torch.Tensor, std: torch.Tensor) -> WanVAE:
    """A copy of ``vae`` whose config carries per-channel latent statistics (what ``encode`` removes)."""
    cfg = dataclasses.replace(
        vae.cfg,
        latents_mean=tuple(float(v) for v in mean.flatten()),
        latents_std=tuple(float(v) for v in std.flatten()),
    )
    out = WanVAE(cfg).to(next(vae.parameters()).device)
    out.load_state_dict(vae.state_dict())
    return out


@torch.no_grad()
def latent_statistics(raw_mu: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of raw posterior means [N, z, f, h, w]."""
    x = raw_mu.float().transpose(0, 1).flatten(1)
    return x.mean(dim=1), x.std(dim=1).clamp(min=1e-4)
