"""Guidance and Ulysses sequence parallelism on a 2-process gloo group (CPU): same results as one process."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from gated_model import gated_model_step

from fantasy_world.accel.parallel import GuidanceParallel, sequence_parallel_forward, ulysses_attention
from fantasy_world.models.wan.attention import attention
from fantasy_world.models.wan.config import wan_dit_config
from fantasy_world.models.wan.dit import WanDiT
from fantasy_world.sampling.guidance import SequentialGuidance


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ulysses(rank: int, world: int) -> None:
    torch.manual_seed(0)  # same full tensors on both ranks
    q, k, v = (torch.randn(2, 7, 4, 8) for _ in range(3))
    ref = attention(q, k, v)
    n, pad = 4, 1  # 7 tokens over 2 ranks: shards of 4, one padding token at the end
    padded = [
        torch.cat([x, torch.full((2, pad, 4, 8), 9.0)], dim=1)[:, rank * n : (rank + 1) * n]
        for x in (q, k, v)
    ]
    out = ulysses_attention(*padded, valid_len=7)
    torch.testing.assert_close(out[:, : 7 - rank * n], ref[:, rank * n : rank * n + n][:, : 7 - rank * n])
    with pytest.raises(Exception, match="divisible"):
        ulysses_attention(torch.randn(1, 2, 3, 8), torch.randn(1, 2, 3, 8), torch.randn(1, 2, 3, 8))


def _sequence_parallel_dit(rank: int, world: int) -> None:
    torch.manual_seed(1)
    model = WanDiT(wan_dit_config("tiny", num_layers=3)).eval()
    model.head.head.weight.data.normal_(std=0.2)
    x, t, ctx = torch.randn(1, 16, 3, 2, 6), torch.tensor([300.0]), torch.randn(1, 8, 384)  # 9 tokens: padded
    with torch.no_grad():
        ref = model(x, t, ctx)
        out = sequence_parallel_forward(model, x, t, ctx)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def _guidance_parallel(rank: int, world: int) -> None:
    model, x, t, cond, uncond, kw = gated_model_step(2)
    with torch.no_grad():
        for want_geo in (False, True):
            ref_out, ref_u = SequentialGuidance()(model, x, t, cond, uncond, want_geo=want_geo, **kw)
            out, v_u = GuidanceParallel()(model, x, t, cond, uncond, want_geo=want_geo, **kw)
            torch.testing.assert_close(out.velocity, ref_out.velocity, rtol=0, atol=0)
            torch.testing.assert_close(v_u, ref_u, rtol=0, atol=0)
            if want_geo:
                torch.testing.assert_close(out.geometry.depth, ref_out.geometry.depth, rtol=0, atol=0)
                torch.testing.assert_close(out.geometry.pose_enc, ref_out.geometry.pose_enc, rtol=0, atol=0)
            else:
                assert out.geometry is None


def _worker(rank: int, world: int, port: int, name: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        {"ulysses": _ulysses, "sp_dit": _sequence_parallel_dit, "guidance": _guidance_parallel}[name](
            rank, world
        )
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("name", ["ulysses", "sp_dit", "guidance"])
def test_two_process_gloo(name: str) -> None:
    mp.spawn(_worker, args=(2, _free_port(), name), nprocs=2, join=True)
