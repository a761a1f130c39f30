"""Two experts, one card: the inactive expert lives in host memory and is moved once, at the switch.

Why: each Wan2.2 FantasyWorld expert is 16.5 B parameters (33 GB in bf16); both do not fit a 48 GB card
next to the activations. Inference never changes weights, so every expert keeps one host copy (pinned when
CUDA is there, for fast asynchronous uploads): putting an expert on the card is one host-to-device copy,
taking it off is dropping its device tensors (no copy back). The order in a generation is high, then low,
so the switch costs one upload; a later generation starting with the high expert costs another.

Use (the sampler, per step): ``name, model = residency.for_timestep(t)``; the switch happens inside.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from fantasy_world.errors import InputError
from fantasy_world.models.fantasy.experts import ExpertTable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SwitchRecord:
    """One change of the expert on the device."""

    offloaded: str | None
    loaded: str
    seconds: float
    bytes_moved: int


def _tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and buffers by name (each tensor once, borrowed blocks included via their owner)."""
    found: dict[str, torch.Tensor] = dict(module.named_parameters())
    found.update(module.named_buffers())
    return found


CHUNK_BYTES = 1 << 30


def _chunks(tensors: dict[str, torch.Tensor], keys: list[str], capacity: int) -> list[list[str]]:
    """Pack ``keys`` in order into groups of at most ``capacity`` elements (a larger tensor goes alone)."""
    groups: list[list[str]] = [[]]
    used = 0
    for key in keys:
        n = tensors[key].numel()
        if groups[-1] and used + n > capacity:
            groups.append([])
            used = 0
        groups[-1].append(key)
        used += n
    return groups


def park_on_host(module: nn.Module, pin: bool) -> dict[str, torch.Tensor]:
    """Point every weight of ``module`` at a view of a few large host buffers; returns the views.

    Buffers are 1 GiB chunks per dtype, not one per tensor (or one per expert): pinned allocations are
    rounded up to a power of two, which per tensor or for one 33 GB block would cost up to twice the
    expert's size in host memory. A module parked before is not copied again.
    """
    tensors = _tensors(module)
    previous: dict[str, torch.Tensor] | None = getattr(module, "_host_copies", None)
    if previous is not None and all(
        k in previous and tensors[k].data_ptr() == previous[k].data_ptr() for k in tensors
    ):
        return previous
    for key, tensor in tensors.items():
        if tensor.is_meta:
            raise InputError(f"{key} is on the meta device; load the expert's weights first")
    by_dtype: dict[torch.dtype, list[str]] = {}
    for key, tensor in tensors.items():
        by_dtype.setdefault(tensor.dtype, []).append(key)
    host: dict[str, torch.Tensor] = {}
    for dtype, keys in by_dtype.items():
        capacity = CHUNK_BYTES // torch.empty((), dtype=dtype).element_size()
        for group in _chunks(tensors, keys, capacity):
            flat = torch.empty(sum(tensors[k].numel() for k in group), dtype=dtype, pin_memory=pin)
            offset = 0
            for key in group:
                tensor = tensors[key]
                view = flat[offset : offset + tensor.numel()].view(tensor.shape)
                view.copy_(tensor.detach())
                tensor.data = view
                host[key] = view
                offset += tensor.numel()
    module.__dict__["_host_copies"] = host
    return host


class ExpertResidency:
    """Keeps at most one of ``experts`` on ``device``; :meth:`activate` swaps them.

    Inference only: weights changed on the device are not written back when an expert is taken off.
    """

    def __init__(
        self,
        experts: Mapping[str, nn.Module],
        table: ExpertTable,
        device: torch.device | str,
        pin: bool | None = None,
    ) -> None:
        if set(experts) != set(table.names):
            raise InputError(f"experts {sorted(experts)}: expected exactly {list(table.names)}")
        self.table = table
        self.device = torch.device(device)
        self.experts = {name: module.eval() for name, module in experts.items()}
        self.active: str | None = None
        self.switches: list[SwitchRecord] = []
        pin = torch.cuda.is_available() if pin is None else pin
        self._host = {name: park_on_host(module, pin) for name, module in self.experts.items()}

    def expert_bytes(self, name: str) -> int:
        return sum(t.numel() * t.element_size() for t in self._host[name].values())

    def activate(self, name: str) -> nn.Module:
        """Put expert ``name`` on the device (taking the active one off first, to keep the peak at one)."""
        if name not in self.experts:
            raise InputError(f"expert {name!r}: expected one of {sorted(self.experts)}")
        if self.active == name:
            return self.experts[name]
        start = time.perf_counter()
        previous = self.active
        if previous is not None:
            self._to_host(previous)
        tensors = _tensors(self.experts[name])
        for key, host in self._host[name].items():
            tensors[key].data = self._upload(host)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.active = name
        record = SwitchRecord(previous, name, time.perf_counter() - start, self.expert_bytes(name))
        self.switches.append(record)
        log.info(
            "expert %s on %s (%s off), %.1f GB in %.2f s",
            name,
            self.device,
            previous,
            record.bytes_moved / 1e9,
            record.seconds,
        )
        return self.experts[name]

    def for_timestep(self, t: float | torch.Tensor) -> tuple[str, nn.Module]:
        """The expert for sampler timestep ``t`` (official rule, :class:`ExpertTable`), on the device."""
        name = self.table.expert_for(t)
        return name, self.activate(name)

    def _upload(self, host: torch.Tensor) -> torch.Tensor:
        return host.to(self.device, non_blocking=True)

    def _to_host(self, name: str) -> None:
        tensors = _tensors(self.experts[name])
        for key, host in self._host[name].items():
            tensors[key].data = host

    def release(self) -> None:
        """Take the active expert off the device."""
        if self.active is not None:
            self._to_host(self.active)
            self.active = None

    def on_host(self, name: str) -> bool:
        """True when every weight of expert ``name`` is its host copy (nothing of it on the device)."""
        tensors = _tensors(self.experts[name])
        return all(tensors[k].data_ptr() == h.data_ptr() for k, h in self._host[name].items())
