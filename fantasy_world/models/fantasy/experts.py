"""Which expert of a two-expert model (Wan2.2-A14B style) denoises which step.

Official rule (``inference_wan22.py`` L229–280): the sampler hands the model its timestep as a bf16 tensor
and runs the high-noise expert while that value is **strictly greater** than the boundary (900), the
low-noise expert otherwise. The rounding matters at the switch: with 50 steps at shift 5, step 17's
timestep 906.59 reaches the model as 908 (high) and step 18's 898.88 as exactly 900.0 (low), so the high
expert does the first 18 steps. diffusers' two-transformer pipelines use ``t >= boundary_ratio·1000`` on
the unrounded value instead; the two rules differ only for timesteps within one bf16 step of 900.

:meth:`ExpertTable.model_timestep` is the value the model receives (the ``wan2.2-fun-a14b`` config
rounds its input the same way, ``bf16_timestep``), and :meth:`ExpertTable.plan` is the per-step expert
list a sampler (and a bundle's meta.json) can use.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from fantasy_world.errors import InputError


@dataclass(frozen=True)
class ExpertTable:
    """Two experts split at ``boundary``: ``high`` while model timestep > boundary, else ``low``."""

    high: str = "high"
    low: str = "low"
    boundary: float = 900.0
    timestep_dtype: torch.dtype = torch.bfloat16

    def __post_init__(self) -> None:
        if not 0.0 < self.boundary < 1000.0:
            raise InputError(f"expert boundary {self.boundary!r}: expected a timestep in (0, 1000)")
        if self.high == self.low:
            raise InputError(f"expert names {self.high!r}/{self.low!r}: expected two different names")

    @property
    def names(self) -> tuple[str, str]:
        return (self.high, self.low)

    def model_timestep(self, t: float | torch.Tensor) -> float:
        """The timestep as the model receives it: rounded through ``timestep_dtype`` (bf16 officially)."""
        value = torch.as_tensor(t, dtype=torch.float64)
        if value.numel() != 1:
            raise InputError(f"timestep of shape {tuple(value.shape)}: expected one value")
        return float(value.reshape(()).to(self.timestep_dtype).to(torch.float64))

    def expert_for(self, t: float | torch.Tensor) -> str:
        """The expert for sampler timestep ``t`` (compared after rounding, strictly greater -> high)."""
        return self.high if self.model_timestep(t) > self.boundary else self.low

    def plan(self, timesteps: Iterable[float] | torch.Tensor) -> list[str]:
        """Expert name for every step of a schedule."""
        values = timesteps.tolist() if isinstance(timesteps, torch.Tensor) else list(timesteps)
        return [self.expert_for(t) for t in values]

    def switch_step(self, timesteps: Iterable[float] | torch.Tensor) -> int | None:
        """Index of the first step the low expert runs (None if it never runs); the plan must be
        high-then-low, since each expert is moved onto the card once per generation."""
        plan = self.plan(timesteps)
        first_low = next((i for i, name in enumerate(plan) if name == self.low), None)
        if first_low is not None and self.high in plan[first_low:]:
            raise InputError(
                "timesteps go back above the expert boundary after the switch: expected decreasing timesteps"
            )
        return first_low


WAN22_FUN_EXPERTS = ExpertTable()

_TABLES: dict[str, ExpertTable] = {"wan2.2-fun-a14b": WAN22_FUN_EXPERTS}


def expert_table(config_name: str) -> ExpertTable | None:
    """The expert table of a two-expert config (e.g. ``wan2.2-fun-a14b``); None for one-model configs."""
    return _TABLES.get(config_name.lower().removesuffix("-reduced"))
