"""Several GPUs through ``torch.distributed``: guidance parallelism and Ulysses sequence parallelism.

* :class:`GuidanceParallel` — two ranks; rank 0 runs the conditional pass, rank 1 the negative pass, and
  the velocities are exchanged with one all-gather per step (a few MB). Both ranks then hold the same
  latents, so the sampler runs unchanged on each; geometry read at a step is broadcast from rank 0. Each
  rank computes exactly what one GPU computes, so outputs match a single GPU up to kernel choice.
* :func:`ulysses_attention` / :func:`sequence_parallel_forward` — DeepSpeed-Ulysses: the video tokens are
  split along the sequence; around self-attention two all-to-alls turn sequence shards into head shards
  and back, so each rank attends over the whole sequence for ``heads / world`` heads. Implemented for the
  Wan DiT (``sequence_parallel_forward``); the whole FantasyWorld model, and guidance × sequence
  parallelism, are in ``fantasy_world.accel.sequence_parallel_fantasy``.

Launch one process per GPU with ``torchrun --nproc_per_node=2 ...`` and call :func:`init_distributed`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from functools import partial

import torch
import torch.distributed as dist

from fantasy_world.errors import InputError
from fantasy_world.models.fantasy.model import FantasyWorldOutput, GeometryOutput
from fantasy_world.models.wan.attention import attention, sequence_hook
from fantasy_world.models.wan.dit import camera_or_none
from fantasy_world.sampling.guidance import GuidanceRunner, conditional_pass, unconditional_velocity


@dataclass(frozen=True)
class ParallelEnv:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device


def init_distributed(backend: str | None = None) -> ParallelEnv:
    """Join the process group torchrun describes (NCCL on CUDA, gloo on CPU) and pick this rank's GPU."""
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available() and backend != "gloo"
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if cuda else "gloo"))
    return ParallelEnv(dist.get_rank(), dist.get_world_size(), local, device)


# ---------------------------------------------------------------------------------------------- guidance
_GEOMETRY_FIELDS = tuple(f.name for f in dataclasses.fields(GeometryOutput))


def broadcast_geometry(
    geometry: GeometryOutput | None, device: torch.device, group: dist.ProcessGroup | None = None
) -> GeometryOutput:
    """Rank 0 of ``group`` sends its geometry; every rank returns an equal copy."""
    src = dist.get_global_rank(group, 0) if group is not None else 0
    mine = dist.get_rank(group) == 0
    meta = (
        [[(tuple(getattr(geometry, f).shape), getattr(geometry, f).dtype) for f in _GEOMETRY_FIELDS]]
        if mine
        else [None]
    )
    dist.broadcast_object_list(meta, src=src, group=group, device=device if device.type == "cuda" else None)
    tensors = {}
    for f, (shape, dtype) in zip(_GEOMETRY_FIELDS, meta[0]):
        t = getattr(geometry, f).contiguous() if mine else torch.empty(shape, dtype=dtype, device=device)
        dist.broadcast(t, src=src, group=group)
        tensors[f] = t
    return GeometryOutput(**tensors)


class GuidanceParallel(GuidanceRunner):
    """A guidance runner (``pipeline.guidance_runner``) for a group of exactly two ranks."""

    def __init__(self, group: dist.ProcessGroup | None = None, uncond_geometry: bool = True) -> None:
        self.group = group
        self.uncond_geometry = uncond_geometry

    def __call__(
        self, model, x, t, cond, uncond, *, want_geo, clip_fea=None, y=None, camera=None, image_hw=None
    ):
        kw = {"clip_fea": clip_fea, "y": y, "camera": camera, "image_hw": image_hw}
        if uncond is None:
            return conditional_pass(model, x, t, cond, want_geo=want_geo, **kw), None
        if dist.get_world_size(self.group) != 2:
            raise InputError(
                f"guidance parallelism runs on 2 ranks; this group has {dist.get_world_size(self.group)}"
            )
        rank = dist.get_rank(self.group)
        out = None
        if rank == 0:
            out = conditional_pass(model, x, t, cond, want_geo=want_geo, **kw)
            v = out.velocity
        else:
            v = unconditional_velocity(model, x, t, uncond, geometry=self.uncond_geometry, **kw)
        v = v.float().contiguous()
        both = [torch.empty_like(v) for _ in range(2)]
        dist.all_gather(both, v, group=self.group)
        geometry = (
            broadcast_geometry(out.geometry if out else None, v.device, self.group) if want_geo else None
        )
        return FantasyWorldOutput(velocity=both[0], geometry=geometry), both[1]


# ---------------------------------------------------------------------------------------------- Ulysses
def _all_to_all(x: torch.Tensor, group: dist.ProcessGroup | None) -> torch.Tensor:
    out = torch.empty_like(x)
    dist.all_to_all_single(out, x, group=group)
    return out


def ulysses_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    group: dist.ProcessGroup | None = None,
    valid_len: int | None = None,
    fp8: bool = False,
) -> torch.Tensor:
    """Self-attention over a sequence sharded in equal pieces: q/k/v [B, n, H, D] per rank -> [B, n, H, D].

    ``valid_len`` drops padding keys at the end of the gathered sequence (when L was padded to P·n);
    ``fp8`` is the attention module's FP8 switch (``attention(..., fp8=)``).
    """
    p = dist.get_world_size(group)
    b, n, h, d = q.shape
    if h % p:
        raise InputError(f"sequence parallelism over {p} ranks needs heads divisible by {p}; got {h} heads")

    def to_heads(x: torch.Tensor) -> torch.Tensor:  # sequence shard, all heads -> all tokens, H/P heads
        x = x.reshape(b, n, p, h // p, d).permute(2, 0, 1, 3, 4).contiguous()
        return _all_to_all(x, group).permute(1, 0, 2, 3, 4).reshape(b, p * n, h // p, d)

    def to_sequence(x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(b, p, n, h // p, d).permute(1, 0, 2, 3, 4).contiguous()
        return _all_to_all(x, group).permute(1, 2, 0, 3, 4).reshape(b, n, h, d)

    qh, kh, vh = to_heads(q), to_heads(k), to_heads(v)
    if valid_len is not None:
        kh, vh = kh[:, :valid_len], vh[:, :valid_len]
    return to_sequence(attention(qh, kh, vh, fp8))


def _shard(x: torch.Tensor, dim: int, rank: int, n: int, pad: int, fill: float = 0.0) -> torch.Tensor:
    if pad:
        shape = list(x.shape)
        shape[dim] = pad
        x = torch.cat([x, x.new_full(shape, fill)], dim=dim)
    return x.narrow(dim, rank * n, n)


def sequence_parallel_forward(
    dit,
    x: torch.Tensor,
    t: torch.Tensor,
    context: torch.Tensor,
    clip_fea: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
    camera: torch.Tensor | None = None,
    group: dist.ProcessGroup | None = None,
) -> torch.Tensor:
    """``dit(x, t, context, ...)`` with the blocks run on 1/P of the tokens per rank (same result everywhere)."""
    p, rank = dist.get_world_size(group), dist.get_rank(group)
    state = dit.embed(x, t, context, clip_fea=clip_fea, y=y)
    length = state.tokens.shape[1]
    n = -(-length // p)
    pad = n * p - length
    tokens = _shard(state.tokens, 1, rank, n, pad)
    local = dataclasses.replace(state, tokens=tokens, freqs=_shard(state.freqs, 0, rank, n, pad, 1.0))
    camera = camera_or_none(camera)
    cam = None if camera is None else _shard(camera, 1, rank, n, pad)
    with sequence_hook(partial(ulysses_attention, group=group, valid_len=length)):
        for block in dit.blocks:
            tokens = block(tokens, local, cam)
    parts = [torch.empty_like(tokens) for _ in range(p)]
    dist.all_gather(parts, tokens.contiguous(), group=group)
    return dit.finalize(torch.cat(parts, dim=1)[:, :length], state)


__all__ = [
    "GuidanceParallel",
    "ParallelEnv",
    "broadcast_geometry",
    "init_distributed",
    "sequence_parallel_forward",
    "ulysses_attention",
]
