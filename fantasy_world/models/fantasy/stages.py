"""Training stages: which parameter groups learn (paper §4 "latent bridging" then "co-optimisation").

Groups, by state-dict name:

* ``dit`` — the Wan DiT, every parameter (blocks *and* embeddings/head; the seed left the latter
  trainable by mistake). Always frozen.
* ``bridge`` — the latent bridge.  ``geometry`` — geometry time embedding, special tokens, frame blocks,
  the IRG global blocks (``irg.*.x_agg``).  ``heads`` — depth, point and camera heads.
* ``bicross`` — the IRG bidirectional cross-attentions.  ``camera`` — pose encoder and the camera
  adapters inside the DiT's cross-attentions, or Wan-Fun's control adapter (``dit.control_adapter``).

Stage 1 trains bridge, geometry and heads on the geometry losses with the bicross gates frozen at zero
(the video stream is then exactly the base model's) and the camera path frozen. Stage 2 also trains the
bicross attention and the camera path.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import torch
from torch import nn

from fantasy_world.errors import InputError

log = logging.getLogger(__name__)

GROUPS: tuple[str, ...] = ("dit", "bridge", "geometry", "bicross", "heads", "camera")
_TRAINABLE: dict[int, frozenset[str]] = {
    1: frozenset({"bridge", "geometry", "heads"}),
    2: frozenset({"bridge", "geometry", "heads", "bicross", "camera"}),
}


def parameter_group(name: str) -> str:
    """The group of a parameter given its name in the model's state dict."""
    if ".camera_adapter." in name or name.startswith(("pose_encoder.", "dit.control_adapter.")):
        return "camera"
    if name.startswith("dit."):
        return "dit"
    if name.startswith("bridge."):
        return "bridge"
    if name.startswith(("geo_time.", "aggregator.")) or (name.startswith("irg.") and ".x_agg." in name):
        return "geometry"
    if name.startswith("irg.") and ".bicross_attention." in name:
        return "bicross"
    if name.startswith(("depth_head.", "point_head.", "camera_head.")):
        return "heads"
    raise InputError(f"parameter {name!r}: not in any FantasyWorld parameter group {GROUPS}")


def named_parameters_by_group(model: nn.Module) -> Iterator[tuple[str, str, nn.Parameter]]:
    """(group, name, parameter) for every parameter of the model."""
    for name, param in model.named_parameters():
        yield parameter_group(name), name, param


def parameter_counts(model: nn.Module, trainable_only: bool = False) -> dict[str, int]:
    """Number of parameters per group (all, or only those with ``requires_grad``); works on meta models."""
    counts = dict.fromkeys(GROUPS, 0)
    for group, _, param in named_parameters_by_group(model):
        if param.requires_grad or not trainable_only:
            counts[group] += param.numel()
    return counts


def set_training_stage(model: nn.Module, stage: int) -> dict[str, int]:
    """Set ``requires_grad`` for training stage 1 or 2; returns trainable parameter counts per group.

    Entering stage 1 also puts the bicross gates back to zero, since stage 1 is defined as the
    uncoupled model (a warning is logged if they were not zero already).
    """
    if stage not in _TRAINABLE:
        raise InputError(f"training stage {stage!r}: expected 1 or 2")
    trainable = _TRAINABLE[stage]
    for group, name, param in named_parameters_by_group(model):
        param.requires_grad_(group in trainable)
        if stage == 1 and group == "bicross" and name.rsplit(".", 1)[-1].startswith("gamma_"):
            if not param.is_meta and bool(param.detach().any()):
                log.warning("stage 1: resetting non-zero bicross gate %s to zero", name)
            with torch.no_grad():
                param.zero_()
    counts = parameter_counts(model, trainable_only=True)
    log.info("training stage %d: trainable parameters %s", stage, counts)
    return counts
