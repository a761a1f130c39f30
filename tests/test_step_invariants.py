"""Step-invariant reuse (``models/wan/step_invariants.py``): a generation's forwards reuse the context
keys/values and camera projections built for the same tensors, with outputs identical to recomputing
them, and nothing is kept outside a scope, under autograd, across threads or through the heads' peak."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from fantasy_world import FantasyWorldPipeline
from fantasy_world.models.fantasy.camera_adapter import ProjectedCamera
from fantasy_world.models.fantasy.config import fantasy_world_config, reduced
from fantasy_world.models.fantasy.model import FantasyWorldModel
from fantasy_world.models.wan import step_invariants
from fantasy_world.models.wan.dit import CrossKV, WanCrossAttention
from fantasy_world.sampling.guidance import BatchedGuidance

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(name: str = "wan2.1-i2v-14b") -> FantasyWorldModel:
    """A reduced model whose camera adapters and output head are live (both start at zero)."""
    torch.manual_seed(0)
    model = FantasyWorldModel(reduced(fantasy_world_config(name))).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        model.dit.head.head.weight.normal_(std=0.2, generator=g)
        for block in model.dit.blocks:
            adapter = block.cross_attn.camera_adapter
            if adapter is not None:
                w = adapter.v_proj.group2[2].weight
                w.copy_(0.2 * torch.randn(w.shape, generator=g))
        for irg in model.irg:
            irg.bicross_attention.gamma_m1.fill_(0.3)
    return model


def _inputs(model: FantasyWorldModel, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    d = model.cfg.dit
    x = torch.randn(1, d.out_dim, 2, 4, 6, generator=g)
    ctx = torch.randn(1, 3, d.text_dim, generator=g)
    kw = {}
    if d.image_input:
        kw["clip_fea"] = torch.randn(1, d.clip_tokens, d.clip_dim, generator=g)
        kw["y"] = torch.randn(1, d.in_dim - d.out_dim, 2, 4, 6, generator=g)
    kw["camera"] = model.encode_camera(torch.randn(1, 5, 32, 48, 6, generator=g))
    return x, ctx, kw


def _count_context_kv(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = WanCrossAttention.context_kv
    monkeypatch.setattr(WanCrossAttention, "context_kv", lambda self, c: calls.append(1) or real(self, c))
    return calls


@pytest.mark.parametrize("name", ["wan2.1-i2v-14b", "wan2.1-t2v-1.3b"])
@torch.no_grad()
def test_reused_forwards_equal_recomputed_ones_and_build_once(monkeypatch, name: str) -> None:
    model = _model(name)
    x, ctx, kw = _inputs(model)
    layers = model.cfg.dit.num_layers
    t1, t2 = torch.tensor([700.0]), torch.tensor([300.0])
    plain = [model(x, t, ctx, **kw).velocity for t in (t1, t2)]
    calls = _count_context_kv(monkeypatch)
    with model.step_invariants() as store:
        first = model(x, t1, ctx, **kw).velocity
        assert len(calls) == layers and store.builds == 2  # the context entry and the camera entry
        second = model(x * 0.5, t2, ctx, **kw).velocity  # another step: other latents and timestep
        assert len(calls) == layers and store.builds == 2  # nothing rebuilt
        camera = kw["camera"]
        projected = [v for e in store.entries("camera") for v in e.per_block.values()]
        adapters = sum(b.cross_attn.camera_adapter is not None for b in model.dit.blocks)
        assert len(projected) == adapters and all(isinstance(p, ProjectedCamera) for p in projected)
        assert projected[0].value.shape == camera.shape
    torch.testing.assert_close(first, plain[0], rtol=0, atol=0)
    torch.testing.assert_close(model(x * 0.5, t2, ctx, **kw).velocity, second, rtol=0, atol=0)
    assert len(store) == 0  # the scope's store is emptied on exit


@torch.no_grad()
def test_new_or_modified_inputs_are_not_mistaken_for_cached_ones(monkeypatch) -> None:
    model = _model()
    x, ctx, kw = _inputs(model)
    t = torch.tensor([500.0])
    with model.step_invariants() as store:
        model(x, t, ctx, **kw)
        other = ctx.clone()  # equal values, another tensor: a new entry
        model(x, t, other, **kw)
        assert store.builds == 3
        ctx.mul_(2.0)  # the same tensor changed in place: its version moved on, so it is rebuilt
        changed = model(x, t, ctx, **kw).velocity
        assert store.builds == 4
        assert len(store) <= step_invariants.MAX_ENTRIES
    torch.testing.assert_close(changed, model(x, t, ctx, **kw).velocity, rtol=0, atol=0)


def test_nothing_is_reused_under_autograd_in_training_or_in_another_thread() -> None:
    model = _model()
    x, ctx, kw = _inputs(model)
    t = torch.tensor([500.0])
    seen: list[object] = []
    with model.step_invariants() as store:
        with torch.enable_grad():
            model(x, t, ctx, **kw)
        assert store.builds == 0
        model.train()
        with torch.no_grad():
            model(x, t, ctx, **kw)
        assert store.builds == 0
        model.eval()
        worker = threading.Thread(target=lambda: seen.append(step_invariants.active(model.dit)))
        worker.start()
        worker.join()
        assert seen == [None]  # the scope belongs to this thread
        with torch.no_grad():
            model(x, t, ctx, **kw)
        assert store.builds == 2
    assert step_invariants.active(model.dit) is None


@torch.no_grad()
def test_a_geometry_read_out_empties_the_store_before_the_heads(monkeypatch) -> None:
    model = _model()
    x, ctx, kw = _inputs(model)
    t = torch.tensor([500.0])
    sizes: list[int] = []
    real = model.decode_geometry

    def spy(*args, **kwargs):
        store = step_invariants.active(model.dit)
        sizes.append(None if store is None else len(store))
        return real(*args, **kwargs)

    monkeypatch.setattr(model, "decode_geometry", spy)
    ref = model(x, t, ctx, return_geometry=True, **kw)
    with model.step_invariants() as store:
        model(x, t, ctx, **kw)
        assert len(store) == 2
        out = model(x, t, ctx, return_geometry=True, **kw)
    assert sizes == [None, 0]  # outside a scope; inside, emptied before the heads ran
    torch.testing.assert_close(out.velocity, ref.velocity, rtol=0, atol=0)
    torch.testing.assert_close(out.geometry.depth, ref.geometry.depth, rtol=0, atol=0)


@torch.no_grad()
def test_cross_attention_takes_precomputed_keys_and_values() -> None:
    torch.manual_seed(4)
    attn = WanCrossAttention(32, 4, image_input=True, clip_tokens=5).eval()
    x, ctx = torch.randn(2, 7, 32), torch.randn(2, 5 + 6, 32)
    kv = attn.context_kv(ctx)
    assert isinstance(kv, CrossKV) and kv.k.shape == (2, 6, 4, 8) and kv.k_img.shape == (2, 5, 4, 8)
    torch.testing.assert_close(attn(x, kv), attn(x, ctx), rtol=0, atol=0)


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    return FantasyWorldPipeline.from_pretrained("tiny", device="cpu").loaded


SMALL = {"frames": 5, "height": 64, "width": 96, "steps": 3}


@pytest.mark.parametrize("runner", [None, BatchedGuidance])
def test_a_generation_builds_once_and_matches_recomputing_every_step(tiny, monkeypatch, runner) -> None:
    def pipe() -> FantasyWorldPipeline:
        p = FantasyWorldPipeline(tiny, torch.device("cpu"), torch.float32)
        p.disable_compile()
        if runner is not None:
            p.guidance_runner = runner()
        return p

    reused = pipe()
    calls = _count_context_kv(monkeypatch)
    out = reused("a red ball beside a blue box", camera="orbit", seed=3, **SMALL)
    layers = tiny.model.cfg.dit.num_layers
    # sequential: prompt and negative prompt once each, plus the negative pass of the last step after the
    # heads emptied the store; batched: the pair once, then the last step's two sequential passes
    assert len(calls) == 3 * layers
    recomputed = pipe()
    monkeypatch.setattr(recomputed.model, "step_invariants", lambda: step_invariants.contextlib.nullcontext())
    calls.clear()
    ref = recomputed("a red ball beside a blue box", camera="orbit", seed=3, **SMALL)
    forwards = (
        2 * SMALL["steps"] if runner is None else SMALL["steps"] + 1
    )  # batched: one per step but the last
    assert len(calls) == forwards * layers
    np.testing.assert_array_equal(out.images, ref.images)
    np.testing.assert_array_equal(out.points, ref.points)
    np.testing.assert_array_equal(out.cam_c2w, ref.cam_c2w)


@torch.no_grad()
def test_block_swap_inside_a_scope_gives_the_same_output() -> None:
    from fantasy_world.accel.offload import enable_block_swap

    model = _model()
    x, ctx, kw = _inputs(model)
    t = torch.tensor([600.0])
    ref = model(x, t, ctx, **kw).velocity
    swap = enable_block_swap(model, "cpu")
    try:
        with model.step_invariants():
            for _ in range(2):
                torch.testing.assert_close(model(x, t, ctx, **kw).velocity, ref, rtol=0, atol=0)
    finally:
        swap.remove()
