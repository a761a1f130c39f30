"""Opt-in step caching: exact at threshold 0, never reuses a geometry step, resets between generations."""

from __future__ import annotations

import pytest
import torch

from fantasy_world.errors import InputError
from fantasy_world.models.fantasy.model import FantasyWorldOutput
from fantasy_world.sampling.guidance import GuidanceRunner, SequentialGuidance
from fantasy_world.sampling.step_cache import StepCache, StepCacheConfig, relative_l1


class DriftingModel(GuidanceRunner):
    """Stands in for a runner: velocity = base · (1 + drift · (1000 − t)), counted per call."""

    def __init__(self, drift: float) -> None:
        self.drift, self.calls = drift, 0

    def __call__(self, model, x, t, cond, uncond, *, want_geo, **kw):  # noqa: ANN001
        self.calls += 1
        v = torch.ones(1, 2, 3) * (1.0 + self.drift * (1000.0 - float(t)))
        return FantasyWorldOutput(velocity=v, geometry="geo" if want_geo else None), -v


def run(
    cache: StepCache, steps: int = 10, geo_at: tuple[int, ...] = (), start: float = 1000.0
) -> list[tuple]:
    """One generation as the sampler runs it: reset, then every step in order."""
    cache.reset()
    out = []
    for i, t in enumerate(torch.linspace(start, start / 10, steps)):
        want_geo = i == steps - 1 or i in geo_at
        res, v_uncond = cache(None, None, t.reshape(1), None, None, want_geo=want_geo)
        out.append((float(t), res.velocity.clone(), res.geometry, v_uncond))
    return out


def test_threshold_zero_computes_every_step() -> None:
    inner = DriftingModel(1e-4)
    cache = StepCache(inner, StepCacheConfig(threshold=0.0))
    run(cache)
    assert inner.calls == 10 and cache.skipped == 0 and cache.computed == 10


def test_slow_drift_skips_but_never_geometry_steps_or_warmup() -> None:
    inner = DriftingModel(1e-5)  # ~0.1 % change per step: cheap to reuse
    cache = StepCache(inner, StepCacheConfig(threshold=0.05, warmup=2, max_skip=2))
    rows = run(cache, steps=12, geo_at=(5,))
    assert cache.skipped > 0 and inner.calls == cache.computed == 12 - cache.skipped
    assert rows[5][2] == "geo" and rows[-1][2] == "geo"  # geometry steps ran
    computed = [i for i in range(12) if i < 2 or rows[i][1][0, 0, 0] != rows[i - 1][1][0, 0, 0]]
    assert {0, 1, 5, 11} <= set(computed)
    run_lengths, n = [], 0
    for i in range(1, 12):  # at most max_skip reused steps in a row
        n = n + 1 if torch.equal(rows[i][1], rows[i - 1][1]) else 0
        run_lengths.append(n)
    assert max(run_lengths) <= 2
    for _, v, _, v_uncond in rows:  # the negative pass is reused together with the conditional one
        torch.testing.assert_close(v_uncond, -v)
    longer = StepCache(DriftingModel(1e-5), StepCacheConfig(threshold=0.05, warmup=4))
    rows = run(longer, steps=12)
    assert all(not torch.equal(rows[i][1], rows[i - 1][1]) for i in range(1, 4))  # steps 0-3 all computed
    assert longer.skipped > 0


def test_fast_drift_does_not_skip_and_new_generation_resets() -> None:
    inner = DriftingModel(1e-2)  # velocity changes by ~100 % per step
    cache = StepCache(inner, StepCacheConfig(threshold=0.05))
    run(cache)
    assert cache.skipped == 0
    slow = DriftingModel(1e-5)
    cache = StepCache(slow, StepCacheConfig(threshold=0.05))
    run(cache)
    first = cache.skipped
    run(cache)  # a new generation: counters and velocities start over, the first steps are computed
    assert cache.skipped == first and cache.computed == 10 - first
    assert slow.calls == 2 * (10 - first)
    later = run(cache, start=50.0)  # a generation whose timesteps never rise above the last one's
    assert all(not torch.equal(later[i][1], later[i - 1][1]) for i in range(1, 2))  # warm-up computed
    assert cache.computed + cache.skipped == 10


def test_config_and_relative_l1() -> None:
    with pytest.raises(InputError, match="threshold"):
        StepCacheConfig(threshold=-1.0)
    with pytest.raises(InputError, match="warmup"):
        StepCacheConfig(warmup=1)
    assert relative_l1(torch.ones(4), torch.ones(4)) == 0.0
    assert relative_l1(torch.full((4,), 1.5), torch.ones(4)) == pytest.approx(0.5)


def test_tiny_pipeline_with_cache() -> None:
    from fantasy_world.accel.speedups import speed_up
    from fantasy_world.pipeline import FantasyWorldPipeline

    pipe = FantasyWorldPipeline.from_pretrained("tiny", device="cpu")
    kw = dict(camera="orbit", frames=5, height=32, width=48, steps=6, guidance=3.0, seed=2)
    base = pipe("a red ball", **kw)
    speed_up(pipe, compile=False, step_cache=0.0)
    assert isinstance(pipe.guidance_runner.inner, SequentialGuidance)
    exact = pipe("a red ball", **kw)
    assert (exact.images == base.images).all() and pipe.guidance_runner.skipped == 0
    speed_up(pipe, compile=False, step_cache=10.0)  # skip whenever allowed
    cached = pipe("a red ball", **kw)
    runner = pipe.guidance_runner
    assert runner.skipped >= 1 and runner.computed + runner.skipped == 6
    assert cached.depths.shape == base.depths.shape and cached.images.shape == base.images.shape
    assert (cached.images != base.images).any()
    one = dict(kw, steps=1)  # equal timesteps back to back: each call still starts a fresh cache
    pipe("a red ball", **one)
    pipe("a red ball", **one)
    assert runner.computed == 1 and runner.skipped == 0
