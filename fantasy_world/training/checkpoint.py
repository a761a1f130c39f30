"""Resumable training state: safetensors for every tensor, one small JSON for the scalars.

Layout of a checkpoint folder (written to ``<dir>.tmp`` and renamed, so a crash never leaves half a
checkpoint): ``model.safetensors`` (the trained module, all weights), ``ema.safetensors`` (float32 EMA of
the trainable weights), ``optimizer.safetensors`` (per-parameter optimiser tensors), ``rng.safetensors``
(the step generator and the global torch RNG states) and ``trainer.json`` (step, elapsed time, data
position, optimiser hyper-parameters, the full config). Large files are sharded (≤ 15 MiB each).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fantasy_world.checkpoints import read_state_dict
from fantasy_world.checkpoints.io import save_state_dict
from fantasy_world.checkpoints.sharding import save_sharded, weights_path
from fantasy_world.errors import CheckpointError

STATE_JSON = "trainer.json"


@dataclass
class TrainState:
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    rng: dict[str, torch.Tensor]
    meta: dict[str, Any]


def _optimizer_tensors(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    tensors: dict[str, torch.Tensor] = {}
    for idx, entry in state["state"].items():
        for key, value in entry.items():
            t = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"{idx}.{key}"] = t.detach().cpu()
    return tensors, state["param_groups"]


def _optimizer_from_tensors(tensors: dict[str, torch.Tensor], groups: list[dict[str, Any]]) -> dict[str, Any]:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": groups}


def save_train_state(folder: str | Path, state: TrainState) -> Path:
    """Write ``state`` to ``folder`` (replacing it atomically)."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_sharded({k: v.detach().cpu() for k, v in state.model.items()}, tmp, "model.safetensors")
    save_sharded({k: v.detach().cpu() for k, v in state.ema.items()}, tmp, "ema.safetensors")
    opt_tensors, groups = _optimizer_tensors(state.optimizer)
    save_sharded(opt_tensors, tmp, "optimizer.safetensors")
    save_state_dict({k: v.detach().cpu() for k, v in state.rng.items()}, tmp / "rng.safetensors")
    meta = dict(state.meta)
    meta["param_groups"] = groups
    (tmp / STATE_JSON).write_text(json.dumps(meta, indent=1, default=_json_default))
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, torch.Tensor):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def load_train_state(folder: str | Path) -> TrainState:
    """Read a folder written by :func:`save_train_state`."""
    folder = Path(folder)
    meta_path = folder / STATE_JSON
    if not meta_path.is_file():
        raise CheckpointError(f"{folder}: not a training checkpoint (no {STATE_JSON})")
    meta = json.loads(meta_path.read_text())
    groups = meta.pop("param_groups")
    model = read_state_dict(weights_path(folder, "model.safetensors"))
    ema = read_state_dict(weights_path(folder, "ema.safetensors"))
    opt = _optimizer_from_tensors(read_state_dict(weights_path(folder, "optimizer.safetensors")), groups)
    rng = read_state_dict(folder / "rng.safetensors")
    return TrainState(model=model, ema=ema, optimizer=opt, rng=rng, meta=meta)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """``<run_dir>/checkpoint`` if a complete one exists."""
    path = Path(run_dir) / "checkpoint"
    return path if (path / STATE_JSON).is_file() else None
