"""How the two classifier-free-guidance passes of a denoising step are run.

The sampler calls ``runner(model, x, t, cond, uncond, want_geo=..., clip_fea=, y=, camera=, image_hw=)``
and gets back the conditional :class:`FantasyWorldOutput` (with geometry when ``want_geo``) and the
unconditional velocity (``None`` without guidance). It calls ``runner.reset()`` before the first step of
every generation, so a runner with state (the step cache) never carries anything from one call to the
next. Runners:

* :class:`SequentialGuidance` — two passes, as the official code (the pipeline's default).
  ``uncond_geometry=False`` runs the negative pass through the plain DiT (camera adapters kept, geometry
  branch and bicross skipped): an opt-in speed-up that changes the video, because in the official model
  the branch feeds the video stream through bicross in the negative pass too.
* :class:`BatchedGuidance` — both passes as one batch of two (same maths; one launch of every kernel).
  Steps that read geometry run sequentially so the heads see only the conditional batch.
* :class:`~fantasy_world.sampling.step_cache.StepCache` — wraps another runner and reuses the last
  velocities on steps where they barely change.
* ``GuidanceParallel`` (``fantasy_world.accel.parallel``) — one pass per GPU.
"""

from __future__ import annotations

import torch

from fantasy_world.models.fantasy.model import FantasyWorldModel, FantasyWorldOutput

PassResult = tuple[FantasyWorldOutput, torch.Tensor | None]


class GuidanceRunner:
    """Base of every runner: ``__call__`` runs one step's passes; ``reset`` starts a new generation."""

    def reset(self) -> None:
        """Forget any state of the previous generation (stateless runners have none)."""

    def __call__(
        self,
        model: FantasyWorldModel,
        x: torch.Tensor,
        t: torch.Tensor,
        cond: torch.Tensor,
        uncond: torch.Tensor | None,
        *,
        want_geo: bool,
        clip_fea: torch.Tensor | None = None,
        y: torch.Tensor | None = None,
        camera: torch.Tensor | None = None,
        image_hw: tuple[int, int] | None = None,
    ) -> PassResult:
        raise NotImplementedError


def conditional_pass(model, x, t, context, *, want_geo, clip_fea, y, camera, image_hw) -> FantasyWorldOutput:
    return model(
        x, t, context, clip_fea=clip_fea, y=y, camera=camera, return_geometry=want_geo, image_hw=image_hw
    )


def unconditional_velocity(
    model, x, t, context, *, geometry: bool, clip_fea, y, camera, image_hw
) -> torch.Tensor:
    """Velocity of the negative pass; ``geometry=False`` skips the geometry branch (plain DiT + camera)."""
    if geometry:
        return model(
            x, t, context, clip_fea=clip_fea, y=y, camera=camera, return_geometry=False, image_hw=image_hw
        ).velocity
    return model.video_velocity(x, t, context, clip_fea=clip_fea, y=y, camera=camera)


class SequentialGuidance(GuidanceRunner):
    """Conditional pass, then negative pass (optionally without the geometry branch)."""

    def __init__(self, uncond_geometry: bool = True) -> None:
        self.uncond_geometry = uncond_geometry

    def __call__(
        self, model, x, t, cond, uncond, *, want_geo, clip_fea=None, y=None, camera=None, image_hw=None
    ) -> PassResult:
        kw = {"clip_fea": clip_fea, "y": y, "camera": camera, "image_hw": image_hw}
        out = conditional_pass(model, x, t, cond, want_geo=want_geo, **kw)
        if uncond is None:
            return out, None
        return out, unconditional_velocity(model, x, t, uncond, geometry=self.uncond_geometry, **kw)


def _pair(a: torch.Tensor | None) -> torch.Tensor | None:
    return None if a is None else torch.cat([a, a], dim=0)


class BatchedGuidance(GuidanceRunner):
    """Both passes in one forward of batch 2 (conditional first).

    The batch-2 inputs that do not change between steps (the two contexts, the image conditioning, the
    camera) are concatenated once per generation, so every step hands the model the same tensors and its
    step-invariant store (``models/wan/step_invariants.py``) finds them.
    """

    def __init__(self) -> None:
        self._sequential = SequentialGuidance()
        self._pairs: dict[tuple[int, ...], tuple[tuple[torch.Tensor, ...], torch.Tensor]] = {}

    def reset(self) -> None:
        self._pairs.clear()

    def _stable(self, *parts: torch.Tensor | None) -> torch.Tensor | None:
        """``cat(parts)`` along the batch (one part given twice: a pair), the same tensor every step."""
        if any(p is None for p in parts):
            return None
        key = tuple(id(p) for p in parts)
        hit = self._pairs.get(key)
        if hit is None or any(a is not b or a._version != v for a, (b, v) in zip(parts, hit[0])):
            if len(self._pairs) >= 8:
                self._pairs.clear()
            hit = (tuple((p, p._version) for p in parts), torch.cat(parts, dim=0))
            self._pairs[key] = hit
        return hit[1]

    def __call__(
        self, model, x, t, cond, uncond, *, want_geo, clip_fea=None, y=None, camera=None, image_hw=None
    ) -> PassResult:
        kw = {"clip_fea": clip_fea, "y": y, "camera": camera, "image_hw": image_hw}
        if uncond is None or want_geo or x.shape[0] != 1:
            return self._sequential(model, x, t, cond, uncond, want_geo=want_geo, **kw)
        if cond.shape[1] != uncond.shape[1]:
            n = max(cond.shape[1], uncond.shape[1])
            cond, uncond = (torch.nn.functional.pad(c, (0, 0, 0, n - c.shape[1])) for c in (cond, uncond))
        t2 = t.expand(1).repeat(2) if t.ndim else t
        out = model(
            _pair(x),
            t2,
            self._stable(cond, uncond),
            clip_fea=self._stable(clip_fea, clip_fea),
            y=self._stable(y, y),
            camera=self._stable(camera, camera),
            return_geometry=False,
            image_hw=image_hw,
        )
        v = out.velocity
        return FantasyWorldOutput(velocity=v[:1], geometry=None), v[1:]
