"""The trainer on CPU: every task steps and lowers its loss, and a resumed run continues exactly."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from test_training_helpers import HashTextEncoder, small_models

from fantasy_world.data import SyntheticWorldDataset
from fantasy_world.training.config import DataConfig, OptimConfig, TrainConfig, VAELossConfig
from fantasy_world.training.distributed import DistInfo
from fantasy_world.training.draws import Draws
from fantasy_world.training.sources import ClipBank, StreamSource
from fantasy_world.training.tasks import GeometryTask, TextToVideoTask, VAETask
from fantasy_world.training.text import CaptionEncoder
from fantasy_world.training.trainer import Trainer

CPU = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
DATA = DataConfig(num_frames=5, height=32, width=48, batch_size=2, camera_dropout=0.3)


@pytest.fixture(scope="module")
def dataset():
    return SyntheticWorldDataset("train", num_frames=5, height=32, width=48)


@pytest.fixture(scope="module")
def clips(dataset):
    cache = {}

    def get(i: int):
        if i not in cache:
            cache[i] = dataset[i]
        return cache[i]

    return get


def _cfg(task: str, stage: int = 1, **kw) -> TrainConfig:
    base = {
        "max_steps": 4,
        "log_every": 1,
        "precision": "fp32",
        "optim": OptimConfig(lr=1e-3, warmup_steps=1),
        "data": DATA,
        "vae_loss": VAELossConfig(clip_frames=5, crop=(16, 16)),
    }
    return TrainConfig(task=task, stage=stage, **{**base, **kw})


def _trainer(cfg: TrainConfig, clips, run_dir, seed: int = 0) -> Trainer:
    """``seed`` changes the trained model's initial weights; the frozen VAE is an input of the run."""
    model, _ = small_models(seed)
    _, vae = small_models(0)
    text = CaptionEncoder(HashTextEncoder(), CPU.device)
    if cfg.task == "vae":
        task = VAETask(vae, cfg)
    elif cfg.task == "t2v":
        task = TextToVideoTask(model, vae, text, cfg)
    else:
        task = GeometryTask(model, vae, text, cfg, cfg.stage)
    return Trainer(cfg, task, StreamSource(clips, cfg.data.batch_size, CPU.device), CPU, run_dir)


def test_resume_gives_the_same_next_losses(clips, tmp_path):
    """Stage 2 (noise, timesteps, camera dropout, text dropout, optimiser, EMA): 4 steps straight vs 2 + resume + 2."""
    cfg = _cfg("geometry", stage=2)
    straight = _trainer(cfg, clips, tmp_path / "a")
    losses = [float(straight.train_step()) for _ in range(4)]

    first = _trainer(cfg, clips, tmp_path / "b")
    part = [float(first.train_step()) for _ in range(2)]
    first.save_checkpoint()
    resumed = _trainer(
        cfg, clips, tmp_path / "b", seed=123
    )  # different init: everything must come from the checkpoint
    assert resumed.resume()
    assert resumed.step == 2 and resumed.source.state_dict()["next_index"] == 4
    rest = [float(resumed.train_step()) for _ in range(2)]
    assert part == losses[:2]
    assert rest == losses[2:]
    for name, shadow in straight.ema.shadow.items():
        assert torch.equal(shadow, resumed.ema.shadow[name]), name


@pytest.mark.parametrize("task,stage", [("vae", 1), ("t2v", 1), ("geometry", 1)])
def test_tasks_learn_a_fixed_batch(task, stage, clips, tmp_path):
    cfg = _cfg(task, stage, max_steps=12)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(DATA, text_dropout=0.0))
    fixed = clips(0), clips(1)

    def same_two(i: int):
        return fixed[i % 2]

    model, vae = small_models()
    text = CaptionEncoder(HashTextEncoder(), CPU.device)
    built = {
        "vae": lambda: VAETask(vae, cfg),
        "t2v": lambda: TextToVideoTask(model, vae, text, cfg),
        "geometry": lambda: GeometryTask(model, vae, text, cfg, stage),
    }[task]()
    source = StreamSource(same_two, 2, CPU.device)
    trainer = Trainer(cfg, built, source, CPU, tmp_path)
    batch = StreamSource(same_two, 2, CPU.device).next_batch()
    draws = Draws(torch.Generator().manual_seed(5), CPU.device, 2, 0, 1)
    with torch.no_grad():
        probe = built.prepare(batch, draws)  # fixed noise and timesteps: a noise-free loss probe
        before = float(built(**probe)[0])
    summary = trainer.fit()
    with torch.no_grad():
        after = float(built(**probe)[0])
    assert summary["steps"] == 12
    assert after < before, (task, before, after)
    assert (tmp_path / "metrics.jsonl").is_file() and (tmp_path / "checkpoint" / "trainer.json").is_file()


def test_stage1_trains_only_the_geometry_groups(clips, tmp_path):
    trainer = _trainer(_cfg("geometry", stage=1, max_steps=1), clips, tmp_path)
    model = trainer.task.saved
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.train_step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(before[n], p)}
    assert changed and all(
        n.startswith(
            ("bridge.", "geo_time.", "aggregator.", "irg.", "depth_head.", "point_head.", "camera_head.")
        )
        for n in changed
    )
    assert not any(".bicross_attention." in n or n.startswith(("dit.", "pose_encoder.")) for n in changed)
    assert not any(n.startswith("aggregator.cam_token_projector.") for n in changed)


def test_clip_bank_order_state_and_rank_slices(clips):
    whole = ClipBank(clips, 6, 2, CPU.device, order_seed=3)
    halves = [ClipBank(clips, 6, 1, CPU.device, rank=r, world_size=2, order_seed=3) for r in range(2)]
    for _ in range(5):  # crosses an epoch boundary
        b = whole.next_batch()
        parts = [h.next_batch() for h in halves]
        assert b.indices == parts[0].indices + parts[1].indices
        assert torch.equal(b.depth, torch.cat([p.depth for p in parts]))
    state = whole.state_dict()
    assert state["epoch"] == 1
    nxt = whole.next_batch().indices
    again = ClipBank(clips, 6, 2, CPU.device, order_seed=3)
    again.load_state_dict(state)
    assert again.next_batch().indices == nxt
    with pytest.raises(Exception, match="rebuild"):
        ClipBank(clips, 4, 2, CPU.device).load_state_dict(state)
