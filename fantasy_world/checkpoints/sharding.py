"""Sharded safetensors so that every shipped file stays under a size cap (16 MiB for our repository)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch

from fantasy_world.checkpoints.io import save_state_dict
from fantasy_world.errors import CheckpointError

DEFAULT_MAX_SHARD_BYTES = 15 * 1024 * 1024


def save_sharded(
    state: Mapping[str, torch.Tensor],
    folder: str | Path,
    filename: str,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    metadata: dict[str, str] | None = None,
) -> list[Path]:
    """Write ``filename`` (e.g. ``model.safetensors``) or, when larger than the cap, numbered shards + an index.

    Shards are named ``model-00001-of-00003.safetensors`` with ``model.safetensors.index.json`` beside them,
    the layout of the public Hugging Face / Wan checkpoints, so :func:`read_state_dict` reads both.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = filename.removesuffix(".safetensors")
    for old in list(folder.glob(f"{stem}-*-of-*.safetensors")) + [
        folder / f"{filename}.index.json",
        folder / filename,
    ]:
        old.unlink(missing_ok=True)
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if nbytes > max_shard_bytes:
            raise CheckpointError(
                f"tensor {key} has {nbytes} bytes; larger than one shard ({max_shard_bytes} bytes)"
            )
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][key] = tensor
        size += nbytes
    if len(shards) == 1:
        save_state_dict(shards[0], folder / filename, metadata=metadata)
        return [folder / filename]
    paths, weight_map = [], {}
    for i, shard in enumerate(shards, start=1):
        name = f"{stem}-{i:05d}-of-{len(shards):05d}.safetensors"
        save_state_dict(shard, folder / name, metadata=metadata)
        paths.append(folder / name)
        weight_map.update(dict.fromkeys(shard, name))
    index = folder / f"{filename}.index.json"
    index.write_text(json.dumps({"metadata": metadata or {}, "weight_map": weight_map}, indent=1))
    return [*paths, index]


def weights_path(folder: str | Path, filename: str) -> Path:
    """The single file or its shard index, whichever exists; a clear error when neither does."""
    folder = Path(folder)
    single, index = folder / filename, folder / f"{filename}.index.json"
    if index.is_file():
        return index
    if single.is_file():
        return single
    raise CheckpointError(f"{folder}: missing {filename} (or its sharded {filename}.index.json)")
