"""Merge a kohya-style LoRA (Wan-Fun reward LoRAs) into Wan DiT weights, as the official loader does.

File format (VideoX-Fun's ``LoRANetwork`` on the whole transformer): per adapted linear ``blocks.3.self_attn.q``
the keys ``lora_unet__blocks_3_self_attn_q.lora_down.weight`` [r, in], ``….lora_up.weight`` [out, r] and
``….alpha`` (scalar). PEFT-style ``….lora_A/lora_B(.default).weight`` names are accepted too, as the
official ``load_lora`` (``model_wan22.py`` L18–118) does.

Merge (official arithmetic, in ``dtype``, bf16 officially): ``W += (multiplier · alpha / r) · (up @ down)``
with ``up``/``down`` cast to ``dtype`` first and the product formed in ``dtype``. Names are resolved to
weights by their underscore-joined module path (what the official greedy search finds for Wan's names);
names that match no 2-D weight are skipped like the official loader does, but reported by name here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field

import torch

from fantasy_world.errors import CheckpointError

log = logging.getLogger(__name__)

LORA_PREFIX = "lora_unet_"
_ELEMENTS = {
    "lora_down.weight": "down",
    "lora_up.weight": "up",
    "lora_A.weight": "down",
    "lora_B.weight": "up",
    "lora_A.default.weight": "down",
    "lora_B.default.weight": "up",
    "alpha": "alpha",
}
_LIST = 8


@dataclass
class LoraMergeReport:
    """What a merge changed and what it could not place."""

    source: str
    multiplier: float
    merged: list[str] = field(default_factory=list)  # weight keys that received a delta
    unresolved: list[str] = field(default_factory=list)  # LoRA layer names matching no 2-D weight
    incomplete: list[str] = field(default_factory=list)  # layers lacking lora_up or lora_down
    unrecognised: list[str] = field(default_factory=list)  # keys that are not LoRA tensors at all

    @property
    def ok(self) -> bool:
        return not (self.unresolved or self.incomplete or self.unrecognised)

    def summary(self) -> str:
        parts = [f"{self.source}: merged {len(self.merged)} LoRA layers at {self.multiplier}"]
        for label, names in (
            ("unresolved (skipped)", self.unresolved),
            ("incomplete (skipped)", self.incomplete),
            ("unrecognised keys", self.unrecognised),
        ):
            if names:
                more = f" (+{len(names) - _LIST} more)" if len(names) > _LIST else ""
                parts.append(f"{label} {len(names)}: {', '.join(names[:_LIST])}{more}")
        return "; ".join(parts)


def split_lora_key(key: str) -> tuple[str, str] | None:
    """``(module path with underscores, 'down'|'up'|'alpha')`` for a LoRA key, None for anything else."""
    for suffix, role in _ELEMENTS.items():
        if key.endswith("." + suffix):
            layer = key[: -len(suffix) - 1]
            if layer.startswith(LORA_PREFIX):
                layer = layer[len(LORA_PREFIX) :]
            layer = layer.removeprefix("diffusion_model.").replace(".", "_").lstrip("_")
            return (layer, role) if layer else None
    return None


def _weight_index(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, str]:
    """Underscore-joined module path -> state key, for every 2-D ``*.weight`` under ``prefix``."""
    index: dict[str, str] = {}
    clashes: set[str] = set()
    for key, value in state.items():
        if key.startswith(prefix) and key.endswith(".weight") and value.ndim == 2:
            name = key[len(prefix) : -len(".weight")].replace(".", "_")
            if name in index:
                clashes.add(name)
            index[name] = key
    for name in clashes:  # two modules with the same underscore path: refuse to guess
        del index[name]
    return index


@torch.no_grad()
def merge_lora(
    state: MutableMapping[str, torch.Tensor],
    lora: Mapping[str, torch.Tensor],
    *,
    multiplier: float,
    source: str,
    prefix: str = "",
    dtype: torch.dtype = torch.bfloat16,
) -> LoraMergeReport:
    """Add ``multiplier ×`` the LoRA deltas into ``state`` (keys ``prefix + 'blocks.0.self_attn.q.weight'``).

    Every merged weight is stored back in ``dtype``; ``state``'s other tensors are untouched.
    A LoRA whose shapes do not fit its target raises :class:`CheckpointError` (the file is for another model).
    """
    report = LoraMergeReport(source=source, multiplier=multiplier)
    layers: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in lora.items():
        parsed = split_lora_key(key)
        if parsed is None:
            report.unrecognised.append(key)
            continue
        layers.setdefault(parsed[0], {})[parsed[1]] = tensor
    index = _weight_index(state, prefix)
    for layer, parts in layers.items():
        if "up" not in parts or "down" not in parts:
            report.incomplete.append(layer)
            continue
        target = index.get(layer)
        if target is None:
            report.unresolved.append(layer)
            continue
        up, down = parts["up"].to(dtype), parts["down"].to(dtype)
        if up.ndim != 2 or down.ndim != 2 or up.shape[1] != down.shape[0]:
            raise CheckpointError(
                f"{source}: LoRA {layer}: lora_up {tuple(up.shape)} and lora_down {tuple(down.shape)} "
                "are not [out, r] and [r, in]"
            )
        weight = state[target].to(dtype)
        if (up.shape[0], down.shape[1]) != tuple(weight.shape):
            raise CheckpointError(
                f"{source}: LoRA {layer} is [{up.shape[0]}, {down.shape[1]}]; expected the shape of "
                f"{target} {tuple(weight.shape)} (a LoRA for another model?)"
            )
        scale = float(parts["alpha"].item()) / up.shape[1] if "alpha" in parts else 1.0
        state[target] = weight + (multiplier * scale) * torch.mm(up, down)
        report.merged.append(target)
    if report.ok:
        log.info(report.summary())
    else:
        log.warning(report.summary())
    return report
