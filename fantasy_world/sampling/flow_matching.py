"""Flow-matching schedule of Wan2.1 / FantasyWorld (DiffSynth ``FlowMatchScheduler``, shift 5).

σ runs from 1 to 0 in ``steps`` equal intervals (the final 0 is only the target of the last update),
is warped by the shift ``σ' = s·σ / (1 + (s−1)·σ)``, and the model sees timesteps ``1000·σ'``.
The Euler update is ``x ← x + v·(σ'_next − σ'_cur)`` with velocity ``v = noise − x0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fantasy_world.errors import InputError

NUM_TRAIN_TIMESTEPS = 1000


@dataclass(frozen=True)
class FlowMatchSchedule:
    """σ values for every step plus the terminal 0, and the matching model timesteps."""

    sigmas: torch.Tensor  # [steps + 1], float64, last entry 0
    timesteps: torch.Tensor  # [steps], float64, 1000·σ

    @property
    def steps(self) -> int:
        return int(self.timesteps.numel())

    def step(self, x: torch.Tensor, velocity: torch.Tensor, index: int) -> torch.Tensor:
        """One Euler update from step ``index`` to ``index + 1`` (computed in float32, cast back)."""
        d_sigma = float(self.sigmas[index + 1] - self.sigmas[index])
        return (x.float() + velocity.float() * d_sigma).to(x.dtype)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, index: int) -> torch.Tensor:
        """The noisy sample at step ``index``: (1−σ)·x0 + σ·noise (used by training and reconstruction)."""
        sigma = float(self.sigmas[index])
        return (1.0 - sigma) * x0 + sigma * noise


def shift_sigmas(sigmas: torch.Tensor, shift: float) -> torch.Tensor:
    return shift * sigmas / (1.0 + (shift - 1.0) * sigmas)


def flow_match_schedule(steps: int, shift: float = 5.0, denoise_strength: float = 1.0) -> FlowMatchSchedule:
    """Schedule for ``steps`` sampling steps; ``denoise_strength`` < 1 starts part-way (video-to-video)."""
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= 1000:
        raise InputError(f"steps={steps!r}: expected an integer between 1 and 1000")
    if not shift > 0:
        raise InputError(f"shift={shift!r}: expected a positive number")
    if not 0.0 < denoise_strength <= 1.0:
        raise InputError(f"denoise_strength={denoise_strength!r}: expected a value in (0, 1]")
    sigmas = torch.linspace(denoise_strength, 0.0, steps + 1, dtype=torch.float64)[:-1]
    sigmas = shift_sigmas(sigmas, shift)
    timesteps = sigmas * NUM_TRAIN_TIMESTEPS
    return FlowMatchSchedule(sigmas=torch.cat([sigmas, sigmas.new_zeros(1)]), timesteps=timesteps)


def apply_guidance(v_cond: torch.Tensor, v_uncond: torch.Tensor | None, scale: float) -> torch.Tensor:
    """Classifier-free guidance ``v_u + s·(v_c − v_u)``; scale 1 (or no negative pass) returns ``v_c``."""
    if v_uncond is None or scale == 1.0:
        return v_cond
    return v_uncond + scale * (v_cond - v_uncond)


def seeded_noise(
    shape: tuple[int, ...], seed: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Gaussian noise drawn on the CPU from ``seed`` so the same seed gives the same video on any device."""
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        raise InputError(f"seed={seed!r}: expected an integer in [0, 2^63)")
    gen = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn(shape, generator=gen, dtype=torch.float32).to(device=device, dtype=dtype)
