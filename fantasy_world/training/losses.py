"""Training losses: flow-matching velocity MSE and the VGGT-style geometry losses of FantasyWorld.

Every function returns **per-sample** values ``[B]`` so that the caller can weight samples by their noise
level (geometry is only predictable from lightly noised latents) before averaging over the batch.

* Depth / point maps: ``γ·conf·|e| − α·log(conf)`` on valid pixels (confidence ≥ 1 from the heads'
  ``expp1`` activation: a pixel may buy a smaller weight on its error with a log penalty), plus the plain
  error ``|e|`` and a confidence-weighted multi-scale spatial-gradient term of ``e`` that rewards sharp,
  correctly placed depth edges. ``e`` is the Euclidean error per pixel (1-d for depth, 3-d for points).
* Camera: smooth-L1 (Huber) on the 9-d ``absT_quaR_FoV`` encoding, per refinement iteration, later
  iterations weighted more (VGGT).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fantasy_world.training.config import GeometryLossConfig


def flow_matching_loss(velocity: torch.Tensor, noise: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """Per-sample MSE between the predicted velocity and the flow-matching target ``noise − x0``."""
    err = (velocity.float() - (noise.float() - x0.float())).pow(2)
    return err.flatten(1).mean(dim=1)


def _per_sample_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over the True entries of ``mask``, per sample (dim 0); 0 where none."""
    m = mask.to(values.dtype)
    num = (values * m).flatten(1).sum(dim=1)
    den = m.flatten(1).sum(dim=1)
    return num / den.clamp(min=1.0)


def _gradient_term(
    diff: torch.Tensor, valid: torch.Tensor, conf: torch.Tensor, cfg: GeometryLossConfig
) -> torch.Tensor:
    """Confidence-weighted L1 of the horizontal/vertical differences of the error map, over
    ``grad_scales`` subsampled scales; ``diff`` [B, T, H, W, C], ``valid``/``conf`` [B, T, H, W]."""
    b, c = diff.shape[0], diff.shape[-1]
    total = diff.new_zeros(b)
    for scale in range(cfg.grad_scales):
        step = 2**scale
        d = diff[:, :, ::step, ::step]
        m = valid[:, :, ::step, ::step]
        w = conf[:, :, ::step, ::step]
        d = torch.where(m[..., None], d, torch.zeros_like(d))
        per_dir = []
        for axis in (2, 3):
            n = d.shape[axis]
            if n < 2:
                continue
            g = (d.narrow(axis, 1, n - 1) - d.narrow(axis, 0, n - 1)).abs().clamp(max=100.0)
            edge = m.narrow(axis, 1, n - 1) & m.narrow(axis, 0, n - 1)
            cw = torch.where(edge, w.narrow(axis, 1, n - 1), torch.ones_like(w.narrow(axis, 1, n - 1)))
            term = cfg.conf_gamma * g * cw[..., None] - cfg.conf_alpha * torch.log(cw)[..., None]
            per_dir.append((term * edge[..., None]).flatten(1).sum(dim=1))
        count = m.flatten(1).sum(dim=1).to(diff.dtype) * c
        total = total + sum(per_dir, diff.new_zeros(b)) / count.clamp(min=1.0)
    return total / cfg.grad_scales


def regression_loss(
    pred: torch.Tensor,
    gt: torch.Tensor,
    valid: torch.Tensor,
    conf: torch.Tensor,
    cfg: GeometryLossConfig,
) -> dict[str, torch.Tensor]:
    """Confidence-weighted dense regression (VGGT) → per-sample ``conf``, ``reg`` and ``grad`` terms.

    ``pred``/``gt`` [B, T, H, W, C] (C = 1 for depth, 3 for points), ``valid`` bool and ``conf`` (≥ 1)
    [B, T, H, W]. Invalid pixels (sky) contribute nothing.
    """
    pred, gt, conf = pred.float(), gt.float(), conf.float()
    diff = pred - gt
    err = torch.linalg.vector_norm(diff, dim=-1)
    safe_conf = torch.where(valid, conf, torch.ones_like(conf))
    conf_term = cfg.conf_gamma * err * safe_conf - cfg.conf_alpha * torch.log(safe_conf)
    return {
        "conf": _per_sample_mean(conf_term, valid),
        "reg": _per_sample_mean(err, valid),
        "grad": _gradient_term(diff, valid, safe_conf, cfg),
    }


def dense_loss(terms: dict[str, torch.Tensor], cfg: GeometryLossConfig) -> torch.Tensor:
    """Combine :func:`regression_loss` terms into one per-sample value."""
    return terms["conf"] + cfg.reg_weight * terms["reg"] + cfg.grad_weight * terms["grad"]


def camera_loss(
    pose_iters: list[torch.Tensor], gt_pose: torch.Tensor, cfg: GeometryLossConfig
) -> dict[str, torch.Tensor]:
    """Per-sample Huber losses of the 9-d encodings, averaged over refinement iterations.

    ``pose_iters``: the camera head's output per iteration, each [B, T, 9]; ``gt_pose`` [B, T, 9].
    Returns ``camera`` (weighted total) and its ``trans``, ``rot`` and ``fov`` parts.
    """
    n = len(pose_iters)
    gt = gt_pose.float()
    parts = {"trans": 0.0, "rot": 0.0, "fov": 0.0}
    for i, pred in enumerate(pose_iters):
        w = cfg.iter_gamma ** (n - 1 - i)
        e = F.smooth_l1_loss(pred.float(), gt, reduction="none", beta=cfg.huber_beta)
        parts["trans"] = parts["trans"] + w * e[..., :3].flatten(1).mean(dim=1)
        parts["rot"] = parts["rot"] + w * e[..., 3:7].flatten(1).mean(dim=1)
        parts["fov"] = parts["fov"] + w * e[..., 7:].flatten(1).mean(dim=1)
    out = {k: v / n for k, v in parts.items()}
    out["camera"] = (
        cfg.camera_trans * out["trans"] + cfg.camera_rot * out["rot"] + cfg.camera_fov * out["fov"]
    )
    return out


def vae_loss(
    recon: torch.Tensor,
    target: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    l1: float,
    l2: float,
    kl: float,
) -> dict[str, torch.Tensor]:
    """Reconstruction (L1, L2 on [-1, 1] video) and the Gaussian KL to N(0, 1), element means, per sample."""
    d = recon.float() - target.float()
    l1_term = d.abs().flatten(1).mean(dim=1)
    l2_term = d.pow(2).flatten(1).mean(dim=1)
    lv = logvar.float().clamp(-30.0, 20.0)
    kl_term = 0.5 * (mu.float().pow(2) + lv.exp() - 1.0 - lv).flatten(1).mean(dim=1)
    total = l1 * l1_term + l2 * l2_term + kl * kl_term
    return {"loss": total, "l1": l1_term, "l2": l2_term, "kl": kl_term}
