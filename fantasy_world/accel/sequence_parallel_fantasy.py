"""Ulysses sequence parallelism for the whole FantasyWorld model, and combined with guidance parallelism.

:func:`sequence_parallel_fantasy_forward` is ``FantasyWorldModel.forward`` with the **video stream**
split along its tokens over the ranks of ``group``: the Wan blocks (preconditioning and IRG) run on 1/P
of the tokens, their self-attention through Ulysses all-to-alls
(:func:`~fantasy_world.accel.parallel.ulysses_attention`). The **geometry branch** (latent bridge, frame
and global blocks, heads) is far smaller and runs whole on every rank: the video tokens are gathered
once before the bridge, and in each bicross attention the video keys/values are gathered for the
geometry queries while the video queries attend from their own shard. Every rank ends with the same
velocity and geometry. It mirrors the model's forward step by step; the gloo tests hold it to the plain
forward.

:class:`GuidanceSequenceParallel` runs a guided step on 2·q ranks: ranks ``0..q-1`` the conditional
pass and ``q..2q-1`` the negative pass, each sequence-parallel over its q ranks; rank i and i+q swap
velocities, and the geometry of the conditional pass goes from rank i to rank i+q.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import torch
import torch.distributed as dist
import torch.nn.functional as F

from fantasy_world.accel.parallel import _shard, broadcast_geometry, ulysses_attention
from fantasy_world.errors import InputError
from fantasy_world.models.fantasy.bicross_attention import BiCrossAttention, bicross_rope
from fantasy_world.models.fantasy.irg_block import IRGBlock
from fantasy_world.models.fantasy.model import FantasyWorldModel, FantasyWorldOutput
from fantasy_world.models.wan.attention import attention, sequence_hook
from fantasy_world.models.wan.rope import apply_rope
from fantasy_world.sampling.guidance import GuidanceRunner


def _gather(x: torch.Tensor, length: int, group: dist.ProcessGroup | None) -> torch.Tensor:
    """Shards [B, n, ...] of every rank -> the whole sequence [B, length, ...] (padding dropped)."""
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size(group))]
    dist.all_gather(parts, x.contiguous(), group=group)
    return torch.cat(parts, dim=1)[:, :length]


def _bicross(
    bc: BiCrossAttention,
    x1: torch.Tensor,
    x2: torch.Tensor,
    freqs1: torch.Tensor,
    freqs2: torch.Tensor,
    length: int,
    group: dist.ProcessGroup | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``bc(x1, x2, ...)`` with the video x1 (and its RoPE) a sequence shard and the geometry x2 whole."""
    if bc.is_inert():
        return x1, x2
    ca = bc.cross_attn
    n1 = F.layer_norm(x1.float(), x1.shape[-1:], eps=bc.eps).to(ca.m1_proj.weight.dtype)
    n2 = F.layer_norm(x2.float(), x2.shape[-1:], eps=bc.eps).to(ca.m1_proj.weight.dtype)
    a = apply_rope(ca._heads(ca.m1_proj(n1)), freqs1)
    b = apply_rope(ca._heads(ca.m2_proj(n2)), freqs2)
    v1 = ca._heads(ca.values_m1_proj(n1))
    v2 = ca._heads(ca.values_m2_proj(n2))
    out1 = attention(a, b, v2).flatten(2)  # this shard's video queries over all geometry tokens
    out2 = attention(b, _gather(a, length, group), _gather(v1, length, group)).flatten(2)
    d1, d2 = ca.out_m1_proj(out1), ca.out_m2_proj(out2)
    return x1 + bc.gamma_m1.float() * d1.float(), x2 + bc.gamma_m2.float() * d2.float()


def _irg(irg: IRGBlock, x, tokens, state, pos, e0, freqs_video, freqs_geo, camera, length, group):  # noqa: ANN001, ANN202
    x_p, mod_dit = irg.x_dit.attend(x, state, camera)
    g_p, mod_agg = irg.x_agg.attend(tokens, pos, e0)
    x_f, g_f = _bicross(irg.bicross_attention, x_p, g_p, freqs_video, freqs_geo, length, group)
    return irg.x_dit.feed_forward(x_f, mod_dit), irg.x_agg.feed_forward(g_f.to(tokens.dtype), mod_agg)


@torch.no_grad()
def sequence_parallel_fantasy_forward(
    model: FantasyWorldModel,
    x: torch.Tensor,
    t: torch.Tensor,
    context: torch.Tensor,
    clip_fea: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
    camera: torch.Tensor | None = None,
    return_geometry: bool = False,
    image_hw: tuple[int, int] | None = None,
    group: dist.ProcessGroup | None = None,
) -> FantasyWorldOutput:
    """``model(x, t, context, ...)`` (inference) with the video stream sharded over ``group``."""
    cfg = model.cfg
    p, rank = dist.get_world_size(group), dist.get_rank(group)
    if cfg.dit.num_heads % p:
        raise InputError(
            f"sequence parallelism over {p} ranks needs heads divisible by {p}; got {cfg.dit.num_heads}"
        )
    if cfg.bf16_timestep:
        t = torch.as_tensor(t, device=x.device).to(torch.bfloat16).float()
    state = model.dit.embed(x, t, context, clip_fea=clip_fea, y=y)
    b = x.shape[0]
    f, h, w = state.grid
    camera = model._check_camera(camera, b, f * h * w)
    tvec = torch.as_tensor(t, device=x.device)
    tvec = tvec.expand(b) if tvec.ndim == 0 else tvec
    tokens = state.tokens
    if cfg.has_control and camera is not None:  # Wan-Fun: the camera joins the patch embeddings once
        tokens = tokens + camera.to(tokens.dtype)
        camera = None
    length = tokens.shape[1]
    n = -(-length // p)
    pad = n * p - length
    xs = _shard(tokens, 1, rank, n, pad)
    local = dataclasses.replace(state, tokens=xs, freqs=_shard(state.freqs, 0, rank, n, pad, 1.0))
    cam = None if camera is None else _shard(camera, 1, rank, n, pad)

    with sequence_hook(partial(ulysses_attention, group=group, valid_len=length)):
        for block in model.dit.blocks[: cfg.n_pcb]:
            xs = block(xs, local, cam)
        geo_dtype = model.aggregator.camera_token.dtype
        patches = model.bridge(_gather(xs, length, group), state.grid).to(geo_dtype)
        _, e0 = model.geo_time(tvec)
        g = model.aggregator.build_tokens(patches)
        pp, d = g.shape[1], g.shape[2]
        pos_frame = model.aggregator.positions(b * f, h, w, x.device)
        pos_global = pos_frame.reshape(b, f * pp, 2)
        e0_frame = e0.repeat_interleave(f, dim=0)
        freqs_video, freqs_geo = bicross_rope(
            cfg.bicross_dim // cfg.bicross_heads, state.grid, cfg.num_special, x.device, cfg.dit.rope_theta
        )
        fv = _shard(freqs_video, 0, rank, n, pad, 1.0)
        keep = model._kept_layers() if return_geometry else set()
        intermediates: list[torch.Tensor] = []
        for i, (frame_block, irg) in enumerate(zip(model.aggregator.frame_blocks, model.irg)):
            g = frame_block(g, pos_frame, e0_frame)
            frame_out = g
            xs, g_glob = _irg(
                irg, xs, g.reshape(b, f * pp, d), local, pos_global, e0, fv, freqs_geo, cam, length, group
            )
            g = g_glob.reshape(b * f, pp, d)
            if i in keep:
                intermediates.append(
                    torch.cat([frame_out.view(b, f, pp, d), g_glob.view(b, f, pp, d)], dim=-1)
                )
            elif return_geometry:
                intermediates.append(g_glob.new_zeros(()).expand(b, f, pp, 2 * d))
        velocity = model.dit.finalize(_gather(xs, length, group), state)
    geometry = None
    if return_geometry:
        if image_hw is None:
            ph, pw = cfg.dit.patch_size[1:]
            image_hw = (h * ph * cfg.vae_stride[1], w * pw * cfg.vae_stride[2])
        geometry = model.decode_geometry(intermediates, (h, w), tuple(image_hw))
    return FantasyWorldOutput(velocity=velocity, geometry=geometry)


@dataclasses.dataclass
class ParallelLayout:
    """The groups of a guidance × sequence-parallel run over ``2 * q`` ranks (built by :func:`layout`)."""

    q: int
    half: int  # 0: conditional pass, 1: negative pass
    sequence: dist.ProcessGroup  # this rank's half
    pair: dist.ProcessGroup  # this rank and its partner in the other half


def layout(world: int, rank: int) -> ParallelLayout:
    """Every group of the run (created on every rank, in the same order, as torch.distributed requires)."""
    if world < 2 or world & (world - 1):
        raise InputError(f"{world} ranks: guidance x sequence parallelism needs a power of 2, at least 2")
    q = world // 2
    halves = [dist.new_group(list(range(0, q))), dist.new_group(list(range(q, world)))]
    pairs = [dist.new_group([i, i + q]) for i in range(q)]
    half, i = divmod(rank, q)
    return ParallelLayout(q, half, halves[half], pairs[i])


class GuidanceSequenceParallel(GuidanceRunner):
    """A guidance runner for ``2 * q`` ranks: one pass per half, each half sequence-parallel."""

    def __init__(self, lay: ParallelLayout) -> None:
        self.lay = lay

    def __call__(
        self, model, x, t, cond, uncond, *, want_geo, clip_fea=None, y=None, camera=None, image_hw=None
    ):
        lay = self.lay
        kw = {"clip_fea": clip_fea, "y": y, "camera": camera, "image_hw": image_hw}
        if uncond is None:  # no guidance: both halves run the conditional pass
            out = sequence_parallel_fantasy_forward(
                model, x, t, cond, return_geometry=want_geo, group=lay.sequence, **kw
            )
            return out, None
        mine = cond if lay.half == 0 else uncond
        out = sequence_parallel_fantasy_forward(
            model, x, t, mine, return_geometry=want_geo and lay.half == 0, group=lay.sequence, **kw
        )
        v = out.velocity.float().contiguous()
        both = [torch.empty_like(v) for _ in range(2)]
        dist.all_gather(both, v, group=lay.pair)
        geometry = (
            broadcast_geometry(out.geometry if lay.half == 0 else None, v.device, lay.pair)
            if want_geo
            else None
        )
        return FantasyWorldOutput(velocity=both[0], geometry=geometry), both[1]


__all__ = ["GuidanceSequenceParallel", "ParallelLayout", "layout", "sequence_parallel_fantasy_forward"]
