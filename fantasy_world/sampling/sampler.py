"""The Euler sampling loop: guided velocity at each step, geometry read where asked, cancellable.

Why a separate loop: the pipeline owns requests and read-out, the runner owns how the guidance passes
run, and this loop owns the order of a step (cancel check, passes, guidance, Euler update, callback).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from fantasy_world.errors import GenerationCancelled
from fantasy_world.models.fantasy.model import FantasyWorldModel, GeometryOutput
from fantasy_world.sampling.flow_matching import FlowMatchSchedule, apply_guidance
from fantasy_world.sampling.guidance import GuidanceRunner


@dataclass(frozen=True)
class PassInputs:
    """What every pass of a generation sees besides the latents and the timestep."""

    cond: torch.Tensor
    uncond: torch.Tensor | None  # None: no negative pass (guidance 1)
    image_hw: tuple[int, int]
    camera: torch.Tensor | None = None
    clip_fea: torch.Tensor | None = None
    y: torch.Tensor | None = None

    def model_kwargs(self) -> dict[str, Any]:
        return {"clip_fea": self.clip_fea, "y": self.y, "camera": self.camera, "image_hw": self.image_hw}


@dataclass(frozen=True)
class StepModel:
    """The model that runs one step and its camera features (two-expert models pick one per step)."""

    model: FantasyWorldModel
    camera: torch.Tensor | None


ModelSelector = Callable[[int, torch.Tensor], StepModel]


def geometry_steps(steps: int, preview_every: int) -> list[bool]:
    """Per step: read geometry there? Always at the last step, and every ``preview_every`` steps (0 = off)."""
    return [i == steps - 1 or (preview_every > 0 and (i + 1) % preview_every == 0) for i in range(steps)]


def sample(
    model: FantasyWorldModel | None,
    runner: GuidanceRunner,
    schedule: FlowMatchSchedule,
    latents: torch.Tensor,
    inputs: PassInputs,
    *,
    guidance: float,
    dtype: torch.dtype,
    preview_every: int = 0,
    on_step: Callable[[int, GeometryOutput | None], None] | None = None,
    cancelled: Callable[[], bool] = lambda: False,
    select: ModelSelector | None = None,
    geometry_at: Sequence[bool] | None = None,
    window: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, GeometryOutput]:
    """Run every step of ``schedule`` from ``latents`` (float32) and return the final latents and geometry.

    ``on_step(i, geometry)`` runs after step ``i`` (0-based), with the step's geometry when it read one.
    The runner is reset first, so no state of an earlier generation reaches this one.

    ``select(i, t)`` (instead of ``model``) names the model and camera features of step ``i``: the
    two-expert path. ``geometry_at`` overrides which steps read geometry (default: the last step and
    every ``preview_every``-th). ``window = (a, b)`` runs only steps a..b-1 (benchmarks); its last step
    reads geometry.
    """
    if (model is None) == (select is None):
        raise ValueError("sample: give exactly one of model and select")
    runner.reset()
    wants = list(geometry_steps(schedule.steps, preview_every) if geometry_at is None else geometry_at)
    start, stop = window if window is not None else (0, schedule.steps)
    wants[stop - 1] = True
    kwargs = inputs.model_kwargs()
    geometry: GeometryOutput | None = None
    for i in range(start, stop):
        want_geo = wants[i]
        if cancelled():
            raise GenerationCancelled(f"generation cancelled before step {i + 1} of {schedule.steps}")
        t = schedule.timesteps[i : i + 1].to(latents.device, torch.float32)
        if select is not None:
            chosen = select(i, t)
            step_model, kwargs = chosen.model, {**kwargs, "camera": chosen.camera}
        else:
            step_model = model
        out, v_uncond = runner(
            step_model, latents.to(dtype), t, inputs.cond, inputs.uncond, want_geo=want_geo, **kwargs
        )
        velocity = apply_guidance(
            out.velocity.float(), None if v_uncond is None else v_uncond.float(), guidance
        )
        latents = schedule.step(latents, velocity, i)
        if want_geo:
            geometry = out.geometry
        if on_step is not None:
            on_step(i, out.geometry if want_geo else None)
    assert geometry is not None  # the last step always reads geometry
    return latents, geometry
