"""Guidance runners: batched passes equal two passes; the opt-in skip equals the plain DiT; pipeline hook."""

from __future__ import annotations

import pytest
import torch
from gated_model import gated_model_step

from fantasy_world.errors import InputError
from fantasy_world.sampling.guidance import BatchedGuidance, SequentialGuidance


@pytest.fixture(scope="module")
def setup():
    return gated_model_step(0)


@torch.no_grad()
def test_batched_equals_two_passes(setup) -> None:
    model, x, t, cond, uncond, kw = setup
    out_s, vu_s = SequentialGuidance()(model, x, t, cond, uncond, want_geo=False, **kw)
    out_b, vu_b = BatchedGuidance()(model, x, t, cond, uncond[:, :5], want_geo=False, **kw)  # shorter prompt
    assert out_b.velocity.shape == out_s.velocity.shape == vu_b.shape
    torch.testing.assert_close(out_b.velocity, out_s.velocity, rtol=1e-4, atol=1e-5)
    ref_u = SequentialGuidance()(model, x, t, cond, uncond[:, :5], want_geo=False, **kw)[1]
    torch.testing.assert_close(vu_b, ref_u, rtol=1e-4, atol=1e-5)
    assert (vu_s - out_s.velocity).abs().max() > 1e-3  # the two prompts really differ


@torch.no_grad()
def test_geometry_steps_run_sequentially(setup) -> None:
    model, x, t, cond, uncond, kw = setup
    out, vu = BatchedGuidance()(model, x, t, cond, uncond, want_geo=True, **kw)
    assert out.geometry is not None and out.geometry.depth.shape[:2] == (1, 5)
    ref = model(x, t, cond, return_geometry=True, **kw)
    torch.testing.assert_close(out.geometry.depth, ref.geometry.depth)
    assert SequentialGuidance()(model, x, t, cond, None, want_geo=False, **kw)[1] is None


@torch.no_grad()
def test_skip_geometry_negative_pass_is_plain_dit_with_camera(setup) -> None:
    model, x, t, cond, uncond, kw = setup
    _, vu = SequentialGuidance(uncond_geometry=False)(model, x, t, cond, uncond, want_geo=False, **kw)
    torch.testing.assert_close(vu, model.dit(x, t, uncond, camera=kw["camera"]))
    full = model(x, t, uncond, camera=kw["camera"]).velocity
    assert (vu - full).abs().max() > 1e-4  # with open gates the branch does change the negative pass


def test_pipeline_uses_runner_and_default_matches_sequential() -> None:
    from fantasy_world.pipeline import FantasyWorldPipeline

    pipe = FantasyWorldPipeline.from_pretrained("tiny", device="cpu")
    kw = dict(camera="orbit", frames=5, height=32, width=48, steps=2, guidance=3.0, seed=1)
    base = pipe("a room", **kw)
    calls = []

    class Recording(SequentialGuidance):
        def __call__(self, model, *args, **kwargs):
            calls.append(kwargs["want_geo"])
            return super().__call__(model, *args, **kwargs)

    pipe.guidance_runner = Recording()
    again = pipe("a room", **kw)
    assert calls == [False, True]
    with pytest.raises(InputError, match="guidance_runner"):
        pipe.guidance_runner = lambda *a, **k: None  # an untyped callable is refused, not called later
    pipe.guidance_runner = None  # back to the official two passes
    assert type(pipe.guidance_runner) is SequentialGuidance and pipe.guidance_runner.uncond_geometry
    assert (again.images == base.images).all()
    torch.testing.assert_close(torch.from_numpy(again.depths), torch.from_numpy(base.depths))


def test_speed_up_switches() -> None:
    from types import SimpleNamespace

    from fantasy_world.accel.speedups import speed_up
    from fantasy_world.models.wan.attention import get_attention_backend, set_attention_backend
    from fantasy_world.sampling.guidance import BatchedGuidance

    pipe = SimpleNamespace(model=None, guidance_runner=None)
    try:
        speed_up(pipe, compile=False, uncond_geometry=False, attention="cudnn-first")
        assert (
            isinstance(pipe.guidance_runner, SequentialGuidance) and not pipe.guidance_runner.uncond_geometry
        )
        assert get_attention_backend() == "cudnn-first"
        speed_up(pipe, compile=False, batched_guidance=True)
        assert isinstance(pipe.guidance_runner, BatchedGuidance)
        with pytest.raises(ValueError, match="uncond_geometry"):
            speed_up(pipe, compile=False, batched_guidance=True, uncond_geometry=False)
    finally:
        set_attention_backend("auto")
