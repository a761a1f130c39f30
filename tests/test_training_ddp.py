"""DDP on the CPU (Gloo): 2 processes × batch 1 follow the same loss curve as 1 process × batch 2."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp
from test_training_helpers import HashTextEncoder, small_models

from fantasy_world.data import SyntheticWorldDataset
from fantasy_world.training.config import DataConfig, OptimConfig, TrainConfig
from fantasy_world.training.distributed import DistInfo, init_distributed, shutdown
from fantasy_world.training.sources import StreamSource
from fantasy_world.training.tasks import GeometryTask
from fantasy_world.training.text import CaptionEncoder
from fantasy_world.training.trainer import Trainer

STEPS = 2


def _run(info: DistInfo, batch: int, out: Path) -> list[float]:
    torch.set_num_threads(1)
    cfg = TrainConfig(
        task="geometry",
        stage=2,
        max_steps=STEPS,
        log_every=1,
        precision="fp32",
        optim=OptimConfig(lr=1e-3, warmup_steps=1),
        data=DataConfig(num_frames=5, height=32, width=48, batch_size=batch, camera_dropout=0.3),
    )
    model, vae = small_models(0)
    ds = SyntheticWorldDataset("train", num_frames=5, height=32, width=48)
    task = GeometryTask(model, vae, CaptionEncoder(HashTextEncoder(), info.device), cfg, 2)
    source = StreamSource(lambda i: ds[i], batch, info.device, info.rank, info.world_size)
    trainer = Trainer(cfg, task, source, info, out)
    trainer.fit()
    return [h["loss"] for h in trainer.history]


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(
        {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RANK": str(rank),
            "WORLD_SIZE": "2",
            "LOCAL_RANK": str(rank),
        }
    )
    info = init_distributed("cpu")
    try:
        losses = _run(info, 1, Path(out) / f"rank{rank}")
        if rank == 0:
            (Path(out) / "losses.json").write_text(json.dumps(losses))
    finally:
        shutdown(info)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_process_with_the_global_batch(tmp_path):
    single = _run(DistInfo(0, 1, 0, torch.device("cpu")), 2, tmp_path / "single")
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    double = json.loads((tmp_path / "losses.json").read_text())
    assert len(single) == len(double) == STEPS
    for a, b in zip(single, double):
        assert abs(a - b) <= 1e-4 * max(1.0, abs(a)), (single, double)
