"""FantasyWorld with its video stream sequence-parallel, alone and × guidance parallelism (gloo, CPU)."""

from __future__ import annotations

import dataclasses
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from gated_model import gated_model_step

from fantasy_world.accel.sequence_parallel_fantasy import (
    GuidanceSequenceParallel,
    layout,
    sequence_parallel_fantasy_forward,
)
from fantasy_world.sampling.guidance import SequentialGuidance


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _close(a, b) -> None:  # noqa: ANN001
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def _assert_same(out, ref) -> None:  # noqa: ANN001
    _close(out.velocity, ref.velocity)
    assert (out.geometry is None) == (ref.geometry is None)
    if ref.geometry is not None:
        for f in dataclasses.fields(ref.geometry):
            _close(getattr(out.geometry, f.name), getattr(ref.geometry, f.name))


def _live_camera(model) -> None:  # noqa: ANN001
    """Open the zero-initialised camera adapters, so the sharded camera features matter."""
    with torch.no_grad():
        for block in model.dit.blocks:
            adapter = getattr(block.cross_attn, "camera_adapter", None)
            if adapter is not None:
                adapter.v_proj.group2[2].weight.normal_(std=0.2)


def _padded_step(seed: int):  # noqa: ANN202
    """9 video tokens (3 latent frames of 1×3 patches): padded to 10 over 2 ranks."""
    model, _, t, cond, uncond, _ = gated_model_step(seed)
    with torch.no_grad():
        camera = model.encode_camera(torch.randn(1, 9, 16, 48, 6))
    return model, torch.randn(1, 16, 3, 2, 6), t, cond, uncond, {"camera": camera, "image_hw": (16, 48)}


def _sp_forward(rank: int, world: int) -> None:
    for make in (gated_model_step, _padded_step):
        model, x, t, cond, _, kw = make(2)
        _live_camera(model)
        with torch.no_grad():
            for geo in (False, True):
                ref = model(x, t, cond, return_geometry=geo, **kw)
                out = sequence_parallel_fantasy_forward(model, x, t, cond, return_geometry=geo, **kw)
                _assert_same(out, ref)
            assert not torch.equal(
                ref.velocity, model(x, t, cond, camera=None, image_hw=kw["image_hw"]).velocity
            )


def _gp_sp(rank: int, world: int) -> None:
    runner = GuidanceSequenceParallel(layout(world, rank))
    model, x, t, cond, uncond, kw = gated_model_step(3)
    _live_camera(model)
    with torch.no_grad():
        for want_geo in (False, True):
            ref_out, ref_u = SequentialGuidance()(model, x, t, cond, uncond, want_geo=want_geo, **kw)
            out, v_u = runner(model, x, t, cond, uncond, want_geo=want_geo, **kw)
            _assert_same(out, ref_out)
            _close(v_u, ref_u)
        out, v_u = runner(model, x, t, cond, None, want_geo=True, **kw)  # no guidance: one pass everywhere
        assert v_u is None
        _assert_same(out, model(x, t, cond, return_geometry=True, **kw))


def _worker(rank: int, world: int, port: int, name: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        {"sp": _sp_forward, "gp_sp": _gp_sp}[name](rank, world)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize(("name", "world"), [("sp", 2), ("gp_sp", 4)])
def test_gloo(name: str, world: int) -> None:
    mp.spawn(_worker, args=(world, _free_port(), name), nprocs=world, join=True)
