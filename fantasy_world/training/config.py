"""Typed configuration of a training run: task, optimiser, EMA, data, timesteps and every loss weight.

Everything a run depends on lives here so that a checkpoint's ``trainer.json`` (which stores the whole
config) is enough to reproduce or resume it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from fantasy_world.errors import InputError

TaskName = Literal["vae", "t2v", "geometry"]
TASKS: tuple[str, ...] = ("vae", "t2v", "geometry")


@dataclass
class OptimConfig:
    """AdamW with linear warm-up, then cosine decay to ``min_lr_ratio`` · lr at the end of the run."""

    lr: float = 2e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.99)
    eps: float = 1e-8
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0


@dataclass
class EMAConfig:
    """Exponential moving average of the trainable weights; exported weights are the EMA ones.

    With ``warmup`` the decay used at update n is ``min(decay, (1 + n) / (10 + n))`` so that a short run
    is not dominated by its random initialisation.
    """

    decay: float = 0.999
    warmup: bool = True


@dataclass
class DataConfig:
    """Clip size, batch size per process, and where the clips come from.

    ``bank_size`` 0 streams clips from the dataset (rendered on demand, for CPU runs and tests); a positive
    ``bank_size`` renders that many clips once on the training device (milliseconds each on a GPU) and
    samples batches from them, epoch by epoch in a seeded order. With ``refresh_workers`` > 0, that many
    CPU processes keep rendering new worlds while the GPU trains; the bank grows to ``bank_capacity``
    clips and then replaces its oldest ones (:class:`fantasy_world.training.sources.RefreshingBank`);
    new clips are taken in only while data work stays under ``refresh_share`` of the step time.
    """

    num_frames: int = 17
    height: int = 128
    width: int = 192
    batch_size: int = 2
    seed_offset: int = 0
    bank_size: int = 0
    bank_time_s: float | None = None
    order_seed: int = 0
    text_dropout: float = 0.1
    camera_dropout: float = 0.15
    refresh_workers: int = 0
    bank_capacity: int = 0
    refresh_share: float = 0.06

    def __post_init__(self) -> None:
        if self.num_frames < 1 or (self.num_frames - 1) % 4:
            raise InputError(f"data.num_frames={self.num_frames}: expected 1 + 4k frames")
        if self.height % 16 or self.width % 16 or self.height <= 0 or self.width <= 0:
            raise InputError(f"data size {self.height}x{self.width}: expected positive multiples of 16")
        if self.batch_size < 1:
            raise InputError(f"data.batch_size={self.batch_size}: expected at least 1")
        if self.refresh_workers < 0 or self.bank_capacity < 0:
            raise InputError(
                f"data.refresh_workers={self.refresh_workers}, bank_capacity={self.bank_capacity}: "
                "expected non-negative integers"
            )
        if self.refresh_workers and not self.bank_size:
            raise InputError("data.refresh_workers needs a clip bank: set data.bank_size > 0")
        for name in ("text_dropout", "camera_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise InputError(f"data.{name}={getattr(self, name)}: expected a probability in [0, 1)")


@dataclass
class VAELossConfig:
    """VAE objective: L1 + L2 reconstruction + a small KL, on random windows and crops of the clips."""

    l1: float = 1.0
    l2: float = 1.0
    kl: float = 1e-5
    clip_frames: int = 9
    crop: tuple[int, int] | None = (64, 96)
    sample_posterior: bool = True


@dataclass
class TimestepConfig:
    """Noise levels σ (flow matching: x_σ = (1−σ)·x0 + σ·ε, timestep = 1000·σ).

    Video: σ = shift(u), u ~ U(0, 1), the shifted schedule the sampler walks (shift 5).
    Geometry: the sampler reads geometry at the last step, σ_ref = shift(1 / ref_steps) (0.357 for the
    10-step default; 0.093 for 50 steps), and ``reconstruct`` uses the same level. With probability
    ``geo_ref_prob`` a sample takes exactly σ_ref; otherwise σ = u^geo_power (density ∝ σ^(1/p − 1):
    weighted toward low noise but covering every level, so live previews at earlier steps work too).
    Geometry losses are weighted by 1 for σ ≤ σ_ref and ((1 − σ) / (1 − σ_ref))² above it.
    Stage 2 draws each sample's σ from the video law with probability ``stage2_video_prob``.
    """

    shift: float = 5.0
    ref_steps: int = 10
    geo_ref_prob: float = 0.4
    geo_power: float = 2.0
    stage2_video_prob: float = 0.5


@dataclass
class GeometryLossConfig:
    """L = L_fm (stage 2) + λ·(w_depth·L_depth + w_points·L_pmap + w_camera·L_camera).

    Depth and point terms (VGGT): ``conf_gamma``·conf·|e| − ``conf_alpha``·log conf on valid pixels, plus
    ``reg_weight``·|e| and ``grad_weight``·(confidence-weighted spatial gradient of e over ``grad_scales``
    scales). Camera: smooth-L1 (Huber, β = ``huber_beta``) on the 9-d encoding, translation / rotation /
    FoV weighted, averaged over the head's refinement iterations with weight ``iter_gamma``^(n−1−i).
    Ground truth is divided by the mean distance of frame 0's valid points from camera 0.
    """

    lambda_geo: float = 1.0
    depth: float = 1.0
    points: float = 1.0
    camera: float = 3.0
    conf_gamma: float = 1.0
    conf_alpha: float = 0.2
    reg_weight: float = 1.0
    grad_weight: float = 1.0
    grad_scales: int = 3
    huber_beta: float = 0.05
    camera_trans: float = 4.0  # translations are a few tenths of a scene unit: weight them up
    camera_rot: float = 1.0
    camera_fov: float = 0.5
    iter_gamma: float = 0.6
    min_valid_pixels: int = 100
    scale_trim_quantile: float = 1.0


@dataclass
class TrainConfig:
    """One training run of one task (``geometry`` with ``stage`` 1 or 2).

    ``precision`` "auto" autocasts to bf16 on CUDA and runs float32 on the CPU; weights and optimiser
    state are float32 in every case. ``compile`` compiles the model's repeated blocks in place (regional
    ``torch.compile``; the VAE phase has none and ignores it). ``time_budget_s`` ends the run early and, when set, drives the
    learning-rate schedule by elapsed time (runs on a lent GPU are boxed by time, not steps).
    """

    task: str = "geometry"
    stage: int = 1
    model: str = "tiny"
    init: str | None = None
    out_dir: str = "runs/train"
    max_steps: int = 1000
    time_budget_s: float | None = None
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    grad_checkpointing: bool = False
    log_every: int = 10
    ckpt_every: int = 0
    sample_every: int = 0
    optim: OptimConfig = field(default_factory=OptimConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    data: DataConfig = field(default_factory=DataConfig)
    vae_loss: VAELossConfig = field(default_factory=VAELossConfig)
    timesteps: TimestepConfig = field(default_factory=TimestepConfig)
    geo_loss: GeometryLossConfig = field(default_factory=GeometryLossConfig)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise InputError(f"task={self.task!r}: expected one of {', '.join(TASKS)}")
        if self.task == "geometry" and self.stage not in (1, 2):
            raise InputError(f"stage={self.stage!r}: expected 1 or 2 for the geometry task")
        if self.max_steps < 1:
            raise InputError(f"max_steps={self.max_steps}: expected at least 1")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise InputError(f"precision={self.precision!r}: expected auto (bf16 on CUDA), fp32 or bf16")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise InputError(f"time_budget_s={self.time_budget_s}: expected a positive number of seconds")

    def replace(self, **changes: object) -> TrainConfig:
        return dataclasses.replace(self, **changes)
