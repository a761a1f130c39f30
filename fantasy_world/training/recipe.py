"""The tiny model's recipe in miniature: VAE → base text-to-video DiT → stage 1 → stage 2 → model folder.

1. ``vae``: the video VAE (L1 + L2 + KL); then the per-channel latent mean/std over the clip bank go
   into the VAE config (the diffusion model sees normalised latents).
2. ``t2v``: the Wan DiT alone as a text-to-video flow-matching model on the clips' captions (MiniLM
   features) — our stand-in for Wan's pretraining.
3. ``stage1``: base frozen; latent bridge, geometry branch and heads learn depth, points and cameras.
4. ``stage2``: + bidirectional cross-attention and the camera path (Plücker maps of the ground-truth
   cameras → pose encoder → adapters), with the flow-matching loss so the video follows the cameras.

Every phase ends with a model folder ``<out>/<phase>/final`` (EMA weights) that the next phase starts
from and the pipeline can load; a phase whose folder exists is skipped, so a recipe split over several
machine sessions resumes where the previous one stopped. All phases of one process share one clip bank.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fantasy_world.data.render_pool import RenderPool
from fantasy_world.data.synthetic_dataset import SyntheticWorldDataset
from fantasy_world.model_folder import CONFIG_FILE, TINY_DEFAULTS, GenerationDefaults, save_our_folder
from fantasy_world.models.fantasy.model import FantasyWorldModel
from fantasy_world.models.wan.text_encoder import load_text_encoder
from fantasy_world.models.wan.vae import WanVAE
from fantasy_world.training.config import DataConfig, OptimConfig, TrainConfig, VAELossConfig
from fantasy_world.training.distributed import DistInfo, barrier
from fantasy_world.training.samples import geometry_strip, sample_video, save_png, vae_strip, video_strip
from fantasy_world.training.sources import ClipBank, ClipSource, RefreshingBank, StreamSource
from fantasy_world.training.tasks import GeometryTask, TextToVideoTask, TrainTask, VAETask
from fantasy_world.training.text import CaptionEncoder
from fantasy_world.training.trainer import Trainer
from fantasy_world.training.weights import (
    fresh_models,
    latent_statistics,
    load_weights_folder,
    with_latent_stats,
)

log = logging.getLogger(__name__)

PHASES: tuple[str, ...] = ("vae", "t2v", "stage1", "stage2")
SAMPLE_CAPTION = "a red ball beside a tall blue box in a sunlit courtyard"


def _phase_config(
    task: str, stage: int, batch: int, lr: float, seconds: float, warmup: int, compile: bool = True
) -> TrainConfig:
    return TrainConfig(
        task=task,
        stage=stage,
        max_steps=1_000_000,
        time_budget_s=seconds,
        log_every=25,
        sample_every=0,
        compile=compile,
        optim=OptimConfig(lr=lr, warmup_steps=warmup),
        data=DataConfig(batch_size=batch),
    )


@dataclass
class RecipeConfig:
    """Phases to run, their training configs (time-boxed by default) and the shared data settings."""

    out_dir: str = "runs/tiny"
    phases: tuple[str, ...] = PHASES
    init: str | None = None
    preset: str = "tiny"
    seed: int = 0
    data: DataConfig = field(
        default_factory=lambda: DataConfig(bank_size=600, bank_time_s=40.0, bank_capacity=3000)
    )
    # Batch sizes: the largest that keep a GPU busy with this small model (bench/train_throughput.py);
    # learning rates scaled by √(batch ratio) from the recipe that trained at batch 16/32/16/16.
    vae: TrainConfig = field(
        default_factory=lambda: dataclasses.replace(
            _phase_config("vae", 1, 32, 7e-4, 110.0, 100, compile=False), vae_loss=VAELossConfig()
        )
    )
    t2v: TrainConfig = field(default_factory=lambda: _phase_config("t2v", 1, 96, 5e-4, 260.0, 200))
    # Geometry phases train eagerly: compiling the FantasyWorld forward + backward took ~2 min per phase on
    # an H200 (stage 1 of a 130 s chunk ran 3 steps), more than it saves in a device call of minutes.
    stage1: TrainConfig = field(
        default_factory=lambda: _phase_config("geometry", 1, 32, 4e-4, 150.0, 100, compile=False)
    )
    stage2: TrainConfig = field(
        default_factory=lambda: _phase_config("geometry", 2, 32, 3e-4, 150.0, 100, compile=False)
    )
    export_dtype: str = "float16"
    defaults: GenerationDefaults = field(default_factory=lambda: TINY_DEFAULTS)
    samples: bool = True

    def phase(self, name: str) -> TrainConfig:
        return getattr(self, name)


def _dtype(name: str) -> torch.dtype | None:
    return {"float32": None, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


class Recipe:
    """Runs :class:`RecipeConfig` in one process (or one process per GPU under ``torchrun``)."""

    def __init__(
        self, cfg: RecipeConfig, info: DistInfo, check_captions: Callable[[list[str]], None] | None = None
    ) -> None:
        self.cfg = cfg
        self.info = info
        self.check_captions = check_captions
        self.out = Path(cfg.out_dir)
        self.summary: dict[str, Any] = {"phases": {}}
        self.text = CaptionEncoder(load_text_encoder("minilm", None, info.device, torch.float32), info.device)
        self.source: ClipSource | None = None
        self.on_phase_done: Callable[[Path], None] | None = None

    # ------------------------------------------------------------------ data
    def _dataset(self) -> SyntheticWorldDataset:
        d = self.cfg.data
        return SyntheticWorldDataset("train", d.num_frames, d.height, d.width, device=self.info.device)

    def _source(self, batch: int) -> ClipSource:
        d = self.cfg.data
        if self.source is None:
            ds = self._dataset()
            if d.bank_size > 0 and d.refresh_workers > 0:
                t0 = time.perf_counter()
                self.source = self._refreshing_bank(ds, batch)
            elif d.bank_size > 0:
                t0 = time.perf_counter()
                self.source = ClipBank(
                    lambda i: ds[i],
                    d.bank_size,
                    batch,
                    self.info.device,
                    self.info.rank,
                    self.info.world_size,
                    offset=d.seed_offset,
                    order_seed=d.order_seed,
                    time_budget_s=d.bank_time_s,
                )
                if self.check_captions is not None:
                    self.check_captions(self.source.captions)
                self.source.cache_text(self.text.encode)
                self.summary["bank"] = {"clips": len(self.source), "seconds": time.perf_counter() - t0}
            else:
                self.source = StreamSource(
                    lambda i: ds[i],
                    batch,
                    self.info.device,
                    self.info.rank,
                    self.info.world_size,
                    d.seed_offset,
                )
        src = self.source
        if isinstance(src, ClipBank):
            src.reset(batch)
        else:
            src.batch_size = batch
        return src

    def _refreshing_bank(self, ds: SyntheticWorldDataset, batch: int) -> RefreshingBank:
        """Device-rendered starting bank, then CPU workers rendering the following worlds of this rank."""
        d, info = self.cfg.data, self.info
        # Workers start rendering at once, beyond the clips the device renders for the starting bank
        # (an upper bound when the bank's time budget cuts it short: no world is rendered twice).
        pool = RenderPool(
            d.refresh_workers,
            (d.num_frames, d.height, d.width),
            start=d.seed_offset + d.bank_size + info.rank,
            stride=info.world_size,
        )
        return RefreshingBank(
            lambda i: ds[i],
            d.bank_size,
            batch,
            info.device,
            pool,
            capacity=max(d.bank_capacity, d.bank_size),
            rank=info.rank,
            world_size=info.world_size,
            offset=d.seed_offset,
            order_seed=d.order_seed,
            time_budget_s=d.bank_time_s,
        )

    def close(self) -> None:
        """Stop background renderers (the process would otherwise wait for them at exit)."""
        if isinstance(self.source, RefreshingBank):
            self.source.close()

    # ------------------------------------------------------------------ models
    def _initial(self) -> tuple[FantasyWorldModel, WanVAE]:
        if self.cfg.init is not None:
            model, vae, _ = load_weights_folder(self.cfg.init)
            return model, vae
        return fresh_models(self.cfg.preset, self.cfg.seed)

    def _export(self, phase: str, model: FantasyWorldModel, vae: WanVAE, trained: bool) -> Path:
        folder = self.out / phase / "final"
        device = next(model.parameters()).device
        model.cpu(), vae.cpu()  # in place: writing from host memory on every backend
        if self.info.is_main:
            save_our_folder(
                folder,
                "tiny",
                model,
                vae,
                self.cfg.defaults,
                trained=trained,
                weight_dtype=_dtype(self.cfg.export_dtype),
                extra={"training": self.summary},
            )
        model.to(device), vae.to(device)
        barrier(self.info)
        return folder

    @torch.no_grad()
    def _set_latent_stats(self, vae: WanVAE, bank: ClipSource) -> WanVAE:
        """Measure raw latent statistics on (up to 256) clips and return the VAE that normalises with them."""
        if isinstance(bank, ClipBank):
            clips = min(len(bank), 256)
            batches = [bank.batch_at(list(range(s, min(s + 16, clips)))) for s in range(0, clips, 16)]
        else:
            batches = [bank.next_batch() for _ in range(4)]
        mu = torch.cat([vae.encode_moments(b.video())[0] for b in batches])
        mean, std = latent_statistics(mu)
        self.summary["latent_stats"] = {"mean": mean.tolist(), "std": std.tolist()}
        return with_latent_stats(vae, mean, std)

    # ------------------------------------------------------------------ phases
    def _task(self, phase: str, tcfg: TrainConfig, model: FantasyWorldModel, vae: WanVAE) -> TrainTask:
        if phase == "vae":
            return VAETask(vae, tcfg)
        if phase == "t2v":
            return TextToVideoTask(model, vae, self.text, tcfg)
        return GeometryTask(model, vae, self.text, tcfg, tcfg.stage)

    def _sample_hook(self, phase: str, model: FantasyWorldModel, vae: WanVAE):  # noqa: ANN202
        if not (self.cfg.samples and self.info.is_main):
            return None
        folder = self.out / phase / "samples"

        def hook(trainer: Trainer) -> None:
            from fantasy_world.training.ema import swapped_weights

            module = trainer.task.saved
            batch = trainer.source.batch_at([0]) if isinstance(trainer.source, ClipBank) else None
            with swapped_weights(module, trainer.ema):
                module.eval()
                if phase == "vae" and batch is not None:
                    img = vae_strip(vae, batch)
                elif phase in ("t2v", "stage2"):
                    lat = vae.latent_shape(
                        self.cfg.data.num_frames, self.cfg.data.height, self.cfg.data.width
                    )
                    img = video_strip(sample_video(model, vae, self.text, SAMPLE_CAPTION, lat))
                elif batch is not None and batch.latents is not None:
                    img = geometry_strip(model, self.text, batch, trainer.cfg.timesteps)
                else:
                    return
            save_png(img, folder / f"step_{trainer.step:06d}.png")

        return hook

    def run_phase(
        self, phase: str, model: FantasyWorldModel, vae: WanVAE
    ) -> tuple[FantasyWorldModel, WanVAE]:
        done = self.out / phase / "final"
        if (done / CONFIG_FILE).is_file():
            log.info("phase %s: already done, loading %s", phase, done)
            model, vae, _ = load_weights_folder(done)
            return model, vae
        tcfg = dataclasses.replace(self.cfg.phase(phase), seed=self.cfg.seed)
        dev = self.info.device
        model, vae = model.to(dev), vae.to(dev)
        source = self._source(tcfg.data.batch_size)
        if phase != "vae" and isinstance(source, ClipBank) and source.latents is None:
            source.cache_latents(lambda v: vae.encode(v))
        task = self._task(phase, tcfg, model, vae)
        trainer = Trainer(
            tcfg, task, source, self.info, self.out / phase, self._sample_hook(phase, model, vae)
        )
        trainer.resume()
        result = trainer.fit()
        if trainer.sample_hook is not None:
            trainer.sample_hook(trainer)
        trainer.ema_module()
        if phase == "vae":
            vae = self._set_latent_stats(vae.eval(), source)
            if isinstance(source, ClipBank):
                source.cache_latents(lambda v: vae.encode(v))
        if isinstance(source, RefreshingBank):
            result["bank_clips_arrived"] = source.arrived
        result["data_share"] = result["data_seconds"] / max(result["seconds"], 1e-9)
        self.summary["phases"][phase] = result
        folder = self._export(phase, model.eval(), vae.eval(), trained=phase == "stage2")
        if self.on_phase_done is not None:
            self.on_phase_done(folder)
        return model, vae

    def run(self) -> dict[str, Any]:
        model, vae = self._initial()
        t0 = time.perf_counter()
        try:
            for phase in self.cfg.phases:
                if phase not in PHASES:
                    raise ValueError(f"unknown phase {phase!r}; expected one of {PHASES}")
                model, vae = self.run_phase(phase, model, vae)
        finally:
            self.close()
        self.summary["seconds"] = time.perf_counter() - t0
        if self.info.is_main:
            (self.out / "recipe_summary.json").write_text(json.dumps(self.summary, indent=1, default=str))
        return self.summary
