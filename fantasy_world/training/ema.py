"""Exponential moving average of the trainable parameters (float32 shadow copies)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from fantasy_world.training.config import EMAConfig


class EMA:
    """Shadow weights ``s ← d·s + (1 − d)·p`` for the named parameters, updated after each step."""

    def __init__(self, params: Iterable[tuple[str, nn.Parameter]], cfg: EMAConfig) -> None:
        self.cfg = cfg
        self.params = dict(params)
        self.shadow = {n: p.detach().float().clone() for n, p in self.params.items()}
        self.updates = 0

    def decay(self) -> float:
        if not self.cfg.warmup:
            return self.cfg.decay
        return min(self.cfg.decay, (1.0 + self.updates) / (10.0 + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        d = self.decay()
        names = list(self.params)
        shadows = [self.shadow[n] for n in names]
        current = [self.params[n].detach().float() for n in names]
        torch._foreach_mul_(shadows, d)
        torch._foreach_add_(shadows, current, alpha=1.0 - d)
        self.updates += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.shadow)

    def load_state_dict(self, state: dict[str, torch.Tensor], updates: int) -> None:
        missing = set(self.shadow) - set(state)
        if missing:
            raise KeyError(f"EMA state lacks {sorted(missing)[:5]}")
        for n in self.shadow:
            self.shadow[n].copy_(state[n])
        self.updates = updates

    @torch.no_grad()
    def copy_to(self, module: nn.Module) -> None:
        """Write the shadow weights into ``module`` (parameters with the same names)."""
        own = dict(module.named_parameters())
        for n, s in self.shadow.items():
            own[n].copy_(s.to(own[n].dtype))


class swapped_weights:  # noqa: N801 - used as a context manager
    """``with swapped_weights(module, ema):`` runs the block with the EMA weights in ``module``."""

    def __init__(self, module: nn.Module, ema: EMA) -> None:
        self.module = module
        self.ema = ema
        self._saved: dict[str, torch.Tensor] = {}

    def __enter__(self) -> nn.Module:
        own = dict(self.module.named_parameters())
        self._saved = {n: own[n].detach().clone() for n in self.ema.shadow}
        self.ema.copy_to(self.module)
        return self.module

    def __exit__(self, *exc: object) -> None:
        own = dict(self.module.named_parameters())
        with torch.no_grad():
            for n, v in self._saved.items():
                own[n].copy_(v)
        self._saved = {}
