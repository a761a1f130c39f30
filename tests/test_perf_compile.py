"""Regional compile: every repeated block traces as one graph (no data-dependent breaks)."""

from __future__ import annotations

import pytest
import torch
from gated_model import gated_model_step

from fantasy_world.accel.compile import compile_targets
from fantasy_world.models.wan.dit import camera_or_none


@pytest.fixture(scope="module")
def block_calls():
    """One recorded call (module, args, kwargs) per compiled block class of a reduced 1.3B config."""
    model, x, t, cond, _, kw = gated_model_step(0)  # open gates: the bicross path runs
    model.requires_grad_(False)
    calls: dict[str, tuple] = {}

    def record(mod, args, kwargs):  # noqa: ANN001, ANN202
        calls.setdefault(type(mod).__name__, (mod, args, kwargs))

    hooks = [m.register_forward_pre_hook(record, with_kwargs=True) for m in compile_targets(model)]
    with torch.no_grad():
        model(x, t, cond, **kw)
    for h in hooks:
        h.remove()
    return calls


def test_every_compiled_block_is_one_graph(block_calls) -> None:
    assert set(block_calls) == {"WanBlock", "BridgeLayer", "GeometryBlock", "IRGBlock"}
    for name, (mod, args, kwargs) in block_calls.items():
        torch._dynamo.reset()
        with torch.no_grad():
            report = torch._dynamo.explain(mod)(*args, **kwargs)
        reasons = [str(r.reason).splitlines()[0] for r in report.break_reasons]
        assert report.graph_break_count == 0, f"{name}: {reasons}"
        assert report.graph_count == 1, name
    torch._dynamo.reset()


def test_zero_camera_features_mean_no_camera() -> None:
    feats = torch.zeros(1, 4, 8)
    assert camera_or_none(None) is None and camera_or_none(feats) is None
    feats[0, 2, 3] = 1e-3
    assert camera_or_none(feats) is feats


def test_compiled_blocks_match_eager_with_and_without_camera() -> None:
    """Traced blocks (dynamo, eager backend) give the eager outputs; all-zero camera features add nothing."""
    from fantasy_world.accel.compile import compile_blocks

    model, x, t, ctx, _, _ = gated_model_step(1)
    model.requires_grad_(False)
    with torch.no_grad():
        for p in model.parameters():  # wake the zero-initialised adapters so the camera changes the output
            if p.abs().sum() == 0:
                p.normal_(std=0.02)
        camera = model.encode_camera(torch.randn(1, 5, 32, 48, 6))
        eager = {
            name: model(x, t, ctx, camera=cam, image_hw=(32, 48)).velocity
            for name, cam in (("camera", camera), ("none", None))
        }
        assert (eager["camera"] - eager["none"]).abs().max() > 1e-4
        torch._dynamo.reset()
        compile_blocks(model, backend="eager")
        traced = model(x, t, ctx, camera=camera, image_hw=(32, 48)).velocity
        zero = model(x, t, ctx, camera=torch.zeros_like(camera), image_hw=(32, 48)).velocity
        plain_zero = model.dit(x, t, ctx, camera=torch.zeros_like(camera))
        plain_none = model.dit(x, t, ctx)
    torch._dynamo.reset()
    torch.testing.assert_close(traced, eager["camera"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(zero, eager["none"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(plain_zero, plain_none, rtol=0, atol=0)
