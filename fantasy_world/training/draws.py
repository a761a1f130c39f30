"""Per-step random numbers, drawn for the global batch from one generator and sliced to this process.

Drawing the global batch everywhere costs little (latents are small) and makes a run on N processes
bit-for-bit the same function of the seed as a run on one process with an N-times larger batch.
"""

from __future__ import annotations

import torch


class Draws:
    """Random numbers for one step on ``device`` from ``generator`` (which lives on that device)."""

    def __init__(
        self, generator: torch.Generator, device: torch.device, local_batch: int, rank: int, world_size: int
    ) -> None:
        self.generator = generator
        self.device = device
        self.local_batch = local_batch
        self.rank = rank
        self.world_size = world_size

    @property
    def _slice(self) -> slice:
        return slice(self.rank * self.local_batch, (self.rank + 1) * self.local_batch)

    def uniform(self, *shape: int) -> torch.Tensor:
        """[local_batch, *shape] uniforms in [0, 1)."""
        full = torch.rand(
            (self.local_batch * self.world_size, *shape), generator=self.generator, device=self.device
        )
        return full[self._slice]

    def normal(self, *shape: int) -> torch.Tensor:
        """[local_batch, *shape] standard normals."""
        full = torch.randn(
            (self.local_batch * self.world_size, *shape), generator=self.generator, device=self.device
        )
        return full[self._slice]

    def shared_uniform(self) -> float:
        """One uniform number, the same on every process (batch-level decisions)."""
        return float(torch.rand((1,), generator=self.generator, device=self.device).item())
