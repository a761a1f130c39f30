"""Periodic sample images during training (PNG strips), so a run can be judged by eye as well as by loss.

* text-to-video and stage 2: a short flow-matching sample (EMA weights, guidance) from a fixed caption,
  decoded by the VAE: first / middle / last frame side by side.
* geometry: a fixed clip noised to the geometry read-out level; rows are input frame, ground-truth depth
  and predicted depth (each depth map min-max normalised over the pair).
* VAE: input and reconstruction of a fixed clip.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fantasy_world.models.fantasy.model import FantasyWorldModel
from fantasy_world.models.wan.vae import WanVAE
from fantasy_world.sampling.flow_matching import apply_guidance, flow_match_schedule, seeded_noise
from fantasy_world.training.batch import Batch
from fantasy_world.training.config import TimestepConfig
from fantasy_world.training.targets import build_targets
from fantasy_world.training.tasks import dit_forward
from fantasy_world.training.text import CaptionEncoder
from fantasy_world.training.timesteps import reference_sigma


def _to_uint8(video: torch.Tensor) -> np.ndarray:
    """[3, T, H, W] in [-1, 1] → uint8 [T, H, W, 3]."""
    v = ((video.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return v.permute(1, 2, 3, 0).cpu().numpy()


def _strip(frames: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(frames, axis=1)


def _grey(depth: np.ndarray, lo: float, hi: float) -> np.ndarray:
    g = np.clip((depth - lo) / max(hi - lo, 1e-6), 0, 1)
    return np.repeat((g * 255).astype(np.uint8)[..., None], 3, axis=-1)


def save_png(image: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


@torch.no_grad()
def sample_video(
    model: FantasyWorldModel,
    vae: WanVAE,
    text: CaptionEncoder,
    caption: str,
    latent_shape: tuple[int, ...],
    steps: int = 10,
    guidance: float = 4.0,
    shift: float = 5.0,
    seed: int = 0,
) -> np.ndarray:
    """A text-to-video sample of the base DiT (no camera): uint8 [T, H, W, 3]."""
    device = next(model.parameters()).device
    cond, uncond = text.encode([caption]), text.null(1)
    x = seeded_noise((1, *latent_shape), seed, device)
    schedule = flow_match_schedule(steps, shift=shift)
    for i in range(steps):
        t = schedule.timesteps[i : i + 1].to(device, torch.float32)
        v_c = dit_forward(model.dit, x, t, cond, ckpt=False)
        v_u = dit_forward(model.dit, x, t, uncond, ckpt=False) if guidance != 1.0 else None
        x = schedule.step(x, apply_guidance(v_c, v_u, guidance), i)
    return _to_uint8(vae.decode(x)[0])


def video_strip(video: np.ndarray) -> np.ndarray:
    t = video.shape[0]
    return _strip([video[0], video[t // 2], video[-1]])


@torch.no_grad()
def geometry_strip(
    model: FantasyWorldModel, text: CaptionEncoder, batch: Batch, cfg: TimestepConfig
) -> np.ndarray:
    """Input / GT depth / predicted depth for the first, middle and last frame of ``batch`` clip 0."""
    x0 = batch.latents[:1].float()
    sigma = reference_sigma(cfg)
    noise = seeded_noise(tuple(x0.shape), 0, x0.device)
    x = (1 - sigma) * x0 + sigma * noise
    ctx = batch.text[:1] if batch.text is not None else text.encode(batch.captions[:1])
    hw = tuple(int(s) for s in batch.depth.shape[-2:])
    t = torch.full((1,), sigma * 1000.0, device=x.device)
    geo = model(x, t, ctx, return_geometry=True, image_hw=hw).geometry
    targets = build_targets(batch.depth[:1], batch.valid[:1], batch.intrinsics[:1], batch.c2w[:1])
    gt = targets.depth[0].cpu().numpy()
    pred = geo.depth[0].float().cpu().numpy()
    valid = targets.valid[0].cpu().numpy()
    lo, hi = np.percentile(gt[valid], [2, 98]) if valid.any() else (0.0, 1.0)
    rgb = (batch.frames[0].permute(0, 2, 3, 1).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    idx = [0, gt.shape[0] // 2, gt.shape[0] - 1]
    rows = [
        _strip([rgb[i] for i in idx]),
        _strip([_grey(np.where(valid[i], gt[i], hi), lo, hi) for i in idx]),
        _strip([_grey(pred[i], lo, hi) for i in idx]),
    ]
    return np.concatenate(rows, axis=0)


@torch.no_grad()
def vae_strip(vae: WanVAE, batch: Batch) -> np.ndarray:
    """Input (top) and reconstruction (bottom) of ``batch`` clip 0."""
    video = batch.video()[:1]
    recon = vae.decode(vae.encode(video))
    a, b = _to_uint8(video[0]), _to_uint8(recon[0])
    return np.concatenate([video_strip(a), video_strip(b)], axis=0)
