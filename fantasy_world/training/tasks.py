"""The three training objectives as modules whose ``forward`` returns ``(loss, per-term values)``.

Each task has a ``prepare`` step (no gradients: VAE encoding, caption features, noise, targets) and a
``forward`` that the trainer wraps in DDP, so gradient synchronisation sees every trainable parameter.

* :class:`VAETask` — the video VAE on random windows/crops (reconstruction + KL).
* :class:`TextToVideoTask` — the base Wan DiT as a text-to-video flow-matching model (our stand-in for
  Wan's pretraining).
* :class:`GeometryTask` — FantasyWorld stage 1 (bridge, geometry branch, heads; base frozen, gates at 0)
  or stage 2 (+ bidirectional cross-attention and the camera path, with the flow-matching loss).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from fantasy_world.models.fantasy.model import FantasyWorldModel
from fantasy_world.models.fantasy.stages import parameter_group, set_training_stage
from fantasy_world.models.wan.dit import WanDiT
from fantasy_world.models.wan.vae import WanVAE
from fantasy_world.training.batch import Batch
from fantasy_world.training.config import TrainConfig
from fantasy_world.training.draws import Draws
from fantasy_world.training.losses import (
    camera_loss,
    dense_loss,
    flow_matching_loss,
    regression_loss,
    vae_loss,
)
from fantasy_world.training.targets import GeometryTargets, batch_plucker, build_targets
from fantasy_world.training.text import CaptionEncoder
from fantasy_world.training.timesteps import geometry_sigmas, geometry_weight, video_sigmas

Terms = dict[str, torch.Tensor]

# Known-pose camera tokens exist for official-checkpoint parity but no forward pass uses them.
UNUSED_PREFIXES: tuple[str, ...] = ("aggregator.cam_token_projector.",)


class TrainTask(nn.Module):
    """Base class: ``saved`` is the module whose weights a checkpoint stores and an export ships."""

    name = "task"

    @property
    def saved(self) -> nn.Module:
        raise NotImplementedError

    def trainable(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for n, p in self.saved.named_parameters() if p.requires_grad]

    def prepare(self, batch: Batch, draws: Draws) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def find_unused_parameters(self) -> bool:
        return False


def _noised(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    s = sigma.view(-1, *([1] * (x0.dim() - 1))).to(x0.dtype)
    return (1.0 - s) * x0 + s * noise


def _context(batch: Batch, text: CaptionEncoder, draws: Draws, dropout: float) -> torch.Tensor:
    ctx = batch.text if batch.text is not None else text.encode(batch.captions)
    drop = draws.uniform() < dropout
    return torch.where(drop.view(-1, 1, 1), text.null(ctx.shape[0]).to(ctx), ctx)


@torch.no_grad()
def _latents(batch: Batch, vae: WanVAE) -> torch.Tensor:
    if batch.latents is not None:
        return batch.latents.float()
    return vae.encode(batch.video()).float()


def dit_forward(dit: WanDiT, x: torch.Tensor, t: torch.Tensor, ctx: torch.Tensor, ckpt: bool) -> torch.Tensor:
    """``WanDiT.forward`` with optional activation checkpointing of every block."""
    state = dit.embed(x, t, ctx)
    tokens = state.tokens
    for block in dit.blocks:
        if ckpt and torch.is_grad_enabled():
            tokens = checkpoint(block, tokens, state, None, use_reentrant=False)
        else:
            tokens = block(tokens, state)
    return dit.finalize(tokens, state)


class VAETask(TrainTask):
    name = "vae"

    def __init__(self, vae: WanVAE, cfg: TrainConfig) -> None:
        super().__init__()
        self.vae = vae
        self.cfg = cfg
        vae.requires_grad_(True)

    @property
    def saved(self) -> nn.Module:
        return self.vae

    def prepare(self, batch: Batch, draws: Draws) -> dict[str, Any]:
        lc = self.cfg.vae_loss
        video = batch.video()
        _, _, t, h, w = video.shape
        frames = min(lc.clip_frames, t)
        ch, cw = lc.crop if lc.crop is not None else (h, w)
        ch, cw = min(ch, h), min(cw, w)
        starts = draws.uniform(3)
        windows = []
        for i in range(video.shape[0]):
            t0 = int(starts[i, 0] * (t - frames + 1))
            y0 = int(starts[i, 1] * (h - ch + 1))
            x0 = int(starts[i, 2] * (w - cw + 1))
            windows.append(video[i, :, t0 : t0 + frames, y0 : y0 + ch, x0 : x0 + cw])
        clip = torch.stack(windows)
        z, f, lh, lw = self.vae.latent_shape(frames, ch, cw)
        return {"video": clip, "eps": draws.normal(z, f, lh, lw)}

    def forward(self, video: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, Terms]:
        lc = self.cfg.vae_loss
        mu, logvar = self.vae.encode_moments(video)
        z = mu
        if lc.sample_posterior:
            z = mu + torch.exp(0.5 * logvar.float().clamp(-30.0, 20.0)).to(mu.dtype) * eps.to(mu.dtype)
        recon = self.vae._decode_raw(z)
        terms = vae_loss(recon, video, mu, logvar, lc.l1, lc.l2, lc.kl)
        with torch.no_grad():
            mse = (recon.float().clamp(-1, 1) - video.float()).pow(2).flatten(1).mean(dim=1)
            terms["psnr"] = 10.0 * torch.log10(4.0 / mse.clamp(min=1e-10))
        return terms["loss"].mean(), {k: v.mean() for k, v in terms.items()}


class TextToVideoTask(TrainTask):
    """Flow matching on the DiT alone (camera adapters, if installed, stay frozen and unused)."""

    name = "t2v"

    def __init__(self, model: FantasyWorldModel, vae: WanVAE, text: CaptionEncoder, cfg: TrainConfig) -> None:
        super().__init__()
        self.model = model
        self.vae = vae.requires_grad_(False)
        self.text = text
        self.cfg = cfg
        for name, p in model.named_parameters():
            p.requires_grad_(parameter_group(name) == "dit")

    @property
    def saved(self) -> nn.Module:
        return self.model

    def prepare(self, batch: Batch, draws: Draws) -> dict[str, Any]:
        x0 = _latents(batch, self.vae)
        ctx = _context(batch, self.text, draws, self.cfg.data.text_dropout)
        sigma = video_sigmas(draws.uniform(), self.cfg.timesteps)
        noise = draws.normal(*x0.shape[1:])
        return {"x": _noised(x0, noise, sigma), "t": sigma * 1000.0, "context": ctx, "noise": noise, "x0": x0}

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, noise: torch.Tensor, x0: torch.Tensor
    ) -> tuple[torch.Tensor, Terms]:
        v = dit_forward(self.model.dit, x, t, context, self.cfg.grad_checkpointing)
        fm = flow_matching_loss(v, noise, x0)
        return fm.mean(), {"fm": fm.mean()}


class GeometryTask(TrainTask):
    """FantasyWorld stage 1 or 2 on a frozen base DiT (see :mod:`fantasy_world.models.fantasy.stages`)."""

    name = "geometry"

    def __init__(
        self, model: FantasyWorldModel, vae: WanVAE, text: CaptionEncoder, cfg: TrainConfig, stage: int
    ) -> None:
        super().__init__()
        self.model = model
        self.vae = vae.requires_grad_(False)
        self.text = text
        self.cfg = cfg
        self.stage = stage
        set_training_stage(model, stage)
        for name, p in model.named_parameters():
            if name.startswith(UNUSED_PREFIXES):
                p.requires_grad_(False)
        model.gradient_checkpointing = cfg.grad_checkpointing
        self._pose_iters: list[torch.Tensor] = []
        model.camera_head.register_forward_hook(self._keep_pose_iters)

    def _keep_pose_iters(self, _module: nn.Module, _inputs: Any, output: list[torch.Tensor]) -> None:
        self._pose_iters = list(output)

    @property
    def saved(self) -> nn.Module:
        return self.model

    @property
    def find_unused_parameters(self) -> bool:
        return self.stage == 2 and self.cfg.data.camera_dropout > 0

    def prepare(self, batch: Batch, draws: Draws) -> dict[str, Any]:
        cfg = self.cfg
        x0 = _latents(batch, self.vae)
        ctx = _context(batch, self.text, draws, cfg.data.text_dropout)
        u = draws.uniform(3)
        sigma = geometry_sigmas(u[:, 0], u[:, 1], cfg.timesteps)
        if self.stage == 2:
            video = video_sigmas(u[:, 0], cfg.timesteps)
            sigma = torch.where(u[:, 2] < cfg.timesteps.stage2_video_prob, video, sigma)
        noise = draws.normal(*x0.shape[1:])
        targets = build_targets(
            batch.depth, batch.valid, batch.intrinsics, batch.c2w, cfg.geo_loss.scale_trim_quantile
        )
        enough = targets.valid.flatten(1).sum(dim=1) >= cfg.geo_loss.min_valid_pixels
        weights = geometry_weight(sigma, cfg.timesteps) * enough.float()
        plucker = None
        use_camera = self.stage == 2 and draws.shared_uniform() >= cfg.data.camera_dropout
        if use_camera:
            h, w = batch.depth.shape[-2:]
            official = self.model.cfg.plucker_mode == "official"
            plucker = batch_plucker(targets.c2w, targets.intrinsics, int(h), int(w), official)
        return {
            "x": _noised(x0, noise, sigma),
            "t": sigma * 1000.0,
            "context": ctx,
            "noise": noise,
            "x0": x0,
            "plucker": plucker,
            "targets": targets,
            "weights": weights,
        }

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        context: torch.Tensor,
        noise: torch.Tensor,
        x0: torch.Tensor,
        plucker: torch.Tensor | None,
        targets: GeometryTargets,
        weights: torch.Tensor,
    ) -> tuple[torch.Tensor, Terms]:
        lc = self.cfg.geo_loss
        camera = self.model.encode_camera(plucker) if plucker is not None else None
        hw = tuple(int(s) for s in targets.depth.shape[-2:])
        out = self.model(x, t, context, camera=camera, return_geometry=True, image_hw=hw)
        geo = out.geometry
        assert geo is not None
        depth = regression_loss(
            geo.depth[..., None], targets.depth[..., None], targets.valid, geo.depth_conf, lc
        )
        points = regression_loss(geo.world_points, targets.points, targets.valid, geo.world_points_conf, lc)
        cam = camera_loss(self._pose_iters or [geo.pose_enc], targets.pose_enc, lc)
        per_sample = (
            lc.depth * dense_loss(depth, lc) + lc.points * dense_loss(points, lc) + lc.camera * cam["camera"]
        )
        geo_loss = (weights * per_sample).mean()
        terms: Terms = {
            "geo": geo_loss.detach(),
            "depth_conf": depth["conf"].mean(),
            "depth_reg": depth["reg"].mean(),
            "depth_grad": depth["grad"].mean(),
            "points_conf": points["conf"].mean(),
            "points_reg": points["reg"].mean(),
            "points_grad": points["grad"].mean(),
            "cam_trans": cam["trans"].mean(),
            "cam_rot": cam["rot"].mean(),
            "cam_fov": cam["fov"].mean(),
            "geo_weight": weights.mean(),
        }
        loss = lc.lambda_geo * geo_loss
        if self.stage == 2:
            fm = flow_matching_loss(out.velocity, noise, x0).mean()
            terms["fm"] = fm.detach()
            loss = loss + fm
        terms["camera_on"] = torch.tensor(float(plucker is not None), device=loss.device)
        return loss, terms
