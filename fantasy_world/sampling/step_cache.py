"""Opt-in step caching: skip a denoising step's passes when the velocity is predicted to barely change.

Why: in a flow-matching sampler the model's velocity drifts slowly over many of the 50 steps, so some
forwards can be replaced by the last computed one (the idea behind TeaCache and FORA). The rule here
uses only model outputs, so it fits every model of the family without calibration: after two computed
steps the relative L1 change of the conditional velocity per unit of timestep is the drift rate; a step
is skipped (both guidance passes reuse the last velocities) when ``rate × |t − t_last|`` stays below
``threshold``. Steps that read geometry (previews, the last step) and the first ``warmup`` steps always
run, and at most ``max_skip`` steps in a row are skipped. It changes the output; the cost is measured in
``bench/RESULTS.md``. Wrap any guidance runner: ``pipe.guidance_runner = StepCache(SequentialGuidance())``.
The sampler resets the cache before every generation (``reset``), so nothing carries over between calls
whatever their timesteps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fantasy_world.errors import InputError
from fantasy_world.models.fantasy.model import FantasyWorldOutput
from fantasy_world.sampling.guidance import GuidanceRunner, PassResult, SequentialGuidance


@dataclass(frozen=True)
class StepCacheConfig:
    """``threshold``: largest predicted relative velocity change a reused step may hide (0 = never skip)."""

    threshold: float = 0.05
    warmup: int = 2
    max_skip: int = 2

    def __post_init__(self) -> None:
        if not self.threshold >= 0.0:
            raise InputError(f"step cache threshold {self.threshold}: expected a value >= 0")
        if self.warmup < 2 or self.max_skip < 1:
            raise InputError(
                f"step cache warmup {self.warmup} / max_skip {self.max_skip}: expected warmup >= 2 "
                "(the drift rate needs two computed steps) and max_skip >= 1"
            )


def relative_l1(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖a − b‖₁ / ‖b‖₁ (0 when both are zero)."""
    den = float(b.float().abs().sum())
    num = float((a.float() - b.float()).abs().sum())
    return 0.0 if num == 0.0 else num / max(den, 1e-12)


class StepCache(GuidanceRunner):
    """A guidance runner that reuses the previous step's velocities where the drift rate allows."""

    def __init__(self, inner: GuidanceRunner | None = None, config: StepCacheConfig | None = None) -> None:
        self.inner = inner or SequentialGuidance()
        self.config = config or StepCacheConfig()
        self.reset()

    def reset(self) -> None:
        """Forget the last velocities and counters: a new generation starts (the sampler calls this)."""
        self.inner.reset()
        self._t_last: float | None = None
        self._last: PassResult | None = None
        self._rate: float | None = None
        self._skipped_in_row = 0
        self._model_id: int | None = None
        self.computed = 0
        self.skipped = 0

    def _skip(self, t: float, want_geo: bool) -> bool:
        cfg = self.config
        step = self.computed + self.skipped  # index of this call in the generation
        if want_geo or step < cfg.warmup or self._rate is None or self._t_last is None:
            return False
        if self._skipped_in_row >= cfg.max_skip:
            return False
        return self._rate * abs(t - self._t_last) < cfg.threshold

    def __call__(
        self, model, x, t, cond, uncond, *, want_geo, clip_fea=None, y=None, camera=None, image_hw=None
    ) -> PassResult:
        t_now = float(t.reshape(-1)[0])
        if self._model_id is not None and id(model) != self._model_id:
            # another model (the other expert of a two-expert model): its output is not the cached one's
            self._last, self._rate, self._t_last = None, None, None
        self._model_id = id(model)
        if self._last is not None and self._skip(t_now, want_geo):
            self.skipped += 1
            self._skipped_in_row += 1
            return self._last
        out, v_uncond = self.inner(
            model,
            x,
            t,
            cond,
            uncond,
            want_geo=want_geo,
            clip_fea=clip_fea,
            y=y,
            camera=camera,
            image_hw=image_hw,
        )
        if self._last is not None and self._t_last is not None and t_now != self._t_last:
            change = relative_l1(out.velocity, self._last[0].velocity)
            self._rate = change / abs(t_now - self._t_last)
        self._last = (FantasyWorldOutput(velocity=out.velocity, geometry=None), v_uncond)  # no geometry kept
        self._t_last = t_now
        self._skipped_in_row = 0
        self.computed += 1
        return out, v_uncond
