"""Noise levels for training: the video law (the sampler's shifted schedule) and the geometry law.

See :class:`~fantasy_world.training.config.TimestepConfig` for why geometry is trained where it is.
Every draw takes uniform numbers from the caller, so all processes can draw the *global* batch from one
shared generator and keep their own slice (1 GPU and N GPUs then see identical noise levels).
"""

from __future__ import annotations

import torch

from fantasy_world.sampling.flow_matching import shift_sigmas
from fantasy_world.training.config import TimestepConfig


def reference_sigma(cfg: TimestepConfig) -> float:
    """σ of the last sampling step of a ``ref_steps``-step schedule (where geometry is read out)."""
    return float(shift_sigmas(torch.tensor(1.0 / cfg.ref_steps, dtype=torch.float64), cfg.shift))


def video_sigmas(u: torch.Tensor, cfg: TimestepConfig) -> torch.Tensor:
    """σ = shift(u) for uniform ``u`` in [0, 1): the flow-matching training law of Wan."""
    return shift_sigmas(u.double(), cfg.shift).float().clamp(1e-4, 1.0)


def geometry_sigmas(u: torch.Tensor, pick_ref: torch.Tensor, cfg: TimestepConfig) -> torch.Tensor:
    """σ_ref where ``pick_ref`` (uniforms < geo_ref_prob), else u^geo_power (mostly low noise)."""
    spread = u.float().clamp(0.0, 1.0).pow(cfg.geo_power).clamp(1e-4, 1.0)
    ref = torch.full_like(spread, reference_sigma(cfg))
    return torch.where(pick_ref < cfg.geo_ref_prob, ref, spread)


def geometry_weight(sigma: torch.Tensor, cfg: TimestepConfig) -> torch.Tensor:
    """1 up to σ_ref, then ((1 − σ) / (1 − σ_ref))²: heavily noised samples say little about geometry."""
    ref = reference_sigma(cfg)
    w = ((1.0 - sigma.float()) / (1.0 - ref)).clamp(min=0.0, max=1.0)
    return w.pow(2)
