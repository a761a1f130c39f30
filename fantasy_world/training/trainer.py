"""The training loop: DDP, bf16 autocast, gradient clipping, EMA, JSONL logging, resumable checkpoints.

One :class:`Trainer` runs one task (:mod:`fantasy_world.training.tasks`) on one data source. Under
``torchrun`` every process builds the same trainer; the task is wrapped in DDP and each process trains
on its slice of the global batch. Checkpoints hold everything a resumed run needs to produce exactly
the losses an uninterrupted run would: weights, optimiser, EMA, data position and the RNG states.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fantasy_world.accel.compile import compile_blocks, compile_targets
from fantasy_world.errors import CheckpointError
from fantasy_world.training.checkpoint import (
    TrainState,
    latest_checkpoint,
    load_train_state,
    save_train_state,
)
from fantasy_world.training.config import TrainConfig
from fantasy_world.training.distributed import DistInfo, all_reduce_mean, wrap_ddp
from fantasy_world.training.draws import Draws
from fantasy_world.training.ema import EMA
from fantasy_world.training.log_writer import JsonlLog
from fantasy_world.training.sources import ClipSource
from fantasy_world.training.tasks import TrainTask
from fantasy_world.utils.dataclass_io import config_to_dict

log = logging.getLogger(__name__)

SampleHook = Callable[["Trainer"], None]


def _param_groups(params: list[tuple[str, nn.Parameter]], weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices and kernels only (not on biases, norms, gates, tokens)."""
    decay = [p for _, p in params if p.ndim >= 2]
    rest = [p for _, p in params if p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


class Trainer:
    """Optimises ``task`` on batches from ``source``; see the module docstring."""

    def __init__(
        self,
        cfg: TrainConfig,
        task: TrainTask,
        source: ClipSource,
        info: DistInfo,
        run_dir: str | Path,
        sample_hook: SampleHook | None = None,
    ) -> None:
        self.cfg = cfg
        self.info = info
        self.device = info.device
        self.task = task.to(info.device)
        self.source = source
        self.run_dir = Path(run_dir)
        self.sample_hook = sample_hook
        self.params = task.trainable()
        if not self.params:
            raise CheckpointError(f"task {task.name}: no trainable parameters")
        o = cfg.optim
        # One fused kernel per parameter group on CUDA (the tiny model has ~600 tensors: the per-tensor
        # launches of the foreach path cost as much as a forward).
        fused = info.device.type == "cuda"
        self.optimizer = torch.optim.AdamW(
            _param_groups(self.params, o.weight_decay), lr=o.lr, betas=tuple(o.betas), eps=o.eps, fused=fused
        )
        self.ema = EMA(self.params, cfg.ema)
        # Compiled only on CUDA (on a CPU the compile time outweighs short runs); the VAE has no repeated
        # blocks to compile regionally.
        self.compiled: list[nn.Module] = []
        if cfg.compile and info.device.type == "cuda" and task.name != "vae":
            self.compiled = compile_targets(task.saved)
            compile_blocks(task.saved)
            log.info("%s: compiled %d blocks", task.name, len(self.compiled))
        self.model = wrap_ddp(task, info, task.find_unused_parameters)
        self.generator = torch.Generator(device=info.device).manual_seed(cfg.seed)
        self.step = 0
        self.elapsed = 0.0
        self.lr = 0.0
        self.metrics = JsonlLog(self.run_dir / "metrics.jsonl", enabled=info.is_main)
        self._sums: dict[str, torch.Tensor] = {}
        self._count = 0
        self.last_terms: dict[str, float] = {}
        self.history: list[dict[str, Any]] = []
        self.data_seconds = 0.0
        self.sync_timing = False  # synchronise the device around data work (benchmarks only)

    # ------------------------------------------------------------------ schedule
    @property
    def autocast_enabled(self) -> bool:
        p = self.cfg.precision
        return p == "bf16" or (p == "auto" and self.device.type == "cuda")

    def progress(self) -> float:
        """Fraction of the run done: by steps, or by time when a time budget is set."""
        p = self.step / self.cfg.max_steps
        if self.cfg.time_budget_s is not None:
            p = max(p, self.elapsed / self.cfg.time_budget_s)
        return min(p, 1.0)

    def lr_at(self) -> float:
        o = self.cfg.optim
        warm = min(1.0, (self.step + 1) / max(1, o.warmup_steps))
        cos = o.min_lr_ratio + (1.0 - o.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * self.progress()))
        return o.lr * warm * cos

    def done(self) -> bool:
        finished = self.step >= self.cfg.max_steps
        if self.cfg.time_budget_s is not None:
            flag = torch.tensor(
                [float(finished or self.elapsed >= self.cfg.time_budget_s)], device=self.device
            )
            finished = bool(all_reduce_mean(flag, self.info).item() > 0)
        return finished

    # ------------------------------------------------------------------ one step
    def train_step(self) -> torch.Tensor:
        """One optimiser step; returns the (local) loss as a detached tensor."""
        t0 = time.perf_counter()
        self.task.train()
        if self.sync_timing and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        t_data = time.perf_counter()
        refresh = getattr(self.source, "refresh", None)
        # New worlds are copied in (and their latents encoded) only while the data work stays under
        # ``data.refresh_share`` of the training time, so refreshing never starves the GPU.
        if refresh is not None and self.data_seconds <= self.cfg.data.refresh_share * max(self.elapsed, 1e-9):
            refresh()
        batch = self.source.next_batch()
        draws = Draws(self.generator, self.device, batch.size, self.info.rank, self.info.world_size)
        with torch.no_grad():
            inputs = self.task.prepare(batch, draws)
        if self.sync_timing and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.data_seconds += time.perf_counter() - t_data
        ctx = (
            torch.autocast(self.device.type, dtype=torch.bfloat16) if self.autocast_enabled else nullcontext()
        )
        with ctx:
            loss, terms = self.model(**inputs)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_([p for _, p in self.params], self.cfg.optim.grad_clip)
        self.lr = self.lr_at()
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        self.optimizer.step()
        self.ema.update()
        self.step += 1
        self._accumulate({"loss": loss.detach(), "grad_norm": grad_norm.detach(), **terms})
        self.elapsed += time.perf_counter() - t0
        return loss.detach()

    def _first_compiled_step(self) -> None:
        """The first step compiles; if compilation fails, train eagerly rather than lose the run."""
        try:
            self.train_step()
        except Exception as exc:  # noqa: BLE001 - any compiler error: fall back, the step is redone
            log.warning(
                "%s: compiled step failed (%s: %s); training eager", self.task.name, type(exc).__name__, exc
            )
            for module in self.compiled:
                module._compiled_call_impl = None  # undo nn.Module.compile
            self.compiled = []
            self.optimizer.zero_grad(set_to_none=True)
            self.train_step()

    def _accumulate(self, terms: dict[str, torch.Tensor]) -> None:
        for k, v in terms.items():
            v = v.detach().float()
            self._sums[k] = self._sums[k] + v if k in self._sums else v.clone()
        self._count += 1

    def _flush_log(self) -> None:
        if not self._count:
            return
        keys = sorted(self._sums)
        stacked = torch.stack([self._sums[k] for k in keys]) / self._count
        means = all_reduce_mean(stacked, self.info).tolist()
        record: dict[str, Any] = {
            "step": self.step,
            "time_s": round(self.elapsed, 3),
            "lr": self.lr,
            "data_s": round(self.data_seconds, 3),
        }
        record.update({k: float(v) for k, v in zip(keys, means)})
        self.last_terms = {k: float(v) for k, v in zip(keys, means)}
        self.history.append(record)
        self.metrics.write(record)
        log.info(
            "%s step %d: %s",
            self.task.name,
            self.step,
            " ".join(f"{k}={record[k]:.4g}" for k in keys if k in ("loss", "fm", "geo", "psnr")),
        )
        self._sums, self._count = {}, 0

    # ------------------------------------------------------------------ loop
    def fit(self) -> dict[str, Any]:
        """Train until ``max_steps`` or the time budget; checkpoint at the end. Returns a summary."""
        cfg = self.cfg
        while not self.done():
            if self.step == 0 and self.compiled:
                self._first_compiled_step()
                continue
            self.train_step()
            if self.step % cfg.log_every == 0:
                self._flush_log()
            if cfg.ckpt_every and self.step % cfg.ckpt_every == 0:
                self.save_checkpoint()
            if self.sample_hook is not None and cfg.sample_every and self.step % cfg.sample_every == 0:
                self.sample_hook(self)
        self._flush_log()
        self.save_checkpoint()
        return {
            "task": self.task.name,
            "steps": self.step,
            "seconds": self.elapsed,
            "clips": self.step * self.source.batch_size * self.info.world_size,
            "data_seconds": self.data_seconds,
            **self.last_terms,
        }

    # ------------------------------------------------------------------ checkpoints
    def _rng_state(self) -> dict[str, torch.Tensor]:
        state = {"generator": self.generator.get_state(), "torch_cpu": torch.random.get_rng_state()}
        if self.device.type == "cuda":
            state["torch_cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def save_checkpoint(self, folder: str | Path | None = None) -> Path | None:
        """Write the resumable state (main process only; others wait at the next collective)."""
        folder = Path(folder) if folder is not None else self.run_dir / "checkpoint"
        if not self.info.is_main:
            return None
        meta = {
            "task": self.task.name,
            "step": self.step,
            "elapsed_s": self.elapsed,
            "ema_updates": self.ema.updates,
            "data": self.source.state_dict(),
            "world_size": self.info.world_size,
            "config": config_to_dict(self.cfg),
        }
        state = TrainState(
            model=self.task.saved.state_dict(),
            ema=self.ema.state_dict(),
            optimizer=self.optimizer.state_dict(),
            rng=self._rng_state(),
            meta=meta,
        )
        return save_train_state(folder, state)

    def resume(self, folder: str | Path | None = None) -> bool:
        """Load a checkpoint (default: this run's latest); False when there is none."""
        path = Path(folder) if folder is not None else latest_checkpoint(self.run_dir)
        if path is None:
            return False
        state = load_train_state(path)
        if state.meta.get("task") != self.task.name:
            raise CheckpointError(
                f"{path}: a {state.meta.get('task')} checkpoint; this run trains {self.task.name}"
            )
        self.task.saved.load_state_dict({k: v.to(self.device) for k, v in state.model.items()})
        self.optimizer.load_state_dict(state.optimizer)
        self.ema.load_state_dict(
            {k: v.to(self.device) for k, v in state.ema.items()}, state.meta["ema_updates"]
        )
        self.generator.set_state(state.rng["generator"])
        torch.random.set_rng_state(state.rng["torch_cpu"])
        if "torch_cuda" in state.rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(state.rng["torch_cuda"], self.device)
        self.step = int(state.meta["step"])
        self.elapsed = float(state.meta["elapsed_s"])
        self.source.load_state_dict(state.meta["data"])
        log.info("resumed %s at step %d from %s", self.task.name, self.step, path)
        return True

    def ema_module(self) -> nn.Module:
        """The trained module with the EMA weights written into it (the module itself is modified)."""
        self.ema.copy_to(self.task.saved)
        return self.task.saved
