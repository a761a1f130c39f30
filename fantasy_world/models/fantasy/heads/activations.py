"""Output activations of the VGGT heads (``head_act.py``): dense values, confidences and pose parts."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

DenseActivation = Literal["exp", "inv_log", "linear", "relu"]
ConfActivation = Literal["expp1", "expp0", "sigmoid"]
PoseActivation = Literal["linear", "relu", "exp", "inv_log"]


def exp(y: torch.Tensor) -> torch.Tensor:
    """Strictly positive values (depth)."""
    return torch.exp(y)


def expp1(y: torch.Tensor) -> torch.Tensor:
    """Confidence ``1 + exp(y)``: always above 1, so a threshold of 1 keeps every pixel."""
    return 1 + torch.exp(y)


def inv_log(y: torch.Tensor) -> torch.Tensor:
    """``sign(y)·(exp|y| − 1)``: undoes a signed log so the head can span large world coordinates."""
    return torch.sign(y) * torch.expm1(torch.abs(y))


_DENSE = {"exp": exp, "inv_log": inv_log, "linear": lambda y: y, "relu": F.relu}
_CONF = {"expp1": expp1, "expp0": torch.exp, "sigmoid": torch.sigmoid}
_POSE = {"linear": lambda y: y, "relu": F.relu, "exp": torch.exp, "inv_log": inv_log}


def activate_dense(
    out: torch.Tensor, activation: DenseActivation, conf_activation: ConfActivation = "expp1"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a head map [N, K+1, H, W] into values [N, H, W, K] and confidence [N, H, W] (last channel)."""
    fmap = out.permute(0, 2, 3, 1)
    return _DENSE[activation](fmap[..., :-1]), _CONF[conf_activation](fmap[..., -1])


def activate_pose(
    enc: torch.Tensor,
    trans_act: PoseActivation = "linear",
    quat_act: PoseActivation = "linear",
    fov_act: PoseActivation = "relu",
) -> torch.Tensor:
    """Activate a 9-d ``absT_quaR_FoV`` encoding part by part: T [0:3], quaternion [3:7], FoVs [7:9]."""
    return torch.cat(
        [_POSE[trans_act](enc[..., :3]), _POSE[quat_act](enc[..., 3:7]), _POSE[fov_act](enc[..., 7:])], dim=-1
    )
