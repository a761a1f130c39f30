"""A reduced FantasyWorld model whose branches all act, plus one denoising step's inputs (shared test setup).

Plain module, not a fixture: the two-process parallel tests build it inside spawned workers too.
"""

from __future__ import annotations

import torch

from fantasy_world.models.fantasy.config import fantasy_world_config, reduced
from fantasy_world.models.fantasy.model import FantasyWorldModel


def gated_model_step(
    seed: int,
) -> tuple[FantasyWorldModel, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict]:
    """Reduced ``wan2.1-t2v-1.3b`` in eval mode with a live output head and open bicross gates (0.3).

    Returns (model, x, t, cond, uncond, kw) with ``kw`` = camera features and ``image_hw``.
    """
    torch.manual_seed(seed)
    cfg = reduced(fantasy_world_config("wan2.1-t2v-1.3b"))
    model = FantasyWorldModel(cfg).eval()
    with torch.no_grad():
        model.dit.head.head.weight.normal_(std=0.2)
        for irg in model.irg:
            irg.bicross_attention.gamma_m1.fill_(0.3)
            irg.bicross_attention.gamma_m2.fill_(0.3)
        camera = model.encode_camera(torch.randn(1, 5, 32, 48, 6))
    d = cfg.dit
    x, t = torch.randn(1, 16, 2, 4, 6), torch.tensor([700.0])
    cond, uncond = torch.randn(1, d.text_len, d.text_dim), torch.randn(1, d.text_len, d.text_dim)
    return model, x, t, cond, uncond, {"camera": camera, "image_hw": (32, 48)}
