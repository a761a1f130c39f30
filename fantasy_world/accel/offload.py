"""Block swapping: keep the repeated blocks in pinned CPU memory and stream each to the GPU just in time.

Why: the 14B FantasyWorld model is 37 GB in bf16; a 24 GB card holds the small modules (embeddings,
head, heads, bridge: about 1.3 GB) plus two or three blocks and the activations. Each unit (a DiT block;
a geometry frame block; an IRG layer with its borrowed DiT block) is copied host-to-device on a side
stream while the previous unit computes, and its GPU copy is dropped as soon as its forward has been
queued. The maths is untouched: outputs equal the resident model's bit for bit.

Units are used in a fixed order each forward; the unit after the running one is prefetched (cyclically,
so the first unit of the next forward loads during the last unit of this one).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from fantasy_world.accel.compile import SWAP_ATTR, uncompile_blocks

log = logging.getLogger(__name__)


@dataclass
class SwapUnit:
    """``hook``'s call marks the use of the parameters of ``owners`` (the hook module is usually one)."""

    hook: nn.Module
    owners: list[nn.Module]


@dataclass
class _Slot:
    params: list[nn.Parameter]
    cpu: dict[torch.dtype, torch.Tensor] = field(default_factory=dict)  # flat pinned buffers
    spans: list[tuple[torch.dtype, int, int, torch.Size]] = field(default_factory=list)


def _pinned(numel: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.empty(numel, dtype=dtype, pin_memory=device.type == "cuda")


class BlockSwap:
    """Attach to a model whose unit parameters may live anywhere; afterwards they live on the host."""

    def __init__(self, units: list[SwapUnit], device: torch.device | str, prefetch: int = 1) -> None:
        self.device = torch.device(device)
        self.prefetch = max(0, int(prefetch))
        self.units = units
        self._slots: list[_Slot] = []
        self._gpu: dict[int, dict[torch.dtype, torch.Tensor]] = {}
        self._ready: dict[int, torch.cuda.Event] = {}
        self._handles: list[RemovableHandle] = []
        self.model: nn.Module | None = None  # set by enable_block_swap
        self.stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        seen: set[int] = set()
        for unit in units:
            params = []
            for owner in unit.owners:
                for p in owner.parameters():
                    if id(p) not in seen:
                        seen.add(id(p))
                        params.append(p)
            self._slots.append(self._to_host(params))
        for i, unit in enumerate(units):
            self._handles.append(unit.hook.register_forward_pre_hook(partial(self._before, i)))
            self._handles.append(unit.hook.register_forward_hook(partial(self._after, i)))

    # ------------------------------------------------------------------ host side
    def _to_host(self, params: list[nn.Parameter]) -> _Slot:
        slot = _Slot(params=params)
        sizes: dict[torch.dtype, int] = {}
        for p in params:
            start = sizes.get(p.dtype, 0)
            slot.spans.append((p.dtype, start, p.numel(), p.shape))
            sizes[p.dtype] = start + p.numel()
        for dtype, n in sizes.items():
            slot.cpu[dtype] = _pinned(n, dtype, self.device)
        with torch.no_grad():
            for p, (dtype, start, n, shape) in zip(params, slot.spans):
                host = slot.cpu[dtype][start : start + n].view(shape)
                host.copy_(p.data.reshape(shape))
                p.data = host
        return slot

    @property
    def host_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for s in self._slots for t in s.cpu.values())

    # ------------------------------------------------------------------ device side
    def _load(self, i: int) -> None:
        if i in self._gpu:
            return
        slot = self._slots[i]
        gpu = {dt: torch.empty(t.numel(), dtype=dt, device=self.device) for dt, t in slot.cpu.items()}
        if self.stream is None:
            for dt, t in slot.cpu.items():
                gpu[dt].copy_(t)
        else:
            self.stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(self.stream):
                for dt, t in slot.cpu.items():
                    gpu[dt].copy_(t, non_blocking=True)
                    gpu[dt].record_stream(self.stream)
                event = torch.cuda.Event()
                event.record(self.stream)
            self._ready[i] = event
        self._gpu[i] = gpu

    def _before(self, i: int, module: nn.Module, args: object) -> None:
        self._load(i)
        event = self._ready.pop(i, None)
        if event is not None:
            torch.cuda.current_stream(self.device).wait_event(event)
        slot, gpu = self._slots[i], self._gpu[i]
        for p, (dtype, start, n, shape) in zip(slot.params, slot.spans):
            p.data = gpu[dtype][start : start + n].view(shape)
        for k in range(1, self.prefetch + 1):
            self._load((i + k) % len(self._slots))

    def _after(self, i: int, module: nn.Module, args: object, output: object) -> None:
        slot = self._slots[i]
        for p, (dtype, start, n, shape) in zip(slot.params, slot.spans):
            p.data = slot.cpu[dtype][start : start + n].view(shape)
        self._gpu.pop(i, None)  # freed in stream order: the queued kernels of unit i still see it

    def remove(self, device: torch.device | str | None = None) -> None:
        """Detach the hooks; with ``device``, put every unit's parameters back there."""
        for h in self._handles:
            h.remove()
        self._handles.clear()
        if self.model is not None and getattr(self.model, SWAP_ATTR, None) is self:
            delattr(self.model, SWAP_ATTR)
        self._gpu.clear()
        self._ready.clear()
        if device is not None:
            with torch.no_grad():
                for slot in self._slots:
                    for p in slot.params:
                        p.data = p.data.to(device)


def wan_units(dit: nn.Module) -> list[SwapUnit]:
    """A plain WanDiT: one unit per block."""
    return [SwapUnit(b, [b]) for b in dit.blocks]


def fantasy_units(model: nn.Module) -> list[SwapUnit]:
    """FantasyWorldModel in execution order: PCB blocks, then (frame block i, IRG layer i) pairs.

    An IRG layer's unit also owns its DiT block (the IRG block calls it without ``__call__``).
    """
    n_pcb = model.cfg.n_pcb
    units = [SwapUnit(b, [b]) for b in model.dit.blocks[:n_pcb]]
    for i, (frame, irg) in enumerate(zip(model.aggregator.frame_blocks, model.irg)):
        units.append(SwapUnit(frame, [frame]))
        units.append(SwapUnit(irg, [irg, model.dit.blocks[n_pcb + i]]))
    return units


def enable_block_swap(model: nn.Module, device: torch.device | str, prefetch: int = 1) -> BlockSwap:
    """Swap the blocks of a FantasyWorldModel or WanDiT; every other parameter goes to ``device``.

    Block swapping wins over compilation (``fantasy_world.accel.compile``): compiled blocks run eagerly
    again, with a logged warning.
    """
    undone = uncompile_blocks(model)
    if undone:
        log.warning("block swapping: %d compiled blocks run eagerly again (the two do not combine)", undone)
    units = fantasy_units(model) if hasattr(model, "irg") else wan_units(model)
    swap = BlockSwap(units, device, prefetch)
    swap.model = model
    setattr(model, SWAP_ATTR, swap)
    swapped = {id(p) for s in swap._slots for p in s.params}
    with torch.no_grad():
        for p in model.parameters():
            if id(p) not in swapped:
                p.data = p.data.to(device)
        for b in model.buffers():
            b.data = b.data.to(device)
    return swap
